//! The `ar` container of a `.deb` (deb(5)), read in place: members are slices of the input.
//!
//! [`check_headers`] walks the same member headers in a file on disk with
//! positioned reads, so that garbage is refused after a few bytes instead
//! of after reading the whole file into memory.

use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;

/// Global header of every `ar` archive.
pub(crate) const MAGIC: &[u8] = b"!<arch>\n";
/// Size of a member header.
pub(super) const HEADER_LEN: usize = 60;
/// Ends every member header.
const HEADER_END: &[u8] = b"`\n";

/// Why the bytes are not a well-formed `ar` archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArError {
    #[error("not a Debian package: it does not start with the ar archive header `!<arch>`")]
    NotAr {},
    #[error(
        "ar member {index} at byte {offset}: only {available} bytes remain where a 60-byte member header should be; the file is truncated or has trailing garbage"
    )]
    TruncatedHeader {
        index: usize,
        offset: usize,
        available: usize,
    },
    #[error(
        "ar member {index} at byte {offset}: the header does not end with the ar terminator; the file is corrupt"
    )]
    BadTerminator { index: usize, offset: usize },
    #[error(
        "ar member {index} `{name}`: the size field `{field}` is not a decimal number; the file is corrupt"
    )]
    BadSize {
        index: usize,
        name: String,
        field: String,
    },
    #[error(
        "ar member {index} `{name}` claims {size} bytes but only {available} remain; the file is truncated"
    )]
    PastEnd {
        index: usize,
        name: String,
        size: u64,
        available: usize,
    },
    #[error(
        "ar member {index} `{name}`: padding byte at {offset} is {found:#04x}, not a newline; the file is corrupt"
    )]
    BadPadding {
        index: usize,
        name: String,
        offset: usize,
        found: u8,
    },
}

/// Why the member headers of a file on disk could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Ar(#[from] ArError),
    #[error("cannot read: {0}")]
    Read(#[from] io::Error),
}

/// One member of the archive, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member<'a> {
    /// Position in the archive, from 0.
    pub index: usize,
    /// Name with the padding and GNU's trailing `/` removed.
    pub name: &'a [u8],
    pub data: &'a [u8],
}

impl Member<'_> {
    /// The name for messages; non-ASCII bytes are escaped.
    pub fn display_name(&self) -> impl fmt::Display + '_ {
        self.name.escape_ascii()
    }
}

/// Iterates over the members of an archive. After the first error it stops.
pub(crate) struct Members<'a> {
    data: &'a [u8],
    offset: usize,
    index: usize,
    failed: bool,
}

/// Checks the global header and returns an iterator over the members.
pub(crate) fn members(data: &[u8]) -> Result<Members<'_>, ArError> {
    if !data.starts_with(MAGIC) {
        return Err(ArError::NotAr {});
    }
    Ok(Members {
        data,
        offset: MAGIC.len(),
        index: 0,
        failed: false,
    })
}

impl<'a> Members<'a> {
    /// How many members have been read successfully so far.
    pub fn read_so_far(&self) -> usize {
        self.index
    }

    fn read_member(&mut self) -> Result<Member<'a>, ArError> {
        let (index, offset) = (self.index, self.offset);
        let rest = &self.data[offset..];
        let header = parse_header(rest, index, offset)?;
        let body = &rest[HEADER_LEN..];
        let data = header.data(body)?;
        let end = offset + HEADER_LEN + data.len();
        self.offset = end + padding(self.data.get(end).copied(), end, &header)?;
        self.index += 1;
        Ok(Member {
            index,
            name: header.name,
            data,
        })
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = Result<Member<'a>, ArError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.data.len() {
            return None;
        }
        let member = self.read_member();
        self.failed = member.is_err();
        Some(member)
    }
}

/// A member header, parsed and checked.
struct Header<'h> {
    index: usize,
    name: &'h [u8],
    size: u64,
}

impl Header<'_> {
    fn display_name(&self) -> String {
        self.name.escape_ascii().to_string()
    }

    /// The member's data at the start of `body`, if the archive holds it all.
    fn data<'b>(&self, body: &'b [u8]) -> Result<&'b [u8], ArError> {
        usize::try_from(self.size)
            .ok()
            .and_then(|len| body.get(..len))
            .ok_or_else(|| self.past_end(body.len() as u64))
    }

    fn past_end(&self, available: u64) -> ArError {
        ArError::PastEnd {
            index: self.index,
            name: self.display_name(),
            size: self.size,
            available: to_usize(available),
        }
    }
}

