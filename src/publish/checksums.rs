//! The checksums a `Release` lists, computed incrementally with a state
//! that can be saved and resumed (RustCrypto's hashers and their
//! serializable states).
//!
//! An index of 60,000 packages is tens of megabytes of text; saving the
//! hash states after each chunk lets the next publish resume from the last
//! chunk that did not change instead of hashing the whole file again.

use crate::config::Checksum;
use md5::Md5;
use sha1::Sha1;
use sha2::digest::Digest;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::digest::typenum::Unsigned;
use sha2::{Sha256, Sha512};

/// The listed checksums of one byte stream, resumable.
#[derive(Clone, Default)]
pub struct MultiHasher {
    md5: Option<Md5>,
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
    sha512: Option<Sha512>,
    /// Bytes hashed so far.
    len: u64,
}

/// Final digests, lowercase hex; a kind that is not listed is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HexDigests {
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub sha512: String,
}

impl HexDigests {
    /// The digest of one kind (empty when it was not computed).
    pub fn get(&self, kind: Checksum) -> &str {
        match kind {
            Checksum::Md5 => &self.md5,
            Checksum::Sha1 => &self.sha1,
            Checksum::Sha256 => &self.sha256,
            Checksum::Sha512 => &self.sha512,
        }
    }
}

impl std::fmt::Debug for MultiHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MultiHasher({:?}, {} bytes)", self.kinds(), self.len)
    }
}

/// Two states are equal when they would finish alike.
impl PartialEq for MultiHasher {
    fn eq(&self, other: &MultiHasher) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}

impl Eq for MultiHasher {}

impl MultiHasher {
    /// A hasher of the `kinds` listed.
    pub fn new(kinds: &[Checksum]) -> MultiHasher {
        let has = |kind| kinds.contains(&kind);
        MultiHasher {
            md5: has(Checksum::Md5).then(Md5::new),
            sha1: has(Checksum::Sha1).then(Sha1::new),
            sha256: has(Checksum::Sha256).then(Sha256::new),
            sha512: has(Checksum::Sha512).then(Sha512::new),
            len: 0,
        }
    }

    /// The kinds this hasher computes.
    pub fn kinds(&self) -> Vec<Checksum> {
        let present = [
            self.md5.is_some(),
            self.sha1.is_some(),
            self.sha256.is_some(),
            self.sha512.is_some(),
        ];
        Checksum::ALL
            .into_iter()
            .zip(present)
            .filter_map(|(kind, present)| present.then_some(kind))
            .collect()
    }

    /// Hashes more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digests of everything hashed so far (the state is kept).
    pub fn finish(&self) -> HexDigests {
        fn hex_of<H: Digest + Clone>(hasher: &Option<H>) -> String {
            hasher
                .as_ref()
                .map(|h| hex::encode(h.clone().finalize()))
                .unwrap_or_default()
        }
        HexDigests {
            size: self.len,
            md5: hex_of(&self.md5),
            sha1: hex_of(&self.sha1),
            sha256: hex_of(&self.sha256),
            sha512: hex_of(&self.sha512),
        }
    }

    /// The state as bytes, to resume later with [`MultiHasher::from_bytes`]:
    /// the length, a byte saying which kinds follow, then their states.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.len.to_le_bytes().to_vec();
        let kinds = self.kinds();
        out.push(Checksum::ALL.iter().enumerate().fold(0, |mask, (i, kind)| {
            mask | (u8::from(kinds.contains(kind)) << i)
        }));
        save(&self.md5, &mut out);
        save(&self.sha1, &mut out);
        save(&self.sha256, &mut out);
        save(&self.sha512, &mut out);
        out
    }

    /// Restores a state saved by [`MultiHasher::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<MultiHasher> {
        let (len, rest) = bytes.split_at_checked(8)?;
        let (&mask, mut rest) = rest.split_first()?;
        let listed = |i: u8| mask & (1 << i) != 0;
        let hasher = MultiHasher {
            len: u64::from_le_bytes(len.try_into().ok()?),
            md5: load(listed(0), &mut rest)?,
            sha1: load(listed(1), &mut rest)?,
            sha256: load(listed(2), &mut rest)?,
            sha512: load(listed(3), &mut rest)?,
        };
        (rest.is_empty() && mask < 16).then_some(hasher)
    }
}

fn save<H: SerializableState>(hasher: &Option<H>, out: &mut Vec<u8>) {
    if let Some(hasher) = hasher {
        out.extend_from_slice(&hasher.serialize());
    }
}

/// Reads one saved state off the front of `bytes` if it is `listed`:
/// `Some(None)` when it is not, `None` when the bytes are not a state.
fn load<H: SerializableState>(listed: bool, bytes: &mut &[u8]) -> Option<Option<H>> {
    if !listed {
        return Some(None);
    }
    let (head, rest) = bytes.split_at_checked(H::SerializedStateSize::USIZE)?;
    *bytes = rest;
    let state = SerializedState::<H>::try_from(head).ok()?;
    H::deserialize(&state).ok().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(data: &[u8]) -> HexDigests {
        let d = crate::pool::Digests::of(data);
        HexDigests {
            size: d.size,
            md5: hex::encode(d.md5),
            sha1: hex::encode(d.sha1),
            sha256: d.sha256.to_hex(),
            sha512: hex::encode(d.sha512),
        }
    }

    #[test]
    fn computes_only_the_listed_kinds() {
        let mut h = MultiHasher::new(&[Checksum::Md5, Checksum::Sha256]);
        h.update(b"abc");
        let sums = h.finish();
        assert_eq!(sums.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(sums.sha256, reference(b"abc").sha256);
        assert!(sums.sha1.is_empty() && sums.sha512.is_empty());
        assert_eq!(h.kinds(), [Checksum::Md5, Checksum::Sha256]);
    }

    proptest! {
        #[test]
        fn split_updates_and_saved_states_agree(data in proptest::collection::vec(any::<u8>(), 0..3000), cut in 0usize..3000) {
            let cut = cut.min(data.len());
            let mut first = MultiHasher::new(&Checksum::ALL);
            first.update(&data[..cut]);
            let mut resumed = MultiHasher::from_bytes(&first.to_bytes()).unwrap();
            resumed.update(&data[cut..]);
            prop_assert_eq!(resumed.finish(), reference(&data));
        }
    }

    #[test]
    fn a_state_without_some_kinds_round_trips() {
        let mut h = MultiHasher::new(&[Checksum::Sha256]);
        h.update(&[7; 200]);
        let restored = MultiHasher::from_bytes(&h.to_bytes()).unwrap();
        assert_eq!(restored, h);
        assert_eq!(restored.kinds(), [Checksum::Sha256]);
    }

    #[test]
    fn corrupt_state_is_refused() {
        let mut h = MultiHasher::new(&Checksum::ALL);
        h.update(b"abc");
        let mut bytes = h.to_bytes();
        bytes.pop();
        assert!(MultiHasher::from_bytes(&bytes).is_none());
        let mut longer = h.to_bytes();
        longer.push(0);
        assert!(MultiHasher::from_bytes(&longer).is_none());
    }
}
