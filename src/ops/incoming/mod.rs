//! `bess incoming process`: the drop directory that CI jobs copy builds
//! into by scp or sftp, ingested through the same `ingest` as the CLI.
//!
//! One pass: finish the uploads an interrupted pass had claimed, find
//! the complete uploads (a quiet `.deb`, or a `.changes` with every file
//! it lists), claim each by renaming it into `.claimed/<id>/`, verify it
//! there (where the uploader can no longer change it), ingest it in one
//! catalog transaction, then delete it (or move it to `processed/`), or
//! move it to `rejected/` beside a `.reason` file. Every step can be
//! interrupted by kill -9: the next pass redoes a claim from the start,
//! and re-ingesting bytes already placed adds nothing and records nothing.
//! `incoming/<dist>/` targets one dist, the top level every dist.

mod claim;
mod scan;
mod settle;

use super::publish::{PublishRequest, Published, publish};
use super::{IngestedPackage, OpsError, Repo};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What a watcher of the drop directory knows about writes in progress.
pub trait WriteWatch {
    /// Whether `path` was written since the last time it was closed.
    fn is_being_written(&self, path: &Path) -> bool;
}

/// No watcher: only the files' own history tells (`bess incoming process`).
pub struct NoWatch;

impl WriteWatch for NoWatch {
    fn is_being_written(&self, _path: &Path) -> bool {
        false
    }
}

/// An upload: one `.deb`, or a `.changes` and the files it lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Upload {
    /// The subdirectory it was dropped in (a dist), or "" for the top level.
    pub dir: String,
    /// The file that names it: the `.deb` or the `.changes`.
    pub name: String,
    /// Every file of it, `name` first.
    pub files: Vec<String>,
}

impl Upload {
    fn new(dir: &str, name: &str) -> Upload {
        Upload {
            dir: dir.to_string(),
            name: name.to_string(),
            files: vec![name.to_string()],
        }
    }

    /// `dist/name`, or `name` at the top level.
    pub fn display(&self) -> String {
        match self.dir.as_str() {
            "" => self.name.clone(),
            dir => format!("{dir}/{}", self.name),
        }
    }

    fn is_changes(&self) -> bool {
        self.name.ends_with(".changes")
    }
}

/// An upload that was ingested (or found already in the repository).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TakenUpload {
    /// `dist/name` or `name`, relative to the drop directory.
    pub upload: String,
    pub files: Vec<String>,
    pub packages: Vec<IngestedPackage>,
    /// Where the upload's files went: `processed/`, or nowhere (deleted).
    pub kept_in: Option<PathBuf>,
}

/// An upload refused and moved to `rejected/`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RejectedUpload {
    pub upload: String,
    pub files: Vec<String>,
    /// The error, as written to `rejected/<name>.reason`.
    pub reason: String,
}

/// An upload left where it is for now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WaitingUpload {
    pub upload: String,
    pub reason: String,
}

/// An upload that could not be processed for a reason of the server's (a
/// full disk, a locked catalog); it stays claimed and is retried.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailedUpload {
    pub upload: String,
    pub error: String,
}

/// The result of one pass.
#[derive(Debug, Default, serde::Serialize)]
pub struct IncomingOutcome {
    pub taken: Vec<TakenUpload>,
    pub rejected: Vec<RejectedUpload>,
    pub waiting: Vec<WaitingUpload>,
    pub failed: Vec<FailedUpload>,
    pub published: Vec<Published>,
    /// When a waiting file will have been quiet long enough to be taken.
    #[serde(skip)]
    pub recheck_in: Option<Duration>,
}

impl IncomingOutcome {
    /// Adds a later pass: its uploads, and what it still waits for.
    pub fn merge(&mut self, later: IncomingOutcome) {
        self.taken.extend(later.taken);
        self.rejected.extend(later.rejected);
        self.failed.extend(later.failed);
        self.published.extend(later.published);
        self.waiting = later.waiting;
        self.recheck_in = later.recheck_in;
    }

