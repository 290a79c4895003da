//! Reading a package's control.tar, in memory, with hard size caps: every
//! entry is checked against what dpkg expects, and the `control` file is
//! returned.
//!
//! The member is decompressed through a streaming reader that refuses to
//! produce more than [`TAR_LIMIT`] bytes, so a decompression bomb costs at
//! most that much work. The whole archive is read, to its compressed
//! stream's checksum: an entry after `control` matters as much as the ones
//! before it (a second `control` is the one dpkg installs).

mod members;

use super::layout::{Compression, Tarball};
use std::io::{self, Read};
use tar::EntryType;

/// Most decompressed control.tar bytes read before giving up.
pub(crate) const TAR_LIMIT: u64 = 16 * 1024 * 1024;
/// Largest `control` file accepted.
pub(crate) const CONTROL_LIMIT: u64 = 1024 * 1024;

/// How to fix an archive whose entries dpkg would not expect.
const REBUILD: &str =
    "build the package with `dpkg-deb --build` from a DEBIAN/ directory holding only control files";

/// Why the control file could not be read from the control member.
#[derive(Debug, thiserror::Error)]
pub enum ControlTarError {
    #[error(
        "{member}: cannot decompress or read the tar archive: {cause}; the member is corrupt, rebuild the package"
    )]
    Corrupt { member: String, cause: io::Error },
    #[error(
        "{member}: decompresses to more than {} MiB; refusing a possible decompression bomb",
        TAR_LIMIT >> 20
    )]
    TooLarge { member: String },
    #[error("{member}: the `control` file is {size} bytes, more than the {} MiB allowed", CONTROL_LIMIT >> 20)]
    ControlTooLarge { member: String, size: u64 },
    #[error("{member}: `{path}` is a {kind}, not a regular file; `control` must be a plain file")]
    NotRegular {
        member: String,
        path: String,
        kind: &'static str,
    },
    #[error(
        "{member}: tar entry `{path}` is a {kind}; a control archive holds regular files, and maintainer scripts ({}) may be symbolic links: {REBUILD}",
        members::SCRIPTS.join(", ")
    )]
    UnexpectedEntry {
        member: String,
        path: String,
        kind: &'static str,
    },
    #[error(
        "{member}: tar entry `{path}` is an absolute path, which dpkg would extract outside its metadata directory; {REBUILD}"
    )]
    AbsolutePath { member: String, path: String },
    #[error(
        "{member}: tar entry `{path}` has a `..` component, which dpkg would extract outside its metadata directory; {REBUILD}"
    )]
    ParentPath { member: String, path: String },
    #[error(
        "{member}: tar entry `{path}` is in a subdirectory, and dpkg refuses directories in a control archive; {REBUILD}"
    )]
    Nested { member: String, path: String },
    #[error(
        "{member}: tar entry `{path}` is not a control file dpkg knows ({}); {REBUILD}",
        members::KNOWN.join(", ")
    )]
    UnknownMember { member: String, path: String },
    #[error(
        "{member}: `{path}` appears twice (tar entries {first} and {second}); dpkg would install the last while the index would describe the first: {REBUILD}"
    )]
    Duplicate {
        member: String,
        path: String,
        first: usize,
        second: usize,
    },
    #[error("{member}: there is no `control` file in it; the package has no metadata")]
    MissingControl { member: String },
}

/// A reader that fails once it would go past its limit, so that reading
/// stops instead of silently truncating.
struct CappedReader<R> {
    inner: R,
    remaining: u64,
    exceeded: bool,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            self.exceeded = true;
            return Err(io::Error::other("size limit reached"));
        }
        let allowed = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..allowed])?;
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// Checks every entry of `tarball` and returns the bytes of its `control` file.
pub(crate) fn read_control(tarball: &Tarball<'_>) -> Result<Vec<u8>, ControlTarError> {
    let member = || tarball.to_string();
    let decoder = decoder(tarball).map_err(|cause| ControlTarError::Corrupt {
        member: member(),
        cause,
    })?;
    let capped = CappedReader {
        inner: decoder,
        remaining: TAR_LIMIT,
        exceeded: false,
    };
    let mut archive = tar::Archive::new(capped);
    let read = read_entries(&mut archive, tarball);
    let mut rest = archive.into_inner();
    // Reading on to the end of the stream makes the decompressor check
    // its checksum, which covers the bytes `control` was read from.
    let read = read.and_then(|control| {
        io::copy(&mut rest, &mut io::sink())
            .map(|_| control)
            .map_err(|cause| ControlTarError::Corrupt {
                member: member(),
                cause,
            })
    });
    // The tar reader wraps I/O errors in its own; the flag tells a bomb
    // apart from a corrupt stream.
    match read {
        Err(_) if rest.exceeded => Err(ControlTarError::TooLarge { member: member() }),
        read => read,
    }
}

