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
    Ok(())
}
