//! `bess key generate` and `bess key retire`, recorded in the audit log.
//!
//! A key lives in a file, not in the catalog, so the two cannot change in
//! one transaction. The catalog transaction is opened first and committed
//! right after the key file is in place: a failed key change rolls the
//! entry back, and only a crash in the instant between the two can leave a
//! key change unrecorded.
//!
//! Every published Release is signed again at once, in the order that
//! keeps it verifiable by a current key at every instant: a new key is
//! stored, then signs; a retiring key stops signing, then is retired. A
//! crash in between leaves Releases that some current key does not sign
//! yet, which `bess repo check` reports as a warning and the same command
//! (or `bess repo refresh`) completes.

use super::audit::record;
use super::{OpsError, Repo};
use crate::sign::KeyStore;
use serde_json::json;

/// Generates a signing key (existing keys keep signing) and signs every
/// published Release with all keys; returns its fingerprint.
pub fn generate_key(repo: &mut Repo, user_id: &str) -> Result<String, OpsError> {
    let store = KeyStore::open(repo.config.layout.root());
    let writer = repo.catalog.write()?;
    let fingerprint = store.generate(user_id)?;
    let detail = json!({ "fingerprint": fingerprint, "user_id": user_id });
    record(&writer, &repo.actor, "key.generate", detail)?;
    writer.commit()?;
    keys_changed(repo)?;
    let report = super::refresh::resign(repo, false, None)?;
    signed_everywhere(&report, &fingerprint)?;
    sync_targets(repo)?;
    Ok(fingerprint)
}

/// Signs every published Release without the key, then stops signing with
/// it (it moves to keys/retired/).
pub fn retire_key(repo: &mut Repo, fingerprint: &str) -> Result<(), OpsError> {
    let compact: String = fingerprint.split_whitespace().collect();
    let store = KeyStore::open(repo.config.layout.root());
    if store
        .retired_fingerprints()?
        .contains(&compact.to_ascii_uppercase())
    {
        // Retired by a run that was stopped before it finished: complete
        // it, so that the same command works again.
        let report = super::refresh::resign(repo, false, None)?;
        signed_everywhere(&report, fingerprint)?;
        return sync_targets(repo);
    }
    let report = super::refresh::resign(repo, false, Some(fingerprint))?;
    signed_everywhere(&report, fingerprint)?;
    // The targets' Release files too are signed without the key before
    // their key.gpg drops it.
    sync_targets(repo)?;
    let writer = repo.catalog.write()?;
    store.retire(fingerprint)?;
    let detail = json!({ "fingerprint": compact.to_ascii_uppercase() });
    record(&writer, &repo.actor, "key.retire", detail)?;
    writer.commit()?;
    keys_changed(repo)?;
    sync_targets(repo)
}

/// Sends the publish targets the new signatures and `key.gpg`.
fn sync_targets(repo: &Repo) -> Result<(), OpsError> {
    let synced = super::targets::sync_all(repo)?;
    super::targets::failures(&synced).map_or(Ok(()), Err)
}

/// A key change is complete only once every Release is signed again.
fn signed_everywhere(report: &super::RefreshReport, fingerprint: &str) -> Result<(), OpsError> {
    if report.failed.is_empty() {
        return Ok(());
    }
    let failed: Vec<String> = report
        .failed
        .iter()
        .map(|f| format!("{}/{}: {}", f.channel, f.dist, f.error))
        .collect();
    Err(OpsError::Conflict(format!(
        "the key change of {fingerprint} is not complete: these Release files could not be signed again:\n  {}\nfix them (`bess repo check`), then run the same command again",
        failed.join("\n  ")
    )))
}

/// Servers export `/key.gpg` again when the publish serial moves, so a
/// new key is offered to clients as soon as it exists.
fn keys_changed(repo: &Repo) -> Result<(), OpsError> {
    // Bumps of the serial never race: publishes bump it under this lock too.
    let _lock = super::lock::PublishLock::of(repo)?;
    super::publish::bump_serial(repo)
}
