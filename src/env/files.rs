//! Writing the files of workspaces and of the host: with the permissions
//! they need (credentials are owner-only from their first byte), flushed,
//! and replaced by rename so readers see the old file or the new one.

use super::EnvError;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `path` (which must not exist) with `mode`, writes `data` and flushes it.
pub fn write_private(path: &Path, data: &[u8], mode: u32) -> Result<(), EnvError> {
    write_file(path, data, mode, true)
}

/// [`write_private`] without the flush, for a batch of files the caller
/// flushes at once (`syncfs`) before anything depends on them.
pub fn write_unflushed(path: &Path, data: &[u8], mode: u32) -> Result<(), EnvError> {
    write_file(path, data, mode, false)
}

/// Every file bess writes this way is new: creating it exclusively means
/// a link planted under its name (a platform's source may hold links) is
/// refused instead of followed.
fn write_file(path: &Path, data: &[u8], mode: u32, flush: bool) -> Result<(), EnvError> {
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        // `mode` at creation is filtered by the umask; an existing file keeps its own.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(data)?;
        if flush {
            file.sync_all()?;
        }
        Ok(())
    };
    write().map_err(EnvError::io("write", path))
}

/// Replaces `path` with `data` atomically (temp file beside it, flush,
/// rename, flush the directory).
pub fn replace(path: &Path, data: &[u8], mode: u32) -> Result<(), EnvError> {
    let temp = temp_beside(path);
    let outcome = write_private(&temp, data, mode).and_then(|()| commit(&temp, path));
    if outcome.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    outcome
}

/// Renames `temp` over `path` and makes the rename durable.
pub fn commit(temp: &Path, path: &Path) -> Result<(), EnvError> {
    std::fs::rename(temp, path).map_err(EnvError::io("rename into place", path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::pool::fsync_dir(dir).map_err(EnvError::io("flush", dir))
}

/// A name beside `path` that no other writer uses and no `*.conf` glob
/// of nginx, apache or bind picks up: a dot first, no `.conf` last.
pub fn temp_beside(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.bess-{}-{n}.tmp", std::process::id()))
}

/// Removes `path` if it exists and makes the removal durable.
pub fn remove(path: &Path) -> Result<bool, EnvError> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            let dir = path.parent().unwrap_or(Path::new("."));
            crate::pool::fsync_dir(dir).map_err(EnvError::io("flush", dir))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(EnvError::io("remove", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_files_have_their_mode_and_no_temp_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        replace(&path, b"one", 0o600).unwrap();
        replace(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        assert!(
            write_private(&link, b"x", 0o600).is_err(),
            "links are not followed"
        );
        assert!(!dir.path().join("elsewhere").exists());
    }
}
