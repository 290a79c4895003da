//! What to tell a user whose disk is full: the same advice after every
//! I/O error that says so, whichever layer met it.

use std::io;
use std::path::Path;

/// Below this many free bytes, an I/O failure SQLite reports without
/// saying why (growing its shared-memory or journal file) is taken for a
/// full disk.
const NEARLY_FULL: u64 = 1 << 20;

/// The advice to append to the message of `error`, or "" when the error
/// is not about space.
pub fn full_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge => {
            " (the disk is full: free space on that filesystem, then run the command again)"
        }
        _ => "",
    }
}

/// The advice for a catalog error: SQLite says "database or disk is full"
/// only for the database file; growing its -shm or -wal file on a full
/// disk fails as a plain I/O error, so the free space of `path`'s
/// filesystem decides.
pub fn catalog_full_hint(path: &Path, error: &rusqlite::Error) -> &'static str {
    let Some(code) = error.sqlite_error_code() else {
        return "";
    };
    let full = match code {
        rusqlite::ErrorCode::DiskFull => true,
        rusqlite::ErrorCode::SystemIoFailure => nearly_full(path),
        _ => false,
    };
    if full {
        full_hint(&io::Error::from(io::ErrorKind::StorageFull))
    } else {
        ""
    }
}

fn nearly_full(path: &Path) -> bool {
    let dir = path.parent().unwrap_or(path);
    rustix::fs::statvfs(dir).is_ok_and(|fs| fs.f_bavail.saturating_mul(fs.f_frsize) < NEARLY_FULL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_space_errors_get_the_advice() {
        let full = io::Error::from_raw_os_error(28); // ENOSPC
        assert!(full_hint(&full).contains("disk is full"));
        let quota = io::Error::from_raw_os_error(122); // EDQUOT
        assert!(full_hint(&quota).contains("disk is full"));
        assert_eq!(full_hint(&io::Error::from_raw_os_error(13)), "");
    }
}
