//! Writes that survive a crash: temp file, flush to disk, rename, flush the directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Flushes every dirty page of the filesystem holding `path` (`syncfs(2)`).
///
/// One call makes a whole batch of new files durable, which is far cheaper
/// than an `fsync` per file when an upload brings thousands of them.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    let dir = File::open(path)?;
    Ok(rustix::fs::syncfs(&dir)?)
}

/// A file whose dirty pages are handed to the disk every
/// [`EagerWriteback::STEP`] bytes while it is still being written.
///
/// A publish writes tens of megabytes of index and then waits in
/// `syncfs(2)` for all of it; starting the writeback early (with
/// `sync_file_range(2)`, which does not wait) lets the disk work while the
/// CPU still compresses, so the final flush finds little left to do. It is
/// only a head start: durability still comes from the flush.
#[derive(Debug)]
pub struct EagerWriteback {
    file: File,
    written: u64,
    handed: u64,
}

impl EagerWriteback {
    /// How much is written before the disk is asked to start on it.
    pub const STEP: u64 = 8 << 20;

    /// Wraps a file opened for writing at offset 0.
    pub fn new(file: File) -> EagerWriteback {
        EagerWriteback {
            file,
            written: 0,
            handed: 0,
        }
    }

    /// Hands what is left to the disk too: the file is complete.
    pub fn finish(mut self) {
        if self.written > self.handed {
            self.hand_over();
        }
    }

    fn hand_over(&mut self) {
        let len = self.written - self.handed;
        // SAFETY: plain system call on a descriptor we own; the result is
        // only a hint, so a failure (an unsupporting filesystem) is ignored.
        // Neither rustix nor nix wraps sync_file_range(2).
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                self.handed as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.handed = self.written;
    }
}

impl Write for EagerWriteback {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.file.write(data)?;
        self.written += n as u64;
        if self.written - self.handed >= Self::STEP {
            self.hand_over();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Makes a rename or a new entry in `dir` durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `data` atomically: readers see the old or the new bytes, never a mix.
pub fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Copies `from` to `to` through a temp file in `tmp`, for filesystems without hard links.
pub fn copy_atomically(from: &Path, to: &Path, tmp: &Path) -> io::Result<()> {
    let temp = tmp.join(format!("copy-{}-{}", std::process::id(), unique()));
    fs::copy(from, &temp)?;
    File::open(&temp)?.sync_all()?;
    fs::rename(&temp, to)?;
    fsync_dir(to.parent().unwrap_or(Path::new(".")))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomically_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        sync_filesystem(dir.path()).unwrap();
    }
}
