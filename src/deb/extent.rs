//! Whether a `.deb` is all there, from its `ar` headers alone: a file
//! still being copied in place (scp, sftp) is a prefix of a package, and
//! its headers announce more bytes than it holds.
//!
//! Only the 60-byte member headers are read, through the caller's
//! `read_at`, so a multi-gigabyte package costs a few small reads.

use super::ar::{HEADER_LEN, MAGIC, parse_size};

/// Members every binary package has: `debian-binary`, control, data.
const MEMBERS: usize = 3;

/// Why the `len` bytes `read_at` reads are certainly the start of a
/// longer package, or `None` when they are not (a complete package, or
/// something that is no package at all, which reading it whole reports).
pub fn missing_bytes(
    mut read_at: impl FnMut(u64, &mut [u8]) -> std::io::Result<usize>,
    len: u64,
) -> Option<String> {
    let magic_len = MAGIC.len() as u64;
    let mut magic = [0u8; 8];
    let got = read_full(&mut read_at, 0, &mut magic)?;
    if !MAGIC.starts_with(&magic[..got]) {
        return None;
    }
    if len < magic_len {
        return Some(format!("{len} bytes, shorter than the ar header"));
    }
    let (mut offset, mut members) = (magic_len, 0);
    while offset < len {
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut read_at, offset, &mut header)?;
        if got < HEADER_LEN {
            return Some(format!(
                "the file ends inside the header of ar member {members}"
            ));
        }
        let size = parse_size(&header[48..58])?;
        offset += HEADER_LEN as u64 + size + size % 2;
        members += 1;
        // The final member's padding byte is optional in practice.
        if offset > len + size % 2 {
            return Some(format!(
                "ar member {} announces {} bytes, the file ends {} bytes short",
                members - 1,
                size,
                offset - size % 2 - len
            ));
        }
    }
    (members < MEMBERS).then(|| format!("{members} ar members, a package has {MEMBERS}"))
}

/// Reads until `buf` is full or the file ends; `None` on a read error.
fn read_full(
    read_at: &mut impl FnMut(u64, &mut [u8]) -> std::io::Result<usize>,
    offset: u64,
    buf: &mut [u8],
) -> Option<usize> {
    let mut got = 0;
    while got < buf.len() {
        match read_at(offset + got as u64, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => return None,
        }
    }
    Some(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deb::test_support::{CONTROL, deb};

    fn missing(data: &[u8]) -> Option<String> {
        let read_at = |offset: u64, buf: &mut [u8]| {
            let start = (offset as usize).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        };
        missing_bytes(read_at, data.len() as u64)
    }

    #[test]
    fn every_prefix_of_a_package_is_incomplete_and_the_whole_is_not() {
        let deb = deb(CONTROL);
        assert_eq!(missing(&deb), None);
        // Without its last byte, a package whose final member is padded
        // is complete: the padding is optional.
        let padded = deb.len().is_multiple_of(2) && deb.last() == Some(&b'\n');
        let last = if padded { deb.len() - 1 } else { deb.len() };
        for cut in 0..last {
            assert!(
                missing(&deb[..cut]).is_some(),
                "cut at {cut} of {}",
                deb.len()
            );
        }
    }

    #[test]
    fn what_is_no_package_is_left_to_the_full_check() {
        assert_eq!(missing(b"hello world, not a package"), None);
        assert_eq!(
            missing(b"!<arch>\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
            None
        );
    }
}
