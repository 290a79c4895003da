//! An exclusive lock file, so that only one process publishes at a time.

use super::OpsError;
use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Held while publishing; released when dropped (or when the process dies,
/// which is why this is flock(2) and not a pid file).
pub struct PublishLock {
    _file: File,
}

impl PublishLock {
    /// Waits for and takes the lock at `path`.
    pub fn acquire(path: &Path) -> Result<PublishLock, OpsError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(OpsError::io("open", path))?;
        // SAFETY: the descriptor is open for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(OpsError::io("lock", path)(std::io::Error::last_os_error()));
        }
        Ok(PublishLock { _file: file })
    }
}
