//! The deb(5) member layout: which `ar` members a binary package has, in which order, compressed how.

use super::ar::{self, ArError, Member, Members};
use std::fmt;

/// How many bytes of a bad `debian-binary` are quoted in a message.
const QUOTED_BYTES: usize = 16;
/// Offset of the `ustar` signature in a tar header.
const USTAR_OFFSET: usize = 257;
/// Size of one tar block; a plain tar is at least one header block.
const TAR_BLOCK: usize = 512;

/// Why the archive does not have the layout of a binary package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Ar {
        #[from]
        source: ArError,
    },
    #[error(
        "member {index} is `{name}`, expected {expected}; this is not a binary package as dpkg-deb builds it"
    )]
    Unexpected {
        index: usize,
        name: String,
        expected: &'static str,
    },
    #[error(
        "the archive ends without {expected} ({count} ar members in total); the package is incomplete"
    )]
    Missing {
        count: usize,
        expected: &'static str,
    },
    #[error(
        "member 0 `debian-binary` contains `{content}`, expected a format version such as `2.0` and a newline; only format 2.x packages are supported"
    )]
    FormatVersion { content: String },
    #[error("member {index} `{name}` is empty; rebuild the package")]
    EmptyMember { index: usize, name: String },
    #[error(
        "member {index} `{name}` does not start with the {format} signature (its first bytes are {found}); its content does not match its name, rebuild the package"
    )]
    WrongSignature {
        index: usize,
        name: String,
        format: &'static str,
        found: String,
    },
}

/// Compression of a tar member, as its name announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
    Bzip2,
    Lzma,
}

const CONTROL_FORMATS: &[Compression] = &[
    Compression::None,
    Compression::Gzip,
    Compression::Xz,
    Compression::Zstd,
];
const CONTROL_EXPECTED: &str = "`control.tar`, `control.tar.gz`, `control.tar.xz` or `control.tar.zst` (optionally preceded by members whose names start with `_`)";
const DATA_FORMATS: &[Compression] = &[
    Compression::None,
    Compression::Gzip,
    Compression::Xz,
    Compression::Zstd,
    Compression::Bzip2,
    Compression::Lzma,
];
const DATA_EXPECTED: &str = "`data.tar`, `data.tar.gz`, `data.tar.xz`, `data.tar.zst`, `data.tar.bz2` or `data.tar.lzma` (optionally preceded by members whose names start with `_`)";

impl Compression {
    fn from_suffix(suffix: &[u8]) -> Option<Compression> {
        Some(match suffix {
            b"" => Compression::None,
            b".gz" => Compression::Gzip,
            b".xz" => Compression::Xz,
            b".zst" => Compression::Zstd,
            b".bz2" => Compression::Bzip2,
            b".lzma" => Compression::Lzma,
            _ => return None,
        })
    }

    /// Whether `data` starts like this format. Checking only the signature
    /// keeps ingestion fast: data members are never decompressed here.
    fn matches(self, data: &[u8]) -> bool {
        match self {
            Compression::None => {
                data.len() >= TAR_BLOCK && data[USTAR_OFFSET..].starts_with(b"ustar")
            }
            Compression::Gzip => data.starts_with(&[0x1f, 0x8b]),
            Compression::Xz => data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]),
            Compression::Zstd => data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Bzip2 => data.starts_with(b"BZh"),
            // The legacy .lzma format has no signature, only a header whose
            // first byte encodes lc/lp/pb and so is below 9 * 5 * 5.
            Compression::Lzma => data.len() >= 13 && data[0] < 225,
        }
    }

    fn signature_name(self) -> &'static str {
        match self {
            Compression::None => "tar (`ustar` at offset 257)",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "lzma",
        }
    }
}

/// A tar member and its compression.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tarball<'a> {
    pub member: Member<'a>,
    pub compression: Compression,
}

impl fmt::Display for Tarball<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "member {} `{}`",
            self.member.index,
            self.member.display_name()
        )
    }
}

/// What bess reads further from a binary package whose layout is sound:
/// only the control member (the data member is checked, never read).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout<'a> {
    pub control: Tarball<'a>,
}

/// Checks the whole member layout of `deb` without decompressing anything.
pub(crate) fn read_layout(deb: &[u8]) -> Result<Layout<'_>, LayoutError> {
    let mut members = ar::members(deb)?;
    check_debian_binary(&mut members)?;
    let control = next_tarball(
        &mut members,
        b"control.tar",
        CONTROL_FORMATS,
        CONTROL_EXPECTED,
    )?;
    let data = next_tarball(&mut members, b"data.tar", DATA_FORMATS, DATA_EXPECTED)?;
    // deb(5) says later members are ignored, but they must still be
    // well-formed: anything else is trailing garbage.
    for member in members {
        member?;
    }
    check_signature(&control)?;
    check_signature(&data)?;
    Ok(Layout { control })
}

fn check_debian_binary(members: &mut Members<'_>) -> Result<(), LayoutError> {
    let Some(first) = members.next().transpose()? else {
        return Err(LayoutError::Missing {
            count: 0,
            expected: "`debian-binary`",
        });
    };
    if first.name != b"debian-binary" {
        return Err(unexpected(&first, "`debian-binary` as the first member"));
    }
    if !(first.data.starts_with(b"2.") && first.data.ends_with(b"\n")) {
        let shown = &first.data[..first.data.len().min(QUOTED_BYTES)];
        return Err(LayoutError::FormatVersion {
            content: shown.escape_ascii().to_string(),
        });
    }
    Ok(())
}

/// Skips optional `_` members and returns the next member, which must be
/// `stem` with one of the `allowed` compression suffixes.
fn next_tarball<'a>(
    members: &mut Members<'a>,
    stem: &[u8],
    allowed: &[Compression],
    expected: &'static str,
) -> Result<Tarball<'a>, LayoutError> {
    for member in &mut *members {
        let member = member?;
        if member.name.starts_with(b"_") {
            continue;
        }
        let compression = member
            .name
            .strip_prefix(stem)
            .and_then(Compression::from_suffix)
            .filter(|compression| allowed.contains(compression))
            .ok_or_else(|| unexpected(&member, expected))?;
        return Ok(Tarball {
            member,
            compression,
        });
    }
    Err(LayoutError::Missing {
        count: members.read_so_far(),
        expected,
    })
}

fn unexpected(member: &Member<'_>, expected: &'static str) -> LayoutError {
    LayoutError::Unexpected {
        index: member.index,
        name: member.display_name().to_string(),
        expected,
    }
}

fn check_signature(tarball: &Tarball<'_>) -> Result<(), LayoutError> {
    let Tarball {
        member,
        compression,
    } = tarball;
    let name = || member.display_name().to_string();
    if member.data.is_empty() {
        return Err(LayoutError::EmptyMember {
            index: member.index,
            name: name(),
        });
    }
    if compression.matches(member.data) {
        return Ok(());
    }
    let head = &member.data[..member.data.len().min(6)];
    Err(LayoutError::WrongSignature {
        index: member.index,
        name: name(),
        format: compression.signature_name(),
        found: hex::encode(head),
    })
}

#[cfg(test)]
mod tests;
