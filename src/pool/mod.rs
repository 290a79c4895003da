//! The content-addressed object pool: immutable blobs named by their SHA-256.
//!
//! Objects are written to a temp file on the pool's filesystem, made durable,
//! then renamed to `pool/<first two hex digits>/<sha256>`; they are never
//! modified afterwards. Durability is batched: a whole upload's temp files are
//! flushed with one `syncfs(2)` rather than one `fsync(2)` each, because an
//! fsync per object would cost more than everything else an ingest does.

mod digest;
// sync_file_range(2), wrapped by neither rustix nor nix.
#[allow(unsafe_code)]
mod durable;

pub use digest::{Digests, Sha256, sha256_of_file};
pub use durable::{EagerWriteback, fsync_dir, sync_filesystem, write_atomically};

use rayon::prelude::*;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Everything that can go wrong in the pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot {action} {path}: {source}{}", crate::disk::full_hint(source))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PoolError + 'a {
    move |source| PoolError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A content-addressed store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Pool {
    root: PathBuf,
    tmp: PathBuf,
}

/// An object written to a temp file, not yet visible under its hash.
#[derive(Debug)]
pub struct Staged {
    temp: PathBuf,
    sha256: Sha256,
}

impl Staged {
    /// The temp file, to inspect the object before committing it.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// The object's name.
    pub fn sha256(&self) -> Sha256 {
        self.sha256
    }
}

/// How the names of staging files in a shard start: `.tmp-<pid>-<n>`.
pub const STAGING_PREFIX: &str = ".tmp-";

/// Makes temp names unique within this process; the pid makes them unique across processes.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

impl Pool {
    /// The pool at `root`, staging through `tmp` (same filesystem).
    pub fn new(root: PathBuf, tmp: PathBuf) -> Pool {
        Pool { root, tmp }
    }

