//! `bess key generate` and `bess key retire`, recorded in the audit log.
//!
//! A key lives in a file, not in the catalog, so the two cannot change in
//! one transaction. The catalog transaction is opened first and committed
//! right after the key file is in place: a failed key change rolls the
//! entry back, and only a crash in the instant between the two can leave a
//! key change unrecorded.

use super::audit::record;
use super::{OpsError, Repo};
use crate::sign::KeyStore;
use serde_json::json;

/// Generates a signing key (existing keys keep signing); returns its fingerprint.
pub fn generate_key(repo: &mut Repo, user_id: &str) -> Result<String, OpsError> {
    let store = KeyStore::open(repo.config.layout.root());
    let writer = repo.catalog.write()?;
    let fingerprint = store.generate(user_id)?;
    let detail = json!({ "fingerprint": fingerprint, "user_id": user_id });
    record(&writer, &repo.actor, "key.generate", detail)?;
    writer.commit()?;
    keys_changed(repo)?;
    Ok(fingerprint)
}

/// Stops signing with a key (it moves to keys/retired/).
pub fn retire_key(repo: &mut Repo, fingerprint: &str) -> Result<(), OpsError> {
    let store = KeyStore::open(repo.config.layout.root());
    let writer = repo.catalog.write()?;
    store.retire(fingerprint)?;
    let compact: String = fingerprint.split_whitespace().collect();
    let detail = json!({ "fingerprint": compact.to_ascii_uppercase() });
    record(&writer, &repo.actor, "key.retire", detail)?;
    writer.commit()?;
    keys_changed(repo)
}

/// Servers export `/key.gpg` again when the publish serial moves: a new
/// key must be offered to clients before the next publish signs with it.
fn keys_changed(repo: &Repo) -> Result<(), OpsError> {
    // Bumps of the serial never race: publishes bump it under this lock too.
    let _lock = super::lock::PublishLock::of(repo)?;
    super::publish::bump_serial(repo)
}