    /// One line per upload taken, rejected or failed, as `bess incoming
    /// process` and `bess serve` print them on stderr.
    pub fn log_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for taken in &self.taken {
            for p in &taken.packages {
                let change = match p.placements_added {
                    0 => "already in",
                    _ => "into",
                };
                lines.push(format!(
                    "incoming: took {}: {} {} ({}) {change} {} {} {}",
                    taken.upload,
                    p.package,
                    p.version,
                    p.architecture,
                    p.channel,
                    p.dists.join(","),
                    p.component
                ));
            }
        }
        for rejected in &self.rejected {
            lines.push(format!(
                "incoming: rejected {} (moved to rejected/): {}",
                rejected.upload, rejected.reason
            ));
        }
        for failed in &self.failed {
            lines.push(format!(
                "incoming: could not process {}; the next pass retries it: {}",
                failed.upload, failed.error
            ));
        }
        lines
    }
}

/// The drop directory and bess's own subdirectories in it.
#[derive(Debug, Clone)]
pub struct DropDir {
    root: PathBuf,
}

impl DropDir {
    /// The drop directory configured for `repo` (`[incoming] dir`).
    pub fn of(config: &crate::config::RepoConfig) -> DropDir {
        DropDir {
            root: config.layout.root().join(&config.settings.incoming.dir),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Uploads being processed; hidden, so scans and uploaders pass it by.
    fn claimed(&self) -> PathBuf {
        self.root.join(".claimed")
    }

    fn processed(&self) -> PathBuf {
        self.root.join("processed")
    }

    fn rejected(&self) -> PathBuf {
        self.root.join("rejected")
    }

    /// Names of the top level that are bess's, not a dist's.
    pub fn is_own(name: &str) -> bool {
        name.starts_with('.') || name == "processed" || name == "rejected"
    }
}

/// Runs one pass over the drop directory of `repo`.
pub fn process_incoming(
    repo: &mut Repo,
    watch: &dyn WriteWatch,
) -> Result<IncomingOutcome, OpsError> {
    let drop = DropDir::of(&repo.config);
    if !drop.root().is_dir() {
        return Err(OpsError::NotFound(format!(
            "the drop directory {} does not exist; create it (writable by bess and the uploaders) \
             or set [incoming] dir in {}",
            drop.root().display(),
            repo.config.layout.settings_file().display()
        )));
    }
    let _pass = lock_pass(repo)?;
    repo.actor = super::Actor::Incoming;
    let mut outcome = IncomingOutcome::default();
    for claimed in claim::recover(&drop)? {
        settle::settle(repo, &drop, claimed, &mut outcome);
    }
    let judge = scan::Judge {
        quiet: Duration::from_secs(repo.config.settings.incoming.quiet_period_secs),
        watch,
        now: SystemTime::now(),
    };
    let found = scan::scan(&drop, &judge).map_err(OpsError::io("read", drop.root()))?;
    outcome.waiting = found.waiting;
    outcome.recheck_in = found.recheck_in;
    for upload in found.ready {
        match claim::claim(&drop, upload) {
            Ok(Some(claimed)) => settle::settle(repo, &drop, claimed, &mut outcome),
            // Gone meanwhile (the uploader removed or replaced it).
            Ok(None) => {}
            Err(error) => outcome.failed.push(error),
        }
    }
    publish_taken(repo, &mut outcome);
    Ok(outcome)
}

/// Publishes the dists of every upload taken, including those an
/// interrupted pass had placed but not published (a dist with nothing new
/// is not rewritten). A failure is reported; the next `bess repo publish`
/// or upload publishes it.
fn publish_taken(repo: &mut Repo, outcome: &mut IncomingOutcome) {
    let targets: std::collections::BTreeSet<(String, String)> = outcome
        .taken
        .iter()
        .flat_map(|t| &t.packages)
        .flat_map(|p| p.dists.iter().map(|d| (p.channel.clone(), d.clone())))
        .collect();
    if targets.is_empty() {
        return;
    }
    let request = PublishRequest {
        targets: targets.into_iter().collect(),
        refresh: false,
    };
    match publish(repo, &request) {
        Ok(published) => outcome.published = published,
        Err(error) => outcome.failed.push(FailedUpload {
            upload: "(publish)".into(),
            error: error.to_string(),
        }),
    }
}

/// One pass at a time per repository (`bess serve` and a cron job may
/// both run): a second waits. The lock lives beside the catalog, out of
/// the uploaders' reach.
fn lock_pass(repo: &Repo) -> Result<File, OpsError> {
    let path = repo
        .config
        .layout
        .catalog_file()
        .with_file_name("incoming.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(OpsError::io("open", &path))?;
    file.lock().map_err(OpsError::io("lock", &path))?;
    Ok(file)
}