    /// Where the object with this hash lives.
    pub fn object_path(&self, sha256: &Sha256) -> PathBuf {
        let hex = sha256.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Whether the object is already stored.
    pub fn contains(&self, sha256: &Sha256) -> bool {
        self.object_path(sha256).is_file()
    }

    /// Writes `data` to a temp file; [`Pool::commit`] makes it durable and visible.
    ///
    /// The temp file sits in the object's own shard directory (named with a
    /// leading dot, which no object name has): spreading thousands of new
    /// files over 256 directories avoids serialising on one directory lock.
    pub fn stage(&self, sha256: Sha256, data: &[u8]) -> Result<Staged, PoolError> {
        let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
        let shard = self.root.join(&sha256.to_hex()[..2]);
        let temp = shard.join(format!("{STAGING_PREFIX}{}-{n}", std::process::id()));
        let mut file = match fs::File::create(&temp) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&shard).map_err(io_error("create directory", &shard))?;
                fs::File::create(&temp)
            }
            other => other,
        }
        .map_err(io_error("create", &temp))?;
        if let Err(e) = file.write_all(data) {
            // A full disk must not stay full of the part that was written.
            drop(file);
            let _ = fs::remove_file(&temp);
            return Err(io_error("write", &temp)(e));
        }
        Ok(Staged { temp, sha256 })
    }

    /// Copies `reader` into a temp file, hashing as it goes, for objects
    /// too large to hold in memory (boxes); returns the staged object and
    /// its size. The temp file is in `tmp/`, on the pool's filesystem: the
    /// shard is known only once the last byte is hashed.
    pub fn stage_stream(&self, reader: &mut dyn Read) -> Result<(Staged, u64), PoolError> {
        use sha2::Digest;
        let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
        let temp = self.tmp.join(format!(".stream-{}-{n}", std::process::id()));
        for dir in [&self.tmp, &self.root] {
            fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        }
        let mut file = fs::File::create(&temp).map_err(io_error("create", &temp))?;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut size = 0u64;
        let copied = loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break Ok(()),
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(io_error("read the data for", &temp)(e)),
            };
            hasher.update(&buffer[..read]);
            size += read as u64;
            if let Err(e) = file.write_all(&buffer[..read]) {
                break Err(io_error("write", &temp)(e));
            }
        };
        if let Err(e) = copied {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        let sha256 = Sha256(hasher.finalize().into());
        Ok((Staged { temp, sha256 }, size))
    }

    /// Makes staged objects durable, then gives each its hash path.
    ///
    /// A crash before the rename leaves only temp files; after it, only
    /// complete objects: a reader never sees a partial object.
    pub fn commit(&self, staged: Vec<Staged>) -> Result<(), PoolError> {
        if staged.is_empty() {
            return Ok(());
        }
        let result = sync_filesystem(&self.root)
            .map_err(io_error("sync", &self.root))
            .and_then(|()| {
                staged
                    .par_iter()
                    .try_for_each(|object| self.publish_staged(object))
            })
            .and_then(|()| sync_filesystem(&self.root).map_err(io_error("sync", &self.root)));
        if result.is_err() {
            // A failed commit must not leave gigabytes of temp files behind.
            self.discard(staged);
        }
        result
    }

    /// Gives a durable temp file its hash name.
    fn publish_staged(&self, object: &Staged) -> Result<(), PoolError> {
        let dest = self.object_path(&object.sha256);
        // link(2), not rename(2): an object that a concurrent upload
        // already stored must keep its inode, or the public links made
        // to it would stop being links to the pool.
        let mut linked = fs::hard_link(&object.temp, &dest);
        if let (Err(e), Some(shard)) = (&linked, dest.parent())
            && e.kind() == io::ErrorKind::NotFound
        {
            // Streamed objects are staged in tmp/: their shard may be new.
            fs::create_dir_all(shard).map_err(io_error("create directory", shard))?;
            linked = fs::hard_link(&object.temp, &dest);
        }
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error("store", &dest)(e)),
        }
        fs::remove_file(&object.temp).map_err(io_error("remove", &object.temp))
    }

    /// Whether a file name in a shard is a temp file, not an object.
    pub fn is_temp_name(name: &str) -> bool {
        name.starts_with('.')
    }

    /// Whether a file name in a shard is a staging file [`Pool::stage`] made.
    pub fn is_staging_name(name: &str) -> bool {
        name.starts_with(STAGING_PREFIX)
    }

    /// Drops staged objects that will not be committed.
    pub fn discard(&self, staged: Vec<Staged>) {
        for object in staged {
            let _ = fs::remove_file(&object.temp);
        }
    }

    /// Hard-links the object to `dest` (creating parent directories).
    ///
    /// Returns `true` when a link was made, `false` when `dest` already is
    /// this object. Falls back to a copy where the filesystem refuses links.
    pub fn link(&self, sha256: &Sha256, dest: &Path) -> Result<LinkOutcome, PoolError> {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
        }
        self.link_in_place(sha256, dest)
    }

    /// [`Pool::link`] into a directory known to exist: publishing links
    /// tens of thousands of files into a few hundred directories, and
    /// asking for each directory again costs two system calls per file.
    pub fn link_in_place(&self, sha256: &Sha256, dest: &Path) -> Result<LinkOutcome, PoolError> {
        let object = self.object_path(sha256);
        match fs::hard_link(&object, dest) {
            Ok(()) => Ok(LinkOutcome::Linked),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => self.relink(&object, dest),
            Err(e) if is_cross_device_or_unsupported(&e) => {
                durable::copy_atomically(&object, dest, &self.tmp)
                    .map_err(io_error("copy", dest))?;
                Ok(LinkOutcome::Copied)
            }
            Err(e) => Err(io_error("link", dest)(e)),
        }
    }

    /// Links objects into one existing directory, as `(file name, object)`
    /// pairs. The pool and the directory are each opened once, so the
    /// kernel resolves two short names per link instead of two whole paths:
    /// a first publish makes tens of thousands of links, and walking their
    /// paths was half of their cost. Anything unusual (the name exists,
    /// another filesystem) goes through [`Pool::link_in_place`].
    pub fn link_into_dir<'n>(
        &self,
        dir: &Path,
        files: impl Iterator<Item = (&'n str, Sha256)>,
    ) -> Result<(), PoolError> {
        let pool = open_dir_path(&self.root).map_err(io_error("open", &self.root))?;
        let target = open_dir_path(dir).map_err(io_error("open", dir))?;
        for (name, sha256) in files {
            let hex = sha256.to_hex();
            let object = format!("{}/{hex}", &hex[..2]);
            let flags = rustix::fs::AtFlags::empty();
            let linked = rustix::fs::linkat(&pool, object.as_str(), &target, name, flags).is_ok();
            if !linked {
                self.link_in_place(&sha256, &dir.join(name))?;
            }
        }
        Ok(())
    }

    /// `dest` exists: keep it if it is the object, else replace it atomically.
    fn relink(&self, object: &Path, dest: &Path) -> Result<LinkOutcome, PoolError> {
        if same_file(object, dest) {
            return Ok(LinkOutcome::AlreadyThere);
        }
        let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
        let temp = self.tmp.join(format!("link-{}-{n}", std::process::id()));
        fs::hard_link(object, &temp).map_err(io_error("link", &temp))?;
        fs::rename(&temp, dest).map_err(io_error("rename into place", dest))?;
        Ok(LinkOutcome::Linked)
    }
}

