//! Lock files between bess processes: one publisher at a time, the pool
//! lock that keeps `bess repo gc` from deleting an object an ingest is
//! about to reference, and the locks of environments, platforms and the
//! host's configuration.
//!
//! These are flock(2) locks, not pid files: the kernel releases them when
//! the process dies, so a crash never leaves a repository locked.

use super::OpsError;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// Held while publishing; released when dropped.
pub struct PublishLock {
    _file: File,
}

impl PublishLock {
    /// Waits for and takes the publish lock of `repo`.
    pub fn of(repo: &super::Repo) -> Result<PublishLock, OpsError> {
        PublishLock::acquire(&PublishLock::path(&repo.config.layout.catalog_file()))
    }

    /// Where the publish lock of the catalog at `catalog_file` lives.
    pub fn path(catalog_file: &Path) -> std::path::PathBuf {
        catalog_file.with_file_name("publish.lock")
    }

    /// Waits for and takes the lock at `path`.
    pub fn acquire(path: &Path) -> Result<PublishLock, OpsError> {
        Ok(PublishLock {
            _file: lock(path, Mode::Exclusive)?,
        })
    }
}

/// The pool lock: ingests hold it shared from "is this object already
/// stored?" until their catalog rows commit; gc holds it exclusively while
/// it decides what is garbage and deletes it.
pub struct PoolLock {
    _file: File,
}

impl PoolLock {
    /// Where the pool lock of the repository with this catalog lives.
    pub fn path(catalog_file: &Path) -> PathBuf {
        catalog_file.with_file_name("pool.lock")
    }

    /// Shared with other ingests; waits while a gc runs.
    pub fn shared(path: &Path) -> Result<PoolLock, OpsError> {
        Ok(PoolLock {
            _file: lock(path, Mode::Shared)?,
        })
    }

    /// Alone, if no ingest, box upload or backup holds it now.
    pub fn try_exclusive(path: &Path) -> Result<Option<PoolLock>, OpsError> {
        Ok(try_exclusive(path)?.map(|file| PoolLock { _file: file }))
    }
}

/// A lock on one name (an environment, a platform, the host's files),
/// in a file that its last holder may delete: after taking it, the lock
/// is checked to still be the file at `path`, else taken again.
///
/// An environment left `creating` or `destroying` whose lock is free was
/// abandoned by a process that died; the next command cleans it up.
pub struct NamedLock {
    _file: File,
    path: PathBuf,
}

impl NamedLock {
    /// Waits for the lock at `path`, exclusively or shared.
    pub fn acquire(path: &Path, exclusive: bool) -> Result<NamedLock, OpsError> {
        let mode = if exclusive {
            Mode::Exclusive
        } else {
            Mode::Shared
        };
        Ok(NamedLock::take(path, Some(mode))?.expect("a blocking lock is always taken"))
    }

    /// The lock at `path` exclusively if no one holds it now.
    pub fn try_exclusive(path: &Path) -> Result<Option<NamedLock>, OpsError> {
        NamedLock::take(path, None)
    }

    /// Takes the lock waiting in `mode`, or (`None`) exclusively if free.
    fn take(path: &Path, mode: Option<Mode>) -> Result<Option<NamedLock>, OpsError> {
        use std::os::unix::fs::MetadataExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(OpsError::io("create", dir))?;
        }
        loop {
            let file = match mode {
                Some(mode) => lock(path, mode)?,
                None => match try_exclusive(path)? {
                    Some(file) => file,
                    None => return Ok(None),
                },
            };
            let held = file.metadata().map_err(OpsError::io("read", path))?.ino();
            if std::fs::metadata(path).is_ok_and(|now| now.ino() == held) {
                let path = path.to_path_buf();
                return Ok(Some(NamedLock { _file: file, path }));
            }
        }
    }

    /// Deletes the lock's file while holding it (the name is done with).
    pub fn remove_file(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Shared,
    Exclusive,
}

fn open(path: &Path) -> Result<File, OpsError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(OpsError::io("open", path))
}

/// Waits for the lock (std's `File::lock` is flock(2) on Linux).
fn lock(path: &Path, mode: Mode) -> Result<File, OpsError> {
    let file = open(path)?;
    let locked = match mode {
        Mode::Shared => file.lock_shared(),
        Mode::Exclusive => file.lock(),
    };
    locked.map_err(OpsError::io("lock", path))?;
    Ok(file)
}

/// The lock alone, if no one holds it now.
fn try_exclusive(path: &Path) -> Result<Option<File>, OpsError> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(OpsError::io("lock", path)(e)),
    }
}
