//! Use cases that combine the layers: init, ingest, queries, promote,
//! remove, the same for Vagrant boxes, retention and the audit log. The CLI
//! and the HTTP API both call these, so a remote upload and a local one run
//! the same code.

mod actor;
mod admitted;
mod audit;
mod backup;
mod box_tree;
mod boxes;
mod check;
mod clock;
mod env;
mod error;
mod gc;
// malloc_trim is a foreign function, so calling it is unsafe.
#[allow(unsafe_code)]
mod heap;
pub mod host;
mod incoming;
mod ingest;
mod init;
mod keys;
mod lock;
mod package_file;
mod pool_layout;
pub mod progress;
mod promote;
mod prune;
mod publish;
mod query;
mod refresh;
mod selector;
mod stats;
mod targets;
mod users;

pub use actor::Actor;
pub use audit::{LogEntry, LogQuery, log};
pub use clock::{parse_time, rfc3339};
pub use gc::{GcOutcome, GcRequest, gc};
pub use keys::{generate_key, retire_key};
pub use prune::{PinRequest, PruneOutcome, PruneRequest, PrunedPlacement, pin, pins, prune, unpin};
pub use stats::{ChannelStats, DistStats, Stats, stats};
pub(crate) use targets::s3_credentials;

pub use backup::{
    BackupReport, BackupRequest, CopyCounts, RestoreReport, RestoreRequest, backup, restore,
};
pub use boxes::{
    BoxAddRequest, BoxChange, BoxPlacement, BoxSelector, add_box, box_file_path, list_boxes,
    promote_box, remove_box,
};
pub use check::{CheckReport, check};
pub use env::{
    EnvInitRequest, EnvStatus, EnvironmentUrls, EnvironmentView, MachineOutcome, MachineStatus,
    MachineView, PackageView, PlatformBuild, PlatformBuildRequest, PlatformCheck,
    PlatformCheckItem, PlatformInitRequest, PlatformView, StepView, UpdateOutcome, build_platform,
    check_platform, destroy_environment, destroy_platform, env_halt, env_inventory, env_status,
    env_up, env_update, environment_urls, init_environment, init_platform, list_environments,
    list_platforms, machine_logs, recover, show_environment, show_platform, ssh_command,
    update_platform,
};
pub use env::{EnvironmentOutcome, platform_halt, platform_up, platform_verdict};
pub use error::OpsError;
pub use incoming::{
    DropDir, FailedUpload, IncomingOutcome, NoWatch, RejectedUpload, TakenUpload, Upload,
    WaitingUpload, WriteWatch, process_incoming,
};
pub use ingest::{IngestOutcome, IngestRequest, IngestTotals, IngestedPackage, ingest};
pub use init::{InitRequest, init};
pub use promote::{ChangedPlacement, PromoteRequest, RemoveRequest, promote, remove};
pub use publish::{
    Publication, PublishRequest, Published, publish, publish_everywhere, sync_targets,
};
pub use query::{Listing, PackageVersions, diff, list, versions};
pub use refresh::{Failure, RefreshReport, Refreshed, Validity, is_due, refresh, validities};
pub use selector::Selector;
pub use targets::{TargetGc, TargetSync};
pub use users::{
    NewUser, add_user, hash_password, list_users, remove_user, set_password, verify_password,
    verify_password_in,
};

use crate::catalog::Catalog;
use crate::config::RepoConfig;
use crate::pool::Pool;
use crate::publish::PoolTree;
use std::path::Path;

/// An open repository: its configuration, catalog and pool, and who is
/// changing it (for the audit log).
pub struct Repo {
    pub config: RepoConfig,
    pub catalog: Catalog,
    pub pool: Pool,
    /// The local user unless `bess serve` acts for an HTTP user.
    pub actor: Actor,
    /// Where long operations report how far they have come (nowhere by default).
    pub progress: std::sync::Arc<dyn progress::Progress>,
}

impl Repo {
    /// Opens the repository at `root`.
    pub fn open(root: &Path) -> Result<Repo, OpsError> {
        if root.join(backup::restore::UNFINISHED).exists() {
            return Err(OpsError::Usage(format!(
                "{} holds a restore that did not finish; run the same `bess restore` again \
                 (it starts over), or delete the directory",
                root.display()
            )));
        }
        Repo::open_restoring(root)
    }

    /// [`Repo::open`] without refusing an unfinished restore: for the
    /// restore itself, which publishes the repository it rebuilds.
    pub(crate) fn open_restoring(root: &Path) -> Result<Repo, OpsError> {
        let config = RepoConfig::load(root)?;
        let layout = &config.layout;
        let catalog = Catalog::open(&layout.catalog_file())?;
        let pool = Pool::new(layout.pool_dir(), layout.tmp_dir());
        Ok(Repo {
            config,
            catalog,
            pool,
            actor: Actor::Cli,
            progress: progress::silent(),
        })
    }

    /// The published pool trees.
    pub fn tree(&self) -> PoolTree<'_> {
        PoolTree::new(&self.config.layout, &self.pool)
    }

    /// Checks that `channel` is configured.
    pub fn check_channel(&self, channel: &str) -> Result<(), OpsError> {
        if self.config.settings.channels.iter().any(|c| c == channel) {
            return Ok(());
        }
        Err(OpsError::Usage(format!(
            "unknown channel `{channel}`; channels in {} are: {}",
            self.config.layout.settings_file().display(),
            self.config.settings.channels.join(", ")
        )))
    }

    /// Checks that every dist is listed in `dists.list`.
    pub fn check_dists(&self, dists: &[String]) -> Result<(), OpsError> {
        for dist in dists {
            if !self.config.dists.contains(dist) {
                return Err(OpsError::Usage(format!(
                    "unknown dist `{dist}`; add it to {} or use one of: {}",
                    self.config.layout.dists_file().display(),
                    self.config.dists.names().join(", ")
                )));
            }
        }
        Ok(())
    }
}
