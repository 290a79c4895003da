//! An in-memory cache of small published files, shared by all connections.
//!
//! Everything bess serves is immutable once published: pool files are
//! hard links to content-addressed objects and index files are written
//! once into a new generation. A file's identity (device, inode, size,
//! modification time) therefore names its bytes, and a hit can be answered
//! with a reference-counted `Bytes` instead of a fresh read and allocation
//! per request. That matters for the index files every apt client fetches
//! at once: reading a few hundred KiB into a new buffer per request is what
//! made bess fall behind nginx's sendfile at hundreds of connections.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What identifies a file's bytes: a rewritten or replaced file differs in
/// at least one of these, so it can never be answered with stale bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Identity {
    device: u64,
    inode: u64,
    size: u64,
    modified_ns: i64,
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.len(),
            modified_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        }
    }
}

/// Files' bytes by identity, within a byte budget; the oldest entries go
/// first when it is exceeded. Clones share the same entries.
#[derive(Clone)]
pub struct FileCache {
    budget: u64,
    largest: u64,
    entries: Arc<Mutex<Entries>>,
}

#[derive(Default)]
struct Entries {
    bytes: HashMap<Identity, Bytes>,
    order: VecDeque<Identity>,
    held: u64,
}

impl FileCache {
    /// A cache holding at most `budget` bytes; files larger than an eighth
    /// of it are never cached, so one file cannot flush all the others.
    pub fn new(budget: u64) -> FileCache {
        FileCache {
            budget,
            largest: budget / 8,
            entries: Arc::default(),
        }
    }

    /// Whether a file of this size is kept in memory.
    pub fn admits(&self, size: u64) -> bool {
        size <= self.largest
    }

    /// The contents of the file with this metadata, if in memory.
    pub fn cached(&self, meta: &std::fs::Metadata) -> Option<Bytes> {
        self.lock().bytes.get(&Identity::of(meta)).cloned()
    }

    /// The whole contents of `file` (whose metadata is `meta`), from memory
    /// when possible; `None` when the file cannot be read whole.
    pub fn contents(&self, file: &mut std::fs::File, meta: &std::fs::Metadata) -> Option<Bytes> {
        if let Some(hit) = self.cached(meta) {
            return Some(hit);
        }
        let identity = Identity::of(meta);
        let data = if meta.len() >= super::sendfile::MAP_AT_LEAST {
            // Mapped, not read: plain connections send it with sendfile.
            super::sendfile::map(file, meta.len()).ok()?
        } else {
            let mut data = Vec::with_capacity(meta.len() as usize);
            file.read_to_end(&mut data).ok()?;
            // A file that changed size while read is not the one identified.
            if data.len() as u64 != meta.len() {
                return None;
            }
            Bytes::from(data)
        };
        if self.admits(meta.len()) {
            self.insert(identity, data.clone());
        }
        Some(data)
    }

    fn insert(&self, identity: Identity, data: Bytes) {
        let mut entries = self.lock();
        if entries.bytes.contains_key(&identity) {
            return;
        }
        entries.held += data.len() as u64;
        entries.bytes.insert(identity, data);
        entries.order.push_back(identity);
        while entries.held > self.budget {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            if let Some(gone) = entries.bytes.remove(&oldest) {
                entries.held -= gone.len() as u64;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Open directories of the published channel trees, so that a request
/// resolves its path from a held descriptor instead of opening the
/// channel's directory again.
#[derive(Default)]
pub struct TreeRoots {
    roots: Mutex<HashMap<PathBuf, (Arc<std::fs::File>, Instant)>>,
}

/// How long a held tree is trusted before checking it still exists.
const RECHECK: Duration = Duration::from_secs(1);

impl TreeRoots {
    /// The open directory `tree`, reopened when the one held was deleted
    /// (a tree removed and published again is a new directory).
    pub fn get(&self, tree: &Path) -> Option<Arc<std::fs::File>> {
        let mut roots = self.roots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((root, checked)) = roots.get_mut(tree) {
            if checked.elapsed() < RECHECK {
                return Some(root.clone());
            }
            if root.metadata().is_ok_and(|m| m.nlink() > 0) {
                *checked = Instant::now();
                return Some(root.clone());
            }
        }
        let root = Arc::new(std::fs::File::open(tree).ok()?);
        roots.insert(tree.to_path_buf(), (root.clone(), Instant::now()));
        Some(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(dir: &std::path::Path, name: &str, data: &[u8]) -> std::fs::File {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(data)
            .unwrap();
        std::fs::File::open(path).unwrap()
    }

    #[test]
    fn hits_share_bytes_and_changes_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(1 << 20);
        let mut file = file_with(dir.path(), "a", b"first");
        let meta = file.metadata().unwrap();
        let one = cache.contents(&mut file, &meta).unwrap();
        let mut again = std::fs::File::open(dir.path().join("a")).unwrap();
        let two = cache.contents(&mut again, &meta).unwrap();
        assert_eq!(one, "first");
        assert_eq!(one.as_ptr(), two.as_ptr(), "a hit shares the cached bytes");

        // Replaced by a new file (new inode): the old bytes are not served.
        std::fs::remove_file(dir.path().join("a")).unwrap();
        let mut file = file_with(dir.path(), "a", b"second, longer");
        let meta = file.metadata().unwrap();
        assert_eq!(cache.contents(&mut file, &meta).unwrap(), "second, longer");
    }

    #[test]
    fn budget_evicts_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(8 * 100);
        for i in 0..20 {
            let mut file = file_with(dir.path(), &format!("f{i}"), &[i as u8; 100]);
            let meta = file.metadata().unwrap();
            cache.contents(&mut file, &meta).unwrap();
        }
        let entries = cache.lock();
        assert!(entries.held <= 800, "held {} bytes", entries.held);
        assert_eq!(entries.bytes.len(), 8);
    }

    #[test]
    fn large_files_are_read_but_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(800);
        let mut file = file_with(dir.path(), "big", &[7; 101]);
        let meta = file.metadata().unwrap();
        assert_eq!(cache.contents(&mut file, &meta).unwrap().len(), 101);
        assert_eq!(cache.lock().held, 0);
    }

    #[test]
    fn a_deleted_tree_is_opened_again() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("prod");
        std::fs::create_dir(&tree).unwrap();
        let roots = TreeRoots::default();
        let first = roots.get(&tree).unwrap();
        assert!(Arc::ptr_eq(&first, &roots.get(&tree).unwrap()));
        std::fs::remove_dir(&tree).unwrap();
        std::thread::sleep(RECHECK);
        assert!(roots.get(&tree).is_none());
        std::fs::create_dir(&tree).unwrap();
        let again = roots.get(&tree).unwrap();
        assert_eq!(
            again.metadata().unwrap().ino(),
            std::fs::metadata(&tree).unwrap().ino()
        );
    }
}