/// What [`Pool::link`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    Linked,
    AlreadyThere,
    Copied,
}

/// A descriptor naming a directory, for the `*at` system calls.
fn open_dir_path(dir: &Path) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)?;
    Ok(file.into())
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn is_cross_device_or_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EXDEV) | Some(libc::EPERM) | Some(libc::EOPNOTSUPP)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(dir: &Path) -> Pool {
        fs::create_dir_all(dir.join("tmp")).unwrap();
        Pool::new(dir.join("pool"), dir.join("tmp"))
    }

    #[test]
    fn stage_commit_link() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path());
        let data = b"hello pool";
        let sha = Digests::of(data).sha256;
        assert!(!pool.contains(&sha));
        let staged = pool.stage(sha, data).unwrap();
        pool.commit(vec![staged]).unwrap();
        assert_eq!(fs::read(pool.object_path(&sha)).unwrap(), data);
        let dest = dir.path().join("public/a/b.deb");
        assert_eq!(pool.link(&sha, &dest).unwrap(), LinkOutcome::Linked);
        assert_eq!(pool.link(&sha, &dest).unwrap(), LinkOutcome::AlreadyThere);
        assert!(same_file(&pool.object_path(&sha), &dest));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn streamed_objects_are_hashed_while_copied() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path());
        let data = vec![5u8; 3 << 20];
        let (staged, size) = pool.stage_stream(&mut &data[..]).unwrap();
        assert_eq!(size, data.len() as u64);
        let sha = Digests::sha256_of(&data);
        assert_eq!(staged.sha256(), sha);
        pool.commit(vec![staged]).unwrap();
        assert_eq!(fs::read(pool.object_path(&sha)).unwrap(), data);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn link_replaces_a_foreign_file() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path());
        let sha = Digests::of(b"x").sha256;
        pool.commit(vec![pool.stage(sha, b"x").unwrap()]).unwrap();
        let dest = dir.path().join("d.deb");
        fs::write(&dest, b"stale").unwrap();
        assert_eq!(pool.link(&sha, &dest).unwrap(), LinkOutcome::Linked);
        assert_eq!(fs::read(&dest).unwrap(), b"x");
    }

    #[test]
    fn links_into_a_directory_new_kept_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path());
        let objects: Vec<Sha256> = [&b"one"[..], b"two", b"three"]
            .iter()
            .map(|data| {
                let sha = Digests::of(data).sha256;
                pool.commit(vec![pool.stage(sha, data).unwrap()]).unwrap();
                sha
            })
            .collect();
        let target = dir.path().join("public");
        fs::create_dir_all(&target).unwrap();
        pool.link(&objects[1], &target.join("b.deb")).unwrap();
        fs::write(target.join("c.deb"), b"stale").unwrap();
        let names = ["a.deb", "b.deb", "c.deb"];
        pool.link_into_dir(&target, names.into_iter().zip(objects.iter().copied()))
            .unwrap();
        for (name, sha) in names.iter().zip(&objects) {
            assert!(
                same_file(&pool.object_path(sha), &target.join(name)),
                "{name}"
            );
        }
        assert_eq!(fs::read(target.join("c.deb")).unwrap(), b"three");
    }
}
