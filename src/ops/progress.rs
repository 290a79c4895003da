//! How a long operation tells its caller how far it has come. The CLI draws
//! progress bars from it; the server and the library default report nothing,
//! so `ops` never depends on a terminal.

use std::sync::Arc;

/// Receives the stages of long operations (ingest, publish, check, backup).
pub trait Progress: Send + Sync {
    /// Starts a stage of `total` units named `label`; `bytes` says whether
    /// the units are bytes (else items). The stage ends when dropped.
    fn stage(&self, label: &str, total: u64, bytes: bool) -> Box<dyn Stage>;
}

/// One running stage; parallel workers may advance it concurrently.
pub trait Stage: Send + Sync {
    /// Counts `n` more units done.
    fn advance(&self, n: u64);
}

/// Reports nothing: the default of every [`super::Repo`].
pub struct Silent;

impl Progress for Silent {
    fn stage(&self, _label: &str, _total: u64, _bytes: bool) -> Box<dyn Stage> {
        Box::new(Silent)
    }
}

impl Stage for Silent {
    fn advance(&self, _n: u64) {}
}

/// The reporter a repository starts with.
pub fn silent() -> Arc<dyn Progress> {
    Arc::new(Silent)
}
