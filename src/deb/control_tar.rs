//! Reading the `control` file out of a package's control.tar, in memory, with hard size caps.
//!
//! The member is decompressed through a streaming reader that refuses to
//! produce more than [`TAR_LIMIT`] bytes, so a decompression bomb costs at
//! most that much work, and reading stops as soon as `control` is found.

use super::layout::{Compression, Tarball};
use std::io::{self, Read};

/// Most decompressed control.tar bytes read before giving up.
pub(crate) const TAR_LIMIT: u64 = 16 * 1024 * 1024;
/// Largest `control` file accepted.
pub(crate) const CONTROL_LIMIT: u64 = 1024 * 1024;

/// Why the control file could not be read from the control member.
#[derive(Debug, thiserror::Error)]
pub enum ControlTarError {
    #[error(
        "{member}: cannot decompress or read the tar archive: {cause}; the member is corrupt, rebuild the package"
    )]
    Corrupt { member: String, cause: io::Error },
    #[error(
        "{member}: decompresses to more than {} MiB before reaching `control`; refusing a possible decompression bomb",
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
        "{member}: tar entry `{path}` is a {kind}; a control archive holds only files, directories and symlinks"
    )]
    UnexpectedEntry {
        member: String,
        path: String,
        kind: &'static str,
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

/// Returns the bytes of the `control` file in `tarball`.
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
    let found = find_control(&mut archive, tarball);
    // The tar reader wraps I/O errors in its own; the flag tells a bomb
    // apart from a corrupt stream.
    match found {
        Err(_) if archive.into_inner().exceeded => {
            Err(ControlTarError::TooLarge { member: member() })
        }
        found => found,
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

fn find_control<R: Read>(
    archive: &mut tar::Archive<R>,
    tarball: &Tarball<'_>,
) -> Result<Vec<u8>, ControlTarError> {
    let member = || tarball.to_string();
    let corrupt = |cause| ControlTarError::Corrupt {
        member: member(),
        cause,
    };
    for entry in archive.entries().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        let is_control = {
            let path = entry.path_bytes();
            let is_control = is_control_path(&path);
            check_entry_type(entry.header().entry_type(), is_control, &path, tarball)?;
            is_control
        };
        if is_control {
            return read_entry(entry, tarball);
        }
    }
    Err(ControlTarError::MissingControl { member: member() })
}

/// `./control` as dpkg-deb writes it, or `control` as plain `tar` might.
fn is_control_path(path: &[u8]) -> bool {
    let path = path.strip_suffix(b"/").unwrap_or(path);
    path == b"./control" || path == b"control"
}

fn check_entry_type(
    kind: tar::EntryType,
    is_control: bool,
    path: &[u8],
    tarball: &Tarball<'_>,
) -> Result<(), ControlTarError> {
    use tar::EntryType;
    let allowed = match kind {
        EntryType::Regular => true,
        // dpkg-deb accepts symlinked maintainer scripts; the pax global
        // header is metadata that some tar writers add.
        EntryType::Directory | EntryType::Symlink | EntryType::XGlobalHeader => !is_control,
        _ => false,
    };
    if allowed {
        return Ok(());
    }
    let member = tarball.to_string();
    let path = path.escape_ascii().to_string();
    let kind = entry_kind(kind);
    Err(if is_control {
        ControlTarError::NotRegular { member, path, kind }
    } else {
        ControlTarError::UnexpectedEntry { member, path, kind }
    })
}

fn entry_kind(kind: tar::EntryType) -> &'static str {
    use tar::EntryType;
    match kind {
        EntryType::Regular => "regular file",
        EntryType::Directory => "directory",
        EntryType::Symlink => "symbolic link",
        EntryType::Link => "hard link",
        EntryType::Char => "character device",
        EntryType::Block => "block device",
        EntryType::Fifo => "named pipe",
        EntryType::GNUSparse => "sparse file",
        _ => "special entry",
    }
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
