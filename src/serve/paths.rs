//! Published paths resolved moments ago, answered without opening them again.
//!
//! apt clients ask for the same few paths over and over (`InRelease`, the
//! `Packages.xz` it lists, popular `.deb`s). Opening, checking and closing
//! the file for every request is three system calls for an answer whose
//! bytes are in memory anyway; nginx keeps an `open_file_cache` for the
//! same reason. Here a path whose file is in the [`FileCache`] maps to
//! those bytes directly.
//!
//! A path names another file only after a publish (a dist switched to a
//! new generation, pool files withdrawn), and every publish bumps the
//! publish serial, read here through a shared mapping on each lookup: a
//! change forgets every path at once, so no request after a finished
//! publish gets what the path named before. Entries are also trusted for
//! [`TRUST`] at most, which bounds what a change outside bess (a tree
//! restored over the old one) could leave behind.
//!
//! [`FileCache`]: super::cache::FileCache

use super::files::Loaded;
use crate::serial::{SerialWatch, publish_serial};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a resolved path is trusted without opening it again.
const TRUST: Duration = Duration::from_secs(1);

/// At most this many paths are remembered; when full, the map is cleared
/// and refills with whatever is asked for next.
const MAX_PATHS: usize = 16 * 1024;

/// Resolved paths per channel; disabled (every lookup a miss) when the
/// serial cannot be mapped, since then changes could not be noticed.
pub struct ResolvedPaths {
    inner: Option<Mutex<Inner>>,
}

struct Inner {
    watch: SerialWatch,
    /// The serial the entries were resolved under.
    serial: u64,
    /// When the serial file was last checked for having been replaced.
    checked: Instant,
    channels: HashMap<String, HashMap<PathBuf, Entry>>,
    count: usize,
}

struct Entry {
    loaded: Loaded,
    resolved: Instant,
}

/// The serial a lookup missed under: what it resolves is remembered only
/// if no publish finished meanwhile.
#[derive(Clone, Copy)]
pub struct Ticket(Option<u64>);

impl ResolvedPaths {
    /// Watches the serial of the trees under `public_dir`.
    pub fn open(public_dir: &Path) -> ResolvedPaths {
        match SerialWatch::open(&publish_serial(public_dir)) {
            Ok(watch) => ResolvedPaths {
                inner: Some(Mutex::new(Inner {
                    serial: watch.current(),
                    watch,
                    checked: Instant::now(),
                    channels: HashMap::new(),
                    count: 0,
                })),
            },
            Err(e) => {
                eprintln!(
                    "warning: cannot map the publish serial in {} ({e}); every request opens its file",
                    public_dir.display()
                );
                ResolvedPaths { inner: None }
            }
        }
    }

    /// Nothing remembered, ever: for a server without local trees.
    pub fn disabled() -> ResolvedPaths {
        ResolvedPaths { inner: None }
    }

    /// The bytes `channel`'s `path` named when last resolved, if still trusted.
    pub fn get(&self, channel: &str, path: &Path) -> (Option<Loaded>, Ticket) {
        let Some(inner) = &self.inner else {
            return (None, Ticket(None));
        };
        let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        inner.catch_up(now);
        let hit = inner
            .channels
            .get(channel)
            .and_then(|paths| paths.get(path))
            .filter(|entry| now.duration_since(entry.resolved) < TRUST)
            .map(|entry| entry.loaded.clone());
        (hit, Ticket(Some(inner.serial)))
    }

    /// Remembers what `path` resolved to, unless a publish finished since `ticket`.
    pub fn remember(&self, ticket: Ticket, channel: &str, path: &Path, loaded: Loaded) {
        let (Some(inner), Ticket(Some(serial))) = (&self.inner, ticket) else {
            return;
        };
        let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        inner.catch_up(now);
        if inner.serial != serial {
            return;
        }
        if inner.count >= MAX_PATHS {
            inner.forget();
        }
        let entry = Entry {
            loaded,
            resolved: now,
        };
        let paths = inner.channels.entry(channel.to_string()).or_default();
        if paths.insert(path.to_path_buf(), entry).is_none() {
            inner.count += 1;
        }
    }
}

impl Inner {
    /// Forgets everything after a publish; drops entries past their trust
    /// now and then, so they do not hold bytes the file cache let go.
    fn catch_up(&mut self, now: Instant) {
        if now.duration_since(self.checked) >= TRUST {
            self.checked = now;
            if let Err(e) = self.watch.remap_if_replaced() {
                eprintln!("warning: cannot map the publish serial again: {e}");
            }
            self.drop_untrusted(now);
        }
        let serial = self.watch.current();
        if serial != self.serial {
            self.serial = serial;
            self.forget();
        }
    }

    fn drop_untrusted(&mut self, now: Instant) {
        let mut count = 0;
        for paths in self.channels.values_mut() {
            paths.retain(|_, entry| now.duration_since(entry.resolved) < TRUST);
            count += paths.len();
        }
        self.count = count;
    }

    fn forget(&mut self) {
        self.channels.clear();
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::files::FileInfo;
    use bytes::Bytes;
    use std::sync::Arc;

    fn loaded(text: &'static str) -> Loaded {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, text).unwrap();
        Loaded {
            info: Arc::new(FileInfo::of(&std::fs::metadata(&path).unwrap())),
            data: Bytes::from_static(text.as_bytes()),
        }
    }

    #[test]
    fn a_publish_forgets_every_path() {
        let public = tempfile::tempdir().unwrap();
        let paths = ResolvedPaths::open(public.path());
        let name = Path::new("dists/bookworm/InRelease");
        let (miss, ticket) = paths.get("prod", name);
        assert!(miss.is_none());
        paths.remember(ticket, "prod", name, loaded("old"));
        let (hit, _) = paths.get("prod", name);
        assert_eq!(hit.unwrap().data, "old");
        assert!(paths.get("preprod", name).0.is_none(), "per channel");
        crate::serial::bump(&publish_serial(public.path())).unwrap();
        assert!(paths.get("prod", name).0.is_none());
    }

    #[test]
    fn what_was_resolved_before_a_publish_is_not_remembered_after_it() {
        let public = tempfile::tempdir().unwrap();
        let paths = ResolvedPaths::open(public.path());
        let name = Path::new("dists/bookworm/InRelease");
        let (_, ticket) = paths.get("prod", name);
        crate::serial::bump(&publish_serial(public.path())).unwrap();
        paths.remember(ticket, "prod", name, loaded("old"));
        assert!(paths.get("prod", name).0.is_none());
    }
}
