//! Open repository handles kept between API requests: each holds the
//! parsed configuration and a catalog connection, which opening per
//! request would read, parse and migrate-check again every time.

use crate::ops::{Actor, OpsError, Repo};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Idle handles kept at most; a burst beyond it opens more and drops them after.
const MAX_IDLE: usize = 4;

/// Page cache of an idle handle, in KiB: whatever a request grew it to
/// (a publish reads every control paragraph) is let go between requests.
const IDLE_PAGE_CACHE_KIB: u32 = 8 * 1024;

/// The handles of the repository at `root`.
pub struct Repos {
    root: PathBuf,
    idle: Mutex<Vec<Repo>>,
}

impl Repos {
    pub fn new(root: &Path) -> Repos {
        Repos {
            root: root.to_path_buf(),
            idle: Mutex::default(),
        }
    }

    /// Runs `work` on a handle (blocking: call it off the async threads).
    pub fn with<T>(
        &self,
        work: impl FnOnce(&mut Repo) -> Result<T, OpsError>,
    ) -> Result<T, OpsError> {
        let idle = self.idle.lock().expect("repos lock").pop();
        let mut repo = match idle {
            Some(repo) => repo,
            None => Repo::open(&self.root)?,
        };
        let result = work(&mut repo);
        // What a request set is not handed to the next one.
        repo.actor = Actor::default();
        let reset = repo.catalog.limit_page_cache(IDLE_PAGE_CACHE_KIB);
        let mut idle = self.idle.lock().expect("repos lock");
        if reset.is_ok() && idle.len() < MAX_IDLE {
            idle.push(repo);
        }
        result
    }
}
