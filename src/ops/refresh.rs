//! `bess repo refresh`: Release files signed again before they expire.
//!
//! A Release's `Valid-Until` protects clients from replayed metadata, and
//! makes every `apt-get update` fail once it passes. A repository that
//! sees no upload for a month must still be signed again: `bess serve`
//! does it at start and every few minutes, `bess repo refresh --due` (a
//! daily timer) on hosts without it. A refresh changes only `Release`,
//! `InRelease` and `Release.gpg`; the indices and their hashes stay.

use super::{OpsError, Repo};
use crate::config::{ReleaseSettings, RepoConfig};
use crate::publish::{DistTree, PublishError, release, resign_dist, valid_until};
use std::time::SystemTime;

/// A published dist and when its Release stops being valid.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Validity {
    pub channel: String,
    pub dist: String,
    /// Unix seconds of `Valid-Until`; `None` when the Release has none.
    pub valid_until: Option<u64>,
}

/// One dist signed again.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Refreshed {
    pub channel: String,
    pub dist: String,
    /// The generation now served.
    pub generation: u64,
    /// Unix seconds of the new `Valid-Until`, if any.
    pub valid_until: Option<u64>,
}

/// A dist that could not be read or signed again; the others still were.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    pub channel: String,
    pub dist: String,
    pub error: String,
}

/// What a refresh did: every dist is tried, so one damaged dist does not
/// let the others expire.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RefreshReport {
    pub refreshed: Vec<Refreshed>,
    pub failed: Vec<Failure>,
    /// What each `[[publish.target]]` received of the signed-again files.
    pub targets: Vec<super::TargetSync>,
}

/// Every published dist of every channel, with its Release's
/// `Valid-Until`, and the dists whose Release cannot be read.
pub fn validities(config: &RepoConfig) -> (Vec<Validity>, Vec<Failure>) {
    let mut found = Vec::new();
    let mut failed = Vec::new();
    for channel in &config.settings.channels {
        for dist in config.dists.names() {
            let tree = DistTree::new(config.layout.channel_dir(channel), dist);
            match tree.current_release() {
                Ok(Some(text)) => found.push(Validity {
                    channel: channel.clone(),
                    dist: dist.clone(),
                    valid_until: release::field(&text, "Valid-Until")
                        .and_then(release::parse_rfc1123)
                        .map(unix_seconds),
                }),
                Ok(None) => {}
                Err(e) => failed.push(Failure {
                    channel: channel.clone(),
                    dist: dist.clone(),
                    error: format!(
                        "cannot read {}: {e}",
                        tree.link_path().join("Release").display()
                    ),
                }),
            }
        }
    }
    (found, failed)
}

/// Signs again every published dist (`due_only`: those whose Valid-Until
/// is closer than `[release] refresh-before-days`, or that disagree with
/// `valid-days` about having one), under the publish lock.
pub fn refresh(repo: &mut Repo, due_only: bool) -> Result<RefreshReport, OpsError> {
    let mut report = resign(repo, due_only, None)?;
    // The targets' Release files would expire too.
    if !report.refreshed.is_empty() {
        report.targets = super::targets::sync_all(repo)?;
    }
    Ok(report)
}

/// [`refresh`], signing without the key `retiring` when given (see
/// `ops::keys`).
pub(super) fn resign(
    repo: &mut Repo,
    due_only: bool,
    retiring: Option<&str>,
) -> Result<RefreshReport, OpsError> {
    let _lock = super::lock::PublishLock::of(repo)?;
    let now = super::publish::publication_time();
    let release = repo.config.settings.release.clone();
    let (found, failed) = validities(&repo.config);
    let mut report = RefreshReport {
        failed,
        ..RefreshReport::default()
    };
    let chosen: Vec<Validity> = found
        .into_iter()
        .filter(|v| !due_only || is_due(v, now, &release))
        .collect();
    if chosen.is_empty() {
        return Ok(report);
    }
    let signer = match retiring {
        None => super::publish::signer(repo)?,
        Some(fingerprint) => {
            crate::sign::KeyStore::open(repo.config.layout.root()).signer_except(fingerprint)?
        }
    };
    let until = valid_until(now, release.valid_days);
    let keep = release.by_hash_generations as usize;
    for validity in chosen {
        let tree = DistTree::new(
            repo.config.layout.channel_dir(&validity.channel),
            &validity.dist,
        );
        match resign_dist(&tree, (now, until), &signer, keep) {
            Ok(Some(outcome)) => report.refreshed.push(Refreshed {
                channel: validity.channel,
                dist: validity.dist,
                generation: outcome.generation,
                valid_until: until.map(unix_seconds),
            }),
            Ok(None) => {}
            Err(e) => report.failed.push(Failure {
                channel: validity.channel,
                dist: validity.dist,
                error: match e {
                    PublishError::Io(source) => {
                        format!("{}: {source}", tree.link_path().display())
                    }
                    signing => signing.to_string(),
                },
            }),
        }
    }
    if !report.refreshed.is_empty() {
        super::publish::bump_serial(repo)?;
    }
    Ok(report)
}

/// Whether `validity` must be signed again: it expires within
/// `refresh-before-days` of `now`, or it has a Valid-Until while
/// `valid-days` is 0 (or none while it is not), after a settings change.
pub fn is_due(validity: &Validity, now: SystemTime, release: &ReleaseSettings) -> bool {
    match validity.valid_until {
        None => release.valid_days > 0,
        Some(_) if release.valid_days == 0 => true,
        Some(until) => unix_seconds(now + release.refresh_before()) >= until,
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
