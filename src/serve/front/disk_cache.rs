//! The frontend's bounded disk cache of content-addressed files (pool
//! objects, box files, index files by hash), least recently served first
//! out.
//!
//! Every file is named by its SHA-256 and checked against it while it is
//! downloaded, so a cache entry is either whole and right or absent: a
//! download goes to `tmp/` and is renamed into `objects/` only once its
//! hash matched. One download per file at a time; other requests for it
//! wait and then read the cached copy. Evicting a file a response is
//! still sending is safe: the open descriptor keeps its bytes.

use super::store::{Store, StoreError};
use crate::pool::Sha256;
use futures::StreamExt;
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

/// Why a cached file cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{key} in the store does not have the SHA-256 it is published under ({expected}); not served"
    )]
    Mismatch { key: String, expected: String },
    #[error("cannot write the cache file {path}: {source}")]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The cache directory and what it holds.
pub struct DiskCache {
    dir: PathBuf,
    max_bytes: u64,
    held: Mutex<Lru>,
    fetching: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    /// Files served from the cache, and fetched from the store into it.
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Bytes fetched from the store into the cache.
    pub fetched_bytes: AtomicU64,
}

/// Entries by recency: a tick per use, the oldest evicted first.
#[derive(Default)]
struct Lru {
    tick: u64,
    by_digest: HashMap<[u8; 32], (u64, u64)>,
    by_tick: BTreeMap<u64, [u8; 32]>,
    total: u64,
}

impl Lru {
    fn touch(&mut self, digest: [u8; 32], size: u64) {
        self.tick += 1;
        if let Some((old, old_size)) = self.by_digest.insert(digest, (self.tick, size)) {
            self.by_tick.remove(&old);
            self.total -= old_size;
        }
        self.by_tick.insert(self.tick, digest);
        self.total += size;
    }

    fn oldest(&mut self) -> Option<([u8; 32], u64)> {
        let (_, digest) = self.by_tick.pop_first()?;
        let (_, size) = self.by_digest.remove(&digest)?;
        self.total -= size;
        Some((digest, size))
    }
}

impl DiskCache {
    /// Opens the cache in `dir`, taking in what an earlier run left there
    /// (oldest first by modification time) and dropping half-written files.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<DiskCache, CacheError> {
        let local = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Local { path, source }
        };
        let tmp = dir.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(local(&tmp))?;
        let objects = dir.join("objects");
        std::fs::create_dir_all(&objects).map_err(local(&objects))?;
        let mut found = Vec::new();
        for entry in walkdir::WalkDir::new(&objects).into_iter().flatten() {
            let name = entry.file_name().to_string_lossy();
            let (Some(digest), Ok(meta)) = (Sha256::from_hex(&name), entry.metadata()) else {
                continue;
            };
            if meta.is_file() {
                found.push((meta.modified().ok(), digest.0, meta.len()));
            }
        }
        found.sort();
        let mut lru = Lru::default();
        for (_, digest, size) in found {
            lru.touch(digest, size);
        }
        let cache = DiskCache {
            dir: dir.to_path_buf(),
            max_bytes,
            held: Mutex::new(lru),
            fetching: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            fetched_bytes: AtomicU64::new(0),
        };
        cache.evict();
        Ok(cache)
    }

    /// Whether a file of `size` bytes may be kept; larger ones are streamed.
    pub fn admits(&self, size: u64) -> bool {
        size <= self.max_bytes / 2
    }

    fn path(&self, digest: &Sha256) -> PathBuf {
        let hex = digest.to_hex();
        self.dir.join("objects").join(&hex[..2]).join(hex)
    }

    /// The cached file with these bytes, fetched from `rel` in the store
    /// first if needed.
    pub async fn open_file(
        &self,
        store: &Store,
        digest: Sha256,
        rel: &str,
    ) -> Result<std::fs::File, CacheError> {
        if let Some(file) = self.cached(&digest) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(file);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let turn = self
            .fetching
            .lock()
            .expect("cache lock")
            .entry(digest.0)
            .or_default()
            .clone();
        let _turn = turn.lock().await;
        let result = match self.cached(&digest) {
            Some(file) => Ok(file),
            None => self.download(store, &digest, rel).await,
        };
        self.fetching.lock().expect("cache lock").remove(&digest.0);
        result
    }

    /// The cached file, marked as just used.
    fn cached(&self, digest: &Sha256) -> Option<std::fs::File> {
        let file = std::fs::File::open(self.path(digest)).ok()?;
        let size = file.metadata().ok()?.len();
        self.held.lock().expect("cache lock").touch(digest.0, size);
        Some(file)
    }

    /// Downloads `rel`, checking it has the SHA-256 `digest`, into the cache.
    async fn download(
        &self,
        store: &Store,
        digest: &Sha256,
        rel: &str,
    ) -> Result<std::fs::File, CacheError> {
        let hex = digest.to_hex();
        let tmp = self
            .dir
            .join("tmp")
            .join(format!("{hex}.{}", std::process::id()));
        let local = |source| CacheError::Local {
            path: tmp.clone(),
            source,
        };
        let mut out = tokio::fs::File::create(&tmp).await.map_err(local)?;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        let mut body = store.stream(rel).await?.into_stream();
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|source| StoreError::Read {
                key: store.key(rel),
                source,
            })?;
            hasher.update(&piece);
            size += piece.len() as u64;
            out.write_all(&piece).await.map_err(local)?;
        }
        out.flush().await.map_err(local)?;
        drop(out);
        if <[u8; 32]>::from(hasher.finalize()) != digest.0 {
            let _ = std::fs::remove_file(&tmp);
            return Err(CacheError::Mismatch {
                key: store.key(rel),
                expected: hex,
            });
        }
        let path = self.path(digest);
        let parent = path.parent().expect("objects/xx");
        std::fs::create_dir_all(parent).map_err(local)?;
        std::fs::rename(&tmp, &path).map_err(local)?;
        let file = std::fs::File::open(&path).map_err(local)?;
        self.held.lock().expect("cache lock").touch(digest.0, size);
        self.fetched_bytes.fetch_add(size, Ordering::Relaxed);
        self.evict();
        Ok(file)
    }

    /// Removes the least recently used files until the cache fits.
    fn evict(&self) {
        loop {
            let victim = {
                let mut held = self.held.lock().expect("cache lock");
                if held.total <= self.max_bytes || held.by_tick.len() <= 1 {
                    return;
                }
                held.oldest()
            };
            let Some((digest, _)) = victim else { return };
            let _ = std::fs::remove_file(self.path(&Sha256(digest)));
        }
    }

    /// Bytes held now.
    pub fn total(&self) -> u64 {
        self.held.lock().expect("cache lock").total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_go_first_and_a_restart_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path(), 25).unwrap();
        let put = |n: u8| {
            let digest = Sha256([n; 32]);
            let path = cache.path(&digest);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, [n; 10]).unwrap();
            cache.held.lock().unwrap().touch(digest.0, 10);
            cache.evict();
        };
        put(1);
        put(2);
        assert!(cache.cached(&Sha256([1; 32])).is_some(), "1 used again");
        put(3);
        assert!(cache.cached(&Sha256([2; 32])).is_none(), "2 was oldest");
        assert!(cache.cached(&Sha256([1; 32])).is_some());
        assert_eq!(cache.total(), 20);
        drop(cache);
        let again = DiskCache::open(dir.path(), 25).unwrap();
        assert_eq!(again.total(), 20);
    }
}
