//! Reading a file named for ingest without trusting it: it must be a
//! regular file no larger than `[ingest] max-package-mib`, and its `ar`
//! headers must be sound, before a byte of its body is read.
//!
//! A package is then read into memory whole, as `deb::inspect` wants it.
//! Reading first and checking after made a gigabyte of garbage cost a
//! gigabyte of memory, `/dev/zero` grow without end, and a FIFO wait for a
//! writer forever.

use crate::config::IngestSettings;
use crate::deb::{self, ProbeError};
use std::fs::{self, File, FileType};
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Why a named file was not read as a package; the caller adds its path.
#[derive(Debug, thiserror::Error)]
pub enum PackageFileError {
    #[error("cannot open: {0}")]
    Open(#[source] io::Error),
    #[error("is a {kind}, not a regular file; name a .deb file")]
    NotRegular { kind: &'static str },
    #[error(
        "the file is {size} bytes ({mib:.1} MiB), more than the {limit_mib} MiB a package may have; if it is a genuine package, raise [ingest] max-package-mib in {}",
        settings.display(),
        mib = *size as f64 / MIB as f64
    )]
    TooLarge {
        size: u64,
        limit_mib: u64,
        settings: PathBuf,
    },
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("cannot read: {0}")]
    Read(#[source] io::Error),
    #[error(
        "the file changed size while it was read ({expected} bytes expected); ingest it again once nothing writes to it"
    )]
    Changed { expected: u64 },
}

const MIB: u64 = 1 << 20;

/// Reads the package at `path` after checking, cheaply, that it can be one.
/// `settings_file` is named in the message when the file is too large.
pub fn read_package(
    path: &Path,
    limits: &IngestSettings,
    settings_file: &Path,
) -> Result<Vec<u8>, PackageFileError> {
    // Looked at before opening: opening some devices has effects (a tape
    // rewinds), and a FIFO's open would wait for a writer.
    let named = fs::metadata(path).map_err(PackageFileError::Open)?;
    check_regular(named.file_type())?;
    let file = open_nonblocking(path).map_err(PackageFileError::Open)?;
    // Checked again on the descriptor: what is read is what was checked,
    // even if the path changed in between.
    let meta = file.metadata().map_err(PackageFileError::Read)?;
    check_regular(meta.file_type())?;
    let size = meta.len();
    if size > limits.max_package_mib.saturating_mul(MIB) {
        return Err(PackageFileError::TooLarge {
            size,
            limit_mib: limits.max_package_mib,
            settings: settings_file.to_path_buf(),
        });
    }
    deb::check_ar_headers(&file, size)?;
    read_exactly(file, size)
}

/// Opens `path` for reading with `O_NONBLOCK` (a FIFO's open returns at
/// once instead of waiting for a writer) and `O_NOCTTY`, then clears
/// `O_NONBLOCK` so that reads behave as usual.
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty())?;
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags.difference(OFlags::NONBLOCK))?;
    Ok(File::from(fd))
}

fn check_regular(kind: FileType) -> Result<(), PackageFileError> {
    if kind.is_file() {
        return Ok(());
    }
    let kind = if kind.is_dir() {
        "directory"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_fifo() {
        "named pipe (FIFO)"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    };
    Err(PackageFileError::NotRegular { kind })
}

/// The file's `size` bytes, refusing a file that grew or shrank meanwhile
/// (the size checks above would not hold for it).
fn read_exactly(mut file: File, size: u64) -> Result<Vec<u8>, PackageFileError> {
    let changed = PackageFileError::Changed { expected: size };
    let len = usize::try_from(size)
        .map_err(|_| PackageFileError::Read(io::Error::other("the file does not fit in memory")))?;
    let mut data = vec![0; len];
    match file.read_exact(&mut data) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(changed),
        Err(e) => return Err(PackageFileError::Read(e)),
    }
    match file.read(&mut [0]) {
        Ok(0) => Ok(data),
        Ok(_) => Err(changed),
        Err(e) => Err(PackageFileError::Read(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(mib: u64) -> IngestSettings {
        IngestSettings {
            max_package_mib: mib,
        }
    }

    fn read(path: &Path, mib: u64) -> Result<Vec<u8>, String> {
        read_package(path, &limits(mib), Path::new("bess.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn refuses_before_reading_what_cannot_be_a_package() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.deb");
        let file = File::create(&big).unwrap();
        file.set_len(3 * MIB).unwrap();
        let message = read(&big, 2).unwrap_err();
        assert!(
            message.contains("3145728 bytes (3.0 MiB), more than the 2 MiB"),
            "{message}"
        );
        let message = read(&big, 4).unwrap_err();
        assert!(message.contains("ar archive header `!<arch>`"), "{message}");
        let message = read(dir.path(), 4).unwrap_err();
        assert!(
            message.contains("is a directory, not a regular file"),
            "{message}"
        );
        let message = read(Path::new("/dev/null"), 4).unwrap_err();
        assert!(message.contains("is a character device"), "{message}");
    }

    #[test]
    fn reads_a_sound_archive_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.deb");
        let archive =
            b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n";
        fs::write(&path, archive).unwrap();
        assert_eq!(read(&path, 1).unwrap(), archive);
    }
}
