//! `bess repo refresh`: Release files signed again before they expire.
//!
//! A Release's `Valid-Until` protects clients from replayed metadata, and
//! makes every `apt-get update` fail once it passes. A repository that
//! sees no upload for a month must still be signed again: `bess serve`
//! does it at start and every few minutes, `bess repo refresh --due` (a
//! daily timer) on hosts without it. A refresh changes only `Release`,
//! `InRelease` and `Release.gpg`; the indices and their hashes stay.

use super::{OpsError, Repo};
use crate::config::RepoConfig;
use crate::publish::{DistTree, PublishError, release, resign_dist, valid_until};
use std::time::{Duration, SystemTime};

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

/// Every published dist of every channel, with its Release's `Valid-Until`.
pub fn validities(config: &RepoConfig) -> Result<Vec<Validity>, OpsError> {
    let mut found = Vec::new();
    for channel in &config.settings.channels {
        for dist in config.dists.names() {
            let tree = DistTree::new(config.layout.channel_dir(channel), dist);
            let text = tree
                .current_release()
                .map_err(OpsError::io("read", tree.link_path().join("Release")))?;
            let Some(text) = text else { continue };
            let valid_until = release::field(&text, "Valid-Until")
                .and_then(release::parse_rfc1123)
                .map(unix_seconds);
            found.push(Validity {
                channel: channel.clone(),
                dist: dist.clone(),
                valid_until,
            });
        }
    }
    Ok(found)
}

/// Signs again every published dist (`due_only`: those whose Valid-Until
/// is closer than `[release] refresh-before-days`), under the publish lock.
pub fn refresh(repo: &mut Repo, due_only: bool) -> Result<Vec<Refreshed>, OpsError> {
    let _lock = super::lock::PublishLock::of(repo)?;
    let now = super::publish::publication_time();
    let margin = repo.config.settings.release.refresh_before();
    let chosen: Vec<Validity> = validities(&repo.config)?
        .into_iter()
        .filter(|v| !due_only || is_due(v, now, margin))
        .collect();
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    let signer = super::publish::signer(repo)?;
    let release = &repo.config.settings.release;
    let until = valid_until(now, release.valid_days);
    let keep = release.by_hash_generations as usize;
    let mut refreshed = Vec::new();
    for validity in chosen {
        let tree = DistTree::new(
            repo.config.layout.channel_dir(&validity.channel),
            &validity.dist,
        );
        let outcome = resign_dist(&tree, (now, until), &signer, keep).map_err(|e| match e {
            PublishError::Io(source) => OpsError::io("refresh", tree.link_path())(source),
            signing => OpsError::Publish(signing),
        })?;
        if let Some(outcome) = outcome {
            refreshed.push(Refreshed {
                channel: validity.channel,
                dist: validity.dist,
                generation: outcome.generation,
                valid_until: until.map(unix_seconds),
            });
        }
    }
    super::publish::bump_serial(repo)?;
    Ok(refreshed)
}

/// Whether `validity` expires within `margin` of `now`.
pub fn is_due(validity: &Validity, now: SystemTime, margin: Duration) -> bool {
    validity
        .valid_until
        .is_some_and(|until| unix_seconds(now + margin) >= until)
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
