//! The checksums APT indices list for every file, computed in one pass.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256 as Sha256Hasher, Sha512};
use std::fmt;

/// A SHA-256 digest: the name of a pool object.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// Lowercase hex, as used in paths and indices.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Sha256> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Sha256(bytes))
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

/// Size and every checksum APT may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub size: u64,
    pub md5: [u8; 16],
    pub sha1: [u8; 20],
    pub sha256: Sha256,
    pub sha512: [u8; 64],
}

impl Digests {
    /// Hashes `data` with every algorithm.
    pub fn of(data: &[u8]) -> Digests {
        Digests {
            size: data.len() as u64,
            md5: Md5::digest(data).into(),
            sha1: Sha1::digest(data).into(),
            sha256: Sha256(Sha256Hasher::digest(data).into()),
            sha512: Sha512::digest(data).into(),
        }
    }

    /// Only the SHA-256, when the other sums are not needed.
    pub fn sha256_of(data: &[u8]) -> Sha256 {
        Sha256(Sha256Hasher::digest(data).into())
    }
}

/// The SHA-256 of a file, read in pieces (objects can be gigabytes).
pub fn sha256_of_file(path: &std::path::Path) -> std::io::Result<Sha256> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256Hasher::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Sha256(hasher.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let d = Digests::of(b"abc");
        assert_eq!(hex::encode(d.md5), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex::encode(d.sha1),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            d.sha256.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hex::encode(d.sha512).starts_with("ddaf35a193617aba"));
        assert_eq!(Sha256::from_hex(&d.sha256.to_hex()), Some(d.sha256));
        assert_eq!(Sha256::from_hex("zz"), None);
    }
}