/// A streaming decompressor over the member's bytes, without copying them.
fn decoder<'a>(tarball: &Tarball<'a>) -> io::Result<Box<dyn Read + 'a>> {
    let data = tarball.member.data;
    Ok(match tarball.compression {
        Compression::None => Box::new(data),
        Compression::Gzip => Box::new(flate2::bufread::GzDecoder::new(data)),
        Compression::Xz => Box::new(super::xz::XzReader::new(data)?),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(data)?),
        // The layout only lets these through for data.tar.
        Compression::Bzip2 | Compression::Lzma => {
            return Err(io::Error::other("unsupported compression for control.tar"));
        }
    })
}

/// Checks every entry in order and keeps the `control` file.
fn read_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    tarball: &Tarball<'_>,
) -> Result<Vec<u8>, ControlTarError> {
    let corrupt = |cause| ControlTarError::Corrupt {
        member: tarball.to_string(),
        cause,
    };
    // Known names and the entry each was first seen in.
    let mut seen: Vec<(&'static str, usize)> = Vec::new();
    let mut control = None;
    for (index, entry) in archive.entries().map_err(corrupt)?.enumerate() {
        let entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        // Metadata that some tar writers add; it names no file.
        if kind == EntryType::XGlobalHeader {
            continue;
        }
        let path = entry.path_bytes();
        let name = match members::check(&path, kind) {
            Ok(members::Entry::Root) => continue,
            Ok(members::Entry::File(name)) => name,
            Err(fault) => return Err(refusal(fault, &path, tarball)),
        };
        if let Some(&(_, first)) = seen.iter().find(|(known, _)| *known == name) {
            return Err(ControlTarError::Duplicate {
                member: tarball.to_string(),
                path: path.escape_ascii().to_string(),
                first,
                second: index,
            });
        }
        seen.push((name, index));
        drop(path);
        if name == "control" {
            control = Some(read_entry(entry, tarball)?);
        }
    }
    control.ok_or_else(|| ControlTarError::MissingControl {
        member: tarball.to_string(),
    })
}

/// The error for an entry dpkg would not expect.
fn refusal(fault: members::Fault, path: &[u8], tarball: &Tarball<'_>) -> ControlTarError {
    use members::Fault;
    let member = tarball.to_string();
    let shown = path.escape_ascii().to_string();
    match fault {
        Fault::Absolute => ControlTarError::AbsolutePath {
            member,
            path: shown,
        },
        Fault::Parent => ControlTarError::ParentPath {
            member,
            path: shown,
        },
        Fault::Nested => ControlTarError::Nested {
            member,
            path: shown,
        },
        Fault::Unknown => ControlTarError::UnknownMember {
            member,
            path: shown,
        },
        Fault::Kind(kind) if is_control_path(path) => ControlTarError::NotRegular {
            member,
            path: shown,
            kind,
        },
        Fault::Kind(kind) => ControlTarError::UnexpectedEntry {
            member,
            path: shown,
            kind,
        },
    }
}

/// `./control` as dpkg-deb writes it, or `control` as plain `tar` might
/// (with a trailing `/` when it is a directory).
fn is_control_path(path: &[u8]) -> bool {
    let path = path.strip_suffix(b"/").unwrap_or(path);
    path == b"./control" || path == b"control"
}

fn read_entry<R: Read>(
    entry: tar::Entry<'_, R>,
    tarball: &Tarball<'_>,
) -> Result<Vec<u8>, ControlTarError> {
    let size = entry.size();
    let too_large = |size| ControlTarError::ControlTooLarge {
        member: tarball.to_string(),
        size,
    };
    if size > CONTROL_LIMIT {
        return Err(too_large(size));
    }
    // The size was checked above, so the capacity is bounded.
    let mut control = Vec::with_capacity(size as usize);
    entry
        .take(CONTROL_LIMIT + 1)
        .read_to_end(&mut control)
        .map_err(|cause| ControlTarError::Corrupt {
            member: tarball.to_string(),
            cause,
        })?;
    let read = control.len() as u64;
    if read > CONTROL_LIMIT {
        return Err(too_large(read));
    }
    if read != size {
        return Err(ControlTarError::Corrupt {
            member: tarball.to_string(),
            cause: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("`control` should be {size} bytes but only {read} could be read"),
            ),
        });
    }
    Ok(control)
}

#[cfg(test)]
mod tests;
