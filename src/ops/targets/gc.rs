//! `bess repo gc` on publish targets: the objects a target holds that no
//! channel references any more are deleted once they stayed unreferenced
//! for the target's `gc-grace-hours`.
//!
//! The grace period exists because a target is read by others: a
//! frontend, or a client of a bucket served as is, may hold an index that
//! still lists an object for as long as it caches it. The ledger is the
//! record (no listing of the bucket): gc marks an object with the time it
//! first found it unreferenced, unmarks it when a channel references it
//! again, and deletes it from the store, then from the ledger, once the
//! grace period has passed. It runs under the publish lock gc holds, so
//! no publish puts or copies an object meanwhile.

use super::{TargetError, on_own_runtime, open_ledger, store, store_error};
use crate::catalog::TargetLedger;
use crate::config::PublishTarget;
use crate::pool::Sha256;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What gc found and did in one target.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TargetGc {
    /// The target's `name` in bess.toml.
    pub target: String,
    /// Objects found unreferenced by this gc for the first time.
    pub objects_marked: u64,
    /// Objects marked before that a channel references again.
    pub objects_unmarked: u64,
    /// Unreferenced objects kept until their grace period ends.
    pub objects_waiting: u64,
    /// Objects deleted from the store (or that would be, with `--dry-run`).
    pub objects_deleted: u64,
    /// HTTP requests, retries included.
    pub requests: u64,
    /// Why the target was not collected, if it was not.
    pub error: Option<String>,
}

/// Deletes requests sent at once.
const PARALLEL_DELETES: usize = 8;

/// Collects every target, given the objects the catalog references (the
/// caller holds the publish and pool locks); `dry_run` changes nothing.
pub(in crate::ops) fn collect_all(
    repo: &super::Repo,
    referenced: &HashSet<Sha256>,
    dry_run: bool,
) -> Vec<TargetGc> {
    let now = crate::catalog::now();
    let targets = &repo.config.settings.publish.targets;
    targets
        .iter()
        .map(|target| {
            let traffic = Arc::new(store::Traffic::default());
            let mut report = TargetGc {
                target: target.name.clone(),
                ..TargetGc::default()
            };
            let collected = open_ledger(repo, target).and_then(|ledger| {
                let due = sort_marks(&ledger, target, referenced, (now, dry_run), &mut report)?;
                let count = due.len() as u64;
                if !dry_run && !due.is_empty() {
                    delete(target, ledger, due, traffic.clone())?;
                }
                report.objects_deleted = count;
                Ok(())
            });
            if let Err(e) = collected {
                report.error = Some(format!(
                    "publish target `{}` ({}, bucket {}): {e}; the next `bess repo gc` \
                     collects it",
                    target.name, target.endpoint, target.bucket
                ));
            }
            report.requests = traffic.requests.load(Ordering::Relaxed);
            report
        })
        .collect()
}

/// Marks and unmarks the target's objects, returning the keys whose grace
/// period has passed.
fn sort_marks(
    ledger: &TargetLedger,
    target: &PublishTarget,
    referenced: &HashSet<Sha256>,
    (now, dry_run): (i64, bool),
    report: &mut TargetGc,
) -> Result<Vec<String>, TargetError> {
    let prefix = target.key("objects/");
    let grace = target.gc_grace_hours.saturating_mul(3600) as i64;
    let mut due = Vec::new();
    for (key, since) in ledger.marks_under(&prefix)? {
        let digest = key.strip_prefix(&prefix).and_then(Sha256::from_hex);
        let is_referenced = digest.is_some_and(|d| referenced.contains(&d));
        let first_seen = match (is_referenced, since) {
            (true, None) => continue,
            (true, Some(_)) => {
                report.objects_unmarked += 1;
                if !dry_run {
                    ledger.mark(&key, None)?;
                }
                continue;
            }
            (false, Some(since)) => since,
            (false, None) => {
                report.objects_marked += 1;
                if !dry_run {
                    ledger.mark(&key, Some(now))?;
                }
                now
            }
        };
        if now - first_seen >= grace {
            due.push(key);
        } else {
            report.objects_waiting += 1;
        }
    }
    Ok(due)
}

/// Deletes `keys` from the store, a few at a time, forgetting each one the
/// store acknowledged.
fn delete(
    target: &PublishTarget,
    ledger: TargetLedger,
    keys: Vec<String>,
    traffic: Arc<store::Traffic>,
) -> Result<(), TargetError> {
    let store = store::connect(target, traffic)?;
    on_own_runtime(move |runtime| {
        runtime.block_on(async {
            let mut deletes = futures::stream::iter(keys.into_iter().map(|key| {
                let store = &store;
                async move {
                    let path = super::object_key(&key)?;
                    store
                        .delete(&path)
                        .await
                        .map_err(store_error("delete", &key))?;
                    Ok::<_, TargetError>(key)
                }
            }))
            .buffer_unordered(PARALLEL_DELETES);
            while let Some(deleted) = deletes.next().await {
                ledger.forget(&deleted?)?;
            }
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(grace_hours: u64) -> PublishTarget {
        let text = format!(
            "[[publish.target]]\ntype = \"s3\"\nname = \"mirror\"\n\
             endpoint = \"http://127.0.0.1:9\"\nbucket = \"apt\"\nprefix = \"p\"\n\
             gc-grace-hours = {grace_hours}\n"
        );
        let settings = crate::config::Settings::parse(&text).unwrap();
        settings.publish.targets[0].clone()
    }

    #[test]
    fn objects_go_only_once_unreferenced_for_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = TargetLedger::open(&dir.path().join("mirror.db"), "id").unwrap();
        let hex = |c: char| c.to_string().repeat(64);
        for c in ['a', 'b', 'c', 'd'] {
            ledger
                .record(&format!("p/objects/{}", hex(c)), &hex(c))
                .unwrap();
        }
        ledger.record("p/key.gpg", "01").unwrap();
        let now = 1_000_000;
        ledger
            .mark(&format!("p/objects/{}", hex('b')), Some(now - 10))
            .unwrap();
        ledger
            .mark(&format!("p/objects/{}", hex('c')), Some(now - 3600))
            .unwrap();
        // a referenced; b referenced again; c unreferenced for an hour; d newly.
        let referenced: HashSet<Sha256> = ['a', 'b']
            .into_iter()
            .map(|c| Sha256::from_hex(&hex(c)).unwrap())
            .collect();
        let mut report = TargetGc::default();
        let due = sort_marks(&ledger, &target(1), &referenced, (now, false), &mut report).unwrap();
        assert_eq!(due, [format!("p/objects/{}", hex('c'))]);
        assert_eq!(
            (
                report.objects_marked,
                report.objects_unmarked,
                report.objects_waiting
            ),
            (1, 1, 1)
        );
        let marks: Vec<Option<i64>> = ledger
            .marks_under("p/objects/")
            .unwrap()
            .into_iter()
            .map(|(_, since)| since)
            .collect();
        assert_eq!(marks, [None, None, Some(now - 3600), Some(now)]);
        // With no grace, what is unreferenced goes at the first gc.
        let mut report = TargetGc::default();
        let due = sort_marks(&ledger, &target(0), &referenced, (now, true), &mut report).unwrap();
        assert_eq!(due.len(), 2);
    }
}