/// Parses the header of member `index` from the start of `rest`, which
/// begins at `offset` in the archive.
fn parse_header(rest: &[u8], index: usize, offset: usize) -> Result<Header<'_>, ArError> {
    let Some(header) = rest.get(..HEADER_LEN) else {
        return Err(ArError::TruncatedHeader {
            index,
            offset,
            available: rest.len(),
        });
    };
    if &header[58..] != HEADER_END {
        return Err(ArError::BadTerminator { index, offset });
    }
    let name = member_name(&header[..16]);
    let size = parse_size(&header[48..58]).ok_or_else(|| ArError::BadSize {
        index,
        name: name.escape_ascii().to_string(),
        field: header[48..58].escape_ascii().to_string(),
    })?;
    Ok(Header { index, name, size })
}

/// Members start at even offsets; an odd-sized member ending at `end` is
/// followed by a newline (`next`), which may only be missing at the very
/// end of the file. Returns the padding's length.
fn padding(next: Option<u8>, end: usize, header: &Header<'_>) -> Result<usize, ArError> {
    if end.is_multiple_of(2) {
        return Ok(0);
    }
    match next {
        None => Ok(0),
        Some(b'\n') => Ok(1),
        Some(found) => Err(ArError::BadPadding {
            index: header.index,
            name: header.display_name(),
            offset: end,
            found,
        }),
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Most member headers [`check_headers`] reads: a package has a handful,
/// and the check must stay cheap whatever the file holds (an archive of
/// millions of empty members is still checked whole, in memory, later).
const PROBED_MEMBERS: usize = 64;

/// Checks the global header and the member headers of the `len`-byte
/// archive in `file`, with positioned reads that skip every member's data,
/// and stops at the first fault: a file that is not an archive costs a few
/// bytes of reading, not its size.
pub fn check_headers(file: &impl FileExt, len: u64) -> Result<(), ProbeError> {
    let mut magic = [0; MAGIC.len()];
    if len < MAGIC.len() as u64 {
        return Err(ArError::NotAr {}.into());
    }
    file.read_exact_at(&mut magic, 0)?;
    if magic != MAGIC {
        return Err(ArError::NotAr {}.into());
    }
    let mut offset = MAGIC.len() as u64;
    for index in 0..PROBED_MEMBERS {
        if offset >= len {
            break;
        }
        let mut bytes = [0; HEADER_LEN];
        let available = to_usize(len - offset).min(HEADER_LEN);
        file.read_exact_at(&mut bytes[..available], offset)?;
        let header = parse_header(&bytes[..available], index, to_usize(offset))?;
        let body = len - offset - HEADER_LEN as u64;
        if header.size > body {
            return Err(header.past_end(body).into());
        }
        let end = offset + HEADER_LEN as u64 + header.size;
        let next = padding_byte(file, end, len)?;
        offset = end + padding(next, to_usize(end), &header)? as u64;
    }
    Ok(())
}

/// The byte after a member ending at `end`, where padding may be due.
fn padding_byte(file: &impl FileExt, end: u64, len: u64) -> io::Result<Option<u8>> {
    if end.is_multiple_of(2) || end >= len {
        return Ok(None);
    }
    let mut byte = [0];
    file.read_exact_at(&mut byte, end)?;
    Ok(Some(byte[0]))
}

/// The 16-byte name field: space padded, with an optional GNU `/` suffix.
fn member_name(field: &[u8]) -> &[u8] {
    let trimmed = field.trim_ascii_end();
    trimmed.strip_suffix(b"/").unwrap_or(trimmed)
}

/// The 10-byte size field: decimal digits, then space padding.
pub(super) fn parse_size(field: &[u8]) -> Option<u64> {
    let digits = field.trim_ascii_end();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Ten digits always fit in a u64.
    Some(
        digits
            .iter()
            .fold(0, |size, d| size * 10 + u64::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deb::test_support::ar_member;

    fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (name, data) in members {
            out.extend(ar_member(name, data));
        }
        out
    }

    fn read_all(data: &[u8]) -> Result<Vec<Member<'_>>, ArError> {
        members(data)?.collect()
    }

    #[test]
    fn reads_members_in_place() {
        let data = archive(&[("debian-binary", b"2.0\n"), ("odd/", b"abc"), ("x", b"")]);
        let found = read_all(&data).unwrap();
        let names: Vec<_> = found.iter().map(|m| m.name).collect();
        assert_eq!(names, [&b"debian-binary"[..], b"odd", b"x"]);
        assert_eq!(found[1].data, b"abc");
        assert_eq!(found[2].index, 2);
        // Zero-copy: member data points into the input.
        assert!(data.as_ptr_range().contains(&found[0].data.as_ptr()));
    }

    #[test]
    fn odd_last_member_may_lack_padding() {
        let mut data = archive(&[("a", b"abc")]);
        assert_eq!(data.pop(), Some(b'\n'));
        assert_eq!(read_all(&data).unwrap()[0].data, b"abc");
    }

    #[test]
    fn empty_archive_has_no_members() {
        assert_eq!(read_all(MAGIC).unwrap(), []);
    }

    #[test]
    fn refuses_broken_archives() {
        let good = archive(&[("a", b"abcd"), ("b", b"xyz")]);
        let mut bad_padding = good.clone();
        *bad_padding.last_mut().unwrap() = b'X';
        let mut bad_size = good.clone();
        bad_size[8 + 48..8 + 58].fill(b' ');
        let mut leading_space = good.clone();
        leading_space[8 + 48..8 + 58].copy_from_slice(b"         4");
        let mut bad_end = good.clone();
        bad_end[8 + 58] = b'!';
        let cases: [(&[u8], &str); 8] = [
            (b"", "`!<arch>`"),
            (b"!<thin>\n", "`!<arch>`"),
            (
                &good[..good.len() - 3],
                "member 1 `b` claims 3 bytes but only 1 remain",
            ),
            (&good[..20], "member 0 at byte 8: only 12 bytes remain"),
            (
                &[&good[..], b"trailing"].concat(),
                "member 2 at byte 136: only 8 bytes remain",
            ),
            (&bad_padding, "padding byte at 135 is 0x58"),
            (&bad_size, "size field `          `"),
            (&bad_end, "does not end with the ar terminator"),
        ];
        for (data, expected) in cases {
            let message = read_all(data).unwrap_err().to_string();
            assert!(message.contains(expected), "{expected}: {message}");
        }
        let message = read_all(&leading_space).unwrap_err().to_string();
        assert!(message.contains("size field `         4`"), "{message}");
    }

    /// [`check_headers`] on `data` written to a file.
    fn probe(data: &[u8]) -> Result<(), ProbeError> {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, data).unwrap();
        check_headers(&file, data.len() as u64)
    }

    #[test]
    fn probing_a_file_finds_the_faults_reading_it_finds() {
        let good = archive(&[("a", b"abcd"), ("b", b"xyz")]);
        assert!(probe(&good).is_ok());
        let mut odd_end = archive(&[("a", b"abc")]);
        odd_end.pop();
        assert!(probe(&odd_end).is_ok());
        let mut bad_padding = good.clone();
        *bad_padding.last_mut().unwrap() = b'X';
        let mut bad_end = good.clone();
        bad_end[8 + 58] = b'!';
        let mut huge = good.clone();
        huge[8 + 48..8 + 58].copy_from_slice(b"9999999999");
        let broken: [&[u8]; 9] = [
            b"",
            b"!<thin>\n",
            &good[..good.len() - 3],
            &good[..20],
            &[&good[..], b"trailing"].concat(),
            &bad_padding,
            &bad_end,
            &huge,
            &[&good[..], &[0; 4096]].concat(),
        ];
        for data in broken {
            let read = read_all(data).unwrap_err();
            match probe(data) {
                Err(ProbeError::Ar(probed)) => assert_eq!(probed, read),
                other => panic!("{read}: probing gave {other:?}"),
            }
        }
    }

    #[test]
    fn huge_size_is_past_end() {
        let mut data = archive(&[("a", b"")]);
        data[8 + 48..8 + 58].copy_from_slice(b"9999999999");
        let message = read_all(&data).unwrap_err().to_string();
        assert!(
            message.contains("claims 9999999999 bytes but only 0 remain"),
            "{message}"
        );
    }
}
