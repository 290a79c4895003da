//! Publish targets: after each publish, every `[[publish.target]]` is
//! brought up to date with the local publication, which stays the source
//! of truth.
//!
//! A target is compared with its ledger (`catalog::TargetLedger`), not
//! listed: the plan (`plan.rs`) names only what the store lacks, and only
//! that is sent, in an order that keeps the store consistent for a reader
//! at every instant. `key.gpg`, then new pool objects (packages and
//! boxes); with `layout = "tree"` their copies at the apt and box paths;
//! each channel's `boxes.json`; then per dist the index files with new
//! bytes (by-hash keys first), server-side copies of bytes the store
//! already has, and `Release`, `Release.gpg`, `InRelease` last, one at a
//! time; then `bess.json` and `.bess/users.json`; the keys the local tree
//! dropped are deleted at the very end. A failed target is reported and
//! the next publish resumes it.
//!
//! A user change reaches every target at once ([`sync_users`]), and
//! `bess repo gc` deletes the objects no channel references any more
//! after a grace period (`gc.rs`).

mod gc;
mod plan;
mod published;
mod store;

pub use gc::TargetGc;
pub(super) use gc::collect_all;
pub(crate) use store::s3_credentials;

use super::{OpsError, Repo};
use crate::catalog::{CatalogError, TargetLedger};
use crate::config::PublishTarget;
use crate::publish::store_manifest::USERS_KEY;
use futures::StreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path as Key;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use plan::{Content, Plan, Put};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use store::Traffic;

/// What one target received during a publish.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TargetSync {
    /// The target's `name` in bess.toml.
    pub target: String,
    /// Pool objects put under `objects/<sha256>`.
    pub objects_uploaded: u64,
    /// Dists files (and `key.gpg`) put from local bytes.
    pub files_uploaded: u64,
    /// Dists files made by a server-side copy of bytes the store had.
    pub files_copied: u64,
    /// Dists files deleted because the local tree no longer has them.
    pub files_deleted: u64,
    /// `layout = "tree"`: pool and box files made by server-side copies
    /// of their objects.
    pub tree_copied: u64,
    /// `layout = "tree"`: pool and box files deleted, no longer placed.
    pub tree_deleted: u64,
    /// HTTP requests, retries included.
    pub requests: u64,
    /// PUT requests (objects, multipart parts, copies), retries included.
    pub puts: u64,
    /// Request body bytes sent.
    pub bytes_uploaded: u64,
    /// Keys named by their bytes (`objects/<sha256>`, by-hash files)
    /// found by listing the store when the ledger was empty, and so not
    /// sent again.
    pub keys_adopted: u64,
    /// Why the target is not up to date, if it is not.
    pub error: Option<String>,
}

/// Why a target could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Credentials(String),
    #[error("{0}")]
    Local(String),
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot {action} {key}: {source}")]
    Store {
        action: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ledger(#[from] CatalogError),
}

/// Requests in flight at once. A publish is mostly small objects (1.6 kB
/// on average in the Debian corpus), so its time is the store's latency
/// times the requests over this: at 8, bess sent 850 PUTs a second to a
/// SeaweedFS that takes 2,400 at 32 and 2,700 at 64
/// (`benches/s3_publish.rs`); AWS S3 takes 3,500 a second per prefix,
/// which at 20 ms a request needs 70 in flight.
const PARALLEL_PUTS: usize = 64;

/// MiB of file contents held by the requests in flight at once: an object
/// below the multipart threshold is read whole, a multipart upload holds
/// its parts. Bounds memory whatever the sizes (32 objects of 64 MiB
/// would otherwise be 2 GiB).
const IN_FLIGHT_MIB: u32 = 256;

/// Acknowledged keys are recorded in the ledger in one transaction per
/// this many, or per [`LEDGER_FLUSH`], whichever comes first: one SQLite
/// commit per key cost a quarter of the upload's CPU. A publish killed
/// part-way loses at most these rows, whose keys the next publish sends
/// again.
const LEDGER_BATCH: usize = 512;
const LEDGER_FLUSH: std::time::Duration = std::time::Duration::from_millis(50);

/// Files up to this size are read on the upload's own thread: a hop to
/// the blocking pool costs more than reading a few kilobytes.
const READ_INLINE: u64 = 256 << 10;

/// Part size of multipart uploads (S3 wants at least 5 MiB but the last).
const PART_BYTES: usize = 16 << 20;

/// Parts of one multipart upload in flight at once.
const PARALLEL_PARTS: usize = 2;

/// Brings every target up to date; an empty list without targets. It
/// holds the publish lock: a publish running meanwhile could prune the
/// by-hash files being read.
pub(super) fn sync_all(repo: &Repo) -> Result<Vec<TargetSync>, OpsError> {
    let targets = &repo.config.settings.publish.targets;
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let _lock = super::lock::PublishLock::of(repo)?;
    Ok(targets.iter().map(|target| sync(repo, target)).collect())
}

/// Brings every target up to date after a change that publishes nothing
/// locally (a box added, promoted or removed), which stands whatever the
/// targets answer: a target left behind gets a warning on stderr, and the
/// next publish completes it.
pub(super) fn sync_after(repo: &Repo, change: &str) {
    let errors: Vec<String> = match sync_all(repo) {
        Ok(syncs) => syncs.into_iter().filter_map(|s| s.error).collect(),
        Err(e) => vec![format!(
            "the publish targets were not updated ({e}); the next `bess repo publish` does it"
        )],
    };
    for error in errors {
        eprintln!("warning: the {change} is saved, but {error}");
    }
}

/// Brings one target up to date and reports what it took.
fn sync(repo: &Repo, target: &PublishTarget) -> TargetSync {
    let traffic = Arc::new(Traffic::default());
    let mut report = TargetSync {
        target: target.name.clone(),
        ..TargetSync::default()
    };
    if let Err(e) = sync_into(repo, target, &traffic, &mut report) {
        report.error = Some(format!(
            "publish target `{}` ({}, bucket {}): {e}; the local publication is complete, and \
             the next `bess repo publish` uploads what the target lacks",
            target.name, target.endpoint, target.bucket
        ));
    }
    report.requests = traffic.requests.load(Ordering::Relaxed);
    report.puts = traffic.puts.load(Ordering::Relaxed);
    report.bytes_uploaded = traffic.bytes.load(Ordering::Relaxed);
    report
}

fn sync_into(
    repo: &Repo,
    target: &PublishTarget,
    traffic: &Arc<Traffic>,
    report: &mut TargetSync,
) -> Result<(), TargetError> {
    let ledger = open_ledger(repo, target)?;
    let store = store::connect(target, traffic.clone())?;
    if ledger.is_empty()? {
        report.keys_adopted = adopt_listing(&store, &ledger, target)?;
    }
    let plan = {
        let held = plan::Held::load(&ledger, target)?;
        let reader = repo.catalog.reader();
        let local = plan::Local {
            reader: &reader,
            pool: &repo.pool,
            public_dir: &repo.config.layout.public_dir(),
            channels: &repo.config.settings.channels,
            dists: repo.config.dists.names(),
            keyring: keyring(repo),
            manifest: published::manifest(&repo.config),
            users: published::users_of(&reader)?,
        };
        plan::plan(target, &local, &held)?
    };
    let threshold = target.multipart_threshold_mib << 20;
    on_own_runtime(move |runtime| {
        let sender = Sender {
            store: &store,
            ledger: &ledger,
            threshold,
        };
        runtime.block_on(sender.send(plan, report))
    })
}

/// What `bess repo check` finds of each target: every key its record says
/// the store holds is listed in the store (a bucket emptied or a lifecycle
/// rule that deleted objects would otherwise go unseen until a client
/// missed a file). Returns problems and notes, one line each.
pub(super) fn check_all(repo: &Repo) -> (Vec<String>, Vec<String>) {
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    for target in &repo.config.settings.publish.targets {
        match check_one(repo, target) {
            Ok((held, missing)) if missing.is_empty() => notes.push(format!(
                "publish target `{}`: all {held} key(s) its record lists are in the store",
                target.name
            )),
            Ok((held, missing)) => problems.push(format!(
                "publish target `{}` (bucket {}): {} of the {held} key(s) its record lists are \
                 missing from the store, e.g. {}; delete {} and run `bess repo publish`: the \
                 store is listed again and what it lacks is sent",
                target.name,
                target.bucket,
                missing.len(),
                missing
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                repo.config
                    .layout
                    .targets_dir()
                    .join(format!("{}.db", target.name))
                    .display()
            )),
            Err(e) => problems.push(format!(
                "publish target `{}` (bucket {}) cannot be checked: {e}",
                target.name, target.bucket
            )),
        }
    }
    (problems, notes)
}

/// How many keys the target's record lists, and those the store lacks.
fn check_one(repo: &Repo, target: &PublishTarget) -> Result<(u64, Vec<String>), TargetError> {
    let ledger = open_ledger(repo, target)?;
    let store = store::connect(target, Arc::new(Traffic::default()))?;
    let listed: std::collections::HashSet<String> =
        on_own_runtime(|runtime| runtime.block_on(listed_keys(&store, target)))?
            .into_iter()
            .collect();
    let (mut held, mut missing) = (0, Vec::new());
    ledger.each_held(|key, _| {
        held += 1;
        if !listed.contains(key) {
            missing.push(key.to_string());
        }
    })?;
    missing.sort();
    Ok((held, missing))
}

/// Fills an empty ledger (a new one, one deleted, a primary restored on
/// another host) from the keys the store holds that are named by their
/// bytes, so that those are recorded instead of sent again: a request per
/// thousand keys instead of a PUT each. Their name says what they hold,
/// and a store shows a key only once its upload completed; every other
/// key is written again.
fn adopt_listing(
    store: &AmazonS3,
    ledger: &TargetLedger,
    target: &PublishTarget,
) -> Result<u64, TargetError> {
    let listed = on_own_runtime(|runtime| runtime.block_on(listed_keys(store, target)))?;
    let found: Vec<(String, String)> = listed
        .into_iter()
        .filter_map(|key| named_by_content(&key).map(|sha| (key, sha)))
        .collect();
    ledger.record_all(&found)?;
    Ok(found.len() as u64)
}

/// Every key of the target, by a listing (a request per thousand keys).
async fn listed_keys(store: &AmazonS3, target: &PublishTarget) -> Result<Vec<String>, TargetError> {
    use object_store::ObjectStore;
    let prefix = target.key("");
    let prefix = prefix.trim_end_matches('/');
    let under = (!prefix.is_empty()).then(|| Key::from(prefix));
    let mut listing = store.list(under.as_ref());
    let mut keys = Vec::new();
    while let Some(meta) = listing.next().await {
        keys.push(
            meta.map_err(store_error("list", prefix))?
                .location
                .to_string(),
        );
    }
    Ok(keys)
}

/// The SHA-256 a key's name gives, for `…/objects/<sha256>` and
/// `…/by-hash/SHA256/<sha256>`.
fn named_by_content(key: &str) -> Option<String> {
    let (dir, name) = key.rsplit_once('/').unwrap_or(("", key));
    let by_name = dir == "objects" || dir.ends_with("/objects") || dir.ends_with("/by-hash/SHA256");
    (by_name && crate::pool::Sha256::from_hex(name).is_some()).then(|| name.to_string())
}

/// Runs `work` on a thread of its own with its own runtime: a publish or
/// a user change may be called from inside `bess serve`'s runtime.
fn on_own_runtime<T: Send>(
    work: impl FnOnce(&tokio::runtime::Runtime) -> Result<T, TargetError> + Send,
) -> Result<T, TargetError> {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| TargetError::Local(format!("cannot start the uploads: {e}")))?;
                work(&runtime)
            })
            .join()
            .expect("the upload thread does not panic")
    })
}

/// Sends `.bess/users.json` to every target whose copy differs, after a
/// user change the catalog has committed: frontends must stop accepting
/// a removed user or an old password without waiting for a publish. A
/// target that fails gets a warning on stderr (the change stands, and
/// every publish sends the file again until the target has it).
pub(super) fn sync_users(repo: &Repo) {
    let targets = &repo.config.settings.publish.targets;
    if targets.is_empty() {
        return;
    }
    let warn = |target: &PublishTarget, e: &dyn std::fmt::Display| {
        eprintln!(
            "warning: publish target `{}` ({}, bucket {}): cannot update {USERS_KEY}: {e}; \
             the user change is saved, and the next `bess repo publish` sends it",
            target.name, target.endpoint, target.bucket
        )
    };
    // The publish lock: a publish running meanwhile may have read the
    // users before this change, and must not put them after it.
    let users = super::lock::PublishLock::of(repo)
        .map_err(|e| TargetError::Local(e.to_string()))
        .and_then(|lock| Ok((lock, published::users_of(&repo.catalog.reader())?)));
    let (_lock, users) = match users {
        Ok(found) => found,
        Err(e) => return targets.iter().for_each(|t| warn(t, &e)),
    };
    for target in targets {
        if let Err(e) = put_users(repo, target, &users) {
            warn(target, &e);
        }
    }
}

/// Puts `users` at the target's users key unless the ledger says it holds them.
fn put_users(repo: &Repo, target: &PublishTarget, users: &[u8]) -> Result<(), TargetError> {
    let ledger = open_ledger(repo, target)?;
    let key = target.key(USERS_KEY);
    let held: std::collections::HashMap<String, String> = ledger
        .sha256_of(&key)?
        .map(|sha| (key.clone(), sha))
        .into_iter()
        .collect();
    let Some(put) = plan::changed_file(key, users, &held) else {
        return Ok(());
    };
    let store = store::connect(target, Arc::new(Traffic::default()))?;
    on_own_runtime(move |runtime| {
        let sender = Sender {
            store: &store,
            ledger: &ledger,
            threshold: u64::MAX,
        };
        runtime.block_on(sender.batch(vec![put], &mut 0))
    })
}

fn open_ledger(repo: &Repo, target: &PublishTarget) -> Result<TargetLedger, TargetError> {
    let dir = repo.config.layout.targets_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| TargetError::Local(format!("cannot create {}: {e}", dir.display())))?;
    let identity = format!("{} {} {}", target.endpoint, target.bucket, target.prefix);
    Ok(TargetLedger::open(
        &dir.join(format!("{}.db", target.name)),
        &identity,
    )?)
}

/// The binary public keyring clients fetch as `key.gpg`, if there is a key.
fn keyring(repo: &Repo) -> Option<Vec<u8>> {
    crate::sign::KeyStore::open(repo.config.layout.root())
        .export_public(false)
        .ok()
        .filter(|k| !k.is_empty())
}

/// Writes a plan to a store, recording each acknowledged key in the ledger.
struct Sender<'a> {
    store: &'a AmazonS3,
    ledger: &'a TargetLedger,
    /// Objects at least this large go up in parts.
    threshold: u64,
}

impl Sender<'_> {
    /// Sends the plan in its order, stopping at the first failure.
    async fn send(&self, plan: Plan, report: &mut TargetSync) -> Result<(), TargetError> {
        // The keyring first: a Release signed by a new key must not be
        // fetched before the key that verifies it.
        self.batch(
            plan.keyring.into_iter().collect(),
            &mut report.files_uploaded,
        )
        .await?;
        self.batch(plan.objects, &mut report.objects_uploaded)
            .await?;
        // Before any index lists them, as in the local tree.
        self.batch(plan.tree, &mut report.tree_copied).await?;
        self.batch(plan.box_indices, &mut report.files_uploaded)
            .await?;
        let mut stale = Vec::new();
        for dist in plan.dists {
            self.batch(dist.uploads, &mut report.files_uploaded).await?;
            self.batch(dist.copies, &mut report.files_copied).await?;
            for release in dist.releases {
                self.batch(vec![release], &mut report.files_uploaded)
                    .await?;
            }
            stale.extend(dist.stale);
        }
        // Once every dist is complete: a frontend reading a new dist from
        // bess.json finds its Release.
        self.batch(plan.manifest, &mut report.files_uploaded)
            .await?;
        // Deleted last: a copy above may have read one of these keys, and
        // an index the store served until now may list a tree file.
        self.delete_all(stale, &mut report.files_deleted).await?;
        self.delete_all(plan.stale_tree, &mut report.tree_deleted)
            .await
    }

    /// Deletes `keys` one by one, forgetting each in the ledger.
    async fn delete_all(&self, keys: Vec<String>, done: &mut u64) -> Result<(), TargetError> {
        for key in keys {
            self.store
                .delete(&object_key(&key)?)
                .await
                .map_err(store_error("delete", &key))?;
            self.ledger.forget(&key)?;
            *done += 1;
        }
        Ok(())
    }

    /// Writes `puts` a few at a time, counting each one acknowledged.
    async fn batch(&self, puts: Vec<Put>, done: &mut u64) -> Result<(), TargetError> {
        let budget = tokio::sync::Semaphore::new(IN_FLIGHT_MIB as usize);
        let budget = &budget;
        let mut writes = futures::stream::iter(puts.into_iter().map(|put| async move {
            let _held = budget
                .acquire_many(self.weight_mib(&put))
                .await
                .expect("the budget is never closed");
            self.write(&put).await.map(|()| put)
        }))
        .buffer_unordered(PARALLEL_PUTS);
        let mut acknowledged = Vec::with_capacity(LEDGER_BATCH);
        let mut flushed = std::time::Instant::now();
        while let Some(written) = writes.next().await {
            let put = match written {
                Ok(put) => put,
                Err(e) => {
                    // What the store took before the failure is kept.
                    self.ledger.record_all(&acknowledged)?;
                    return Err(e);
                }
            };
            acknowledged.push((put.key, put.sha256));
            *done += 1;
            if acknowledged.len() == LEDGER_BATCH || flushed.elapsed() >= LEDGER_FLUSH {
                self.ledger.record_all(&acknowledged)?;
                acknowledged.clear();
                flushed = std::time::Instant::now();
            }
        }
        Ok(self.ledger.record_all(&acknowledged)?)
    }

    /// MiB of the in-flight budget a request holds while it runs.
    fn weight_mib(&self, put: &Put) -> u32 {
        let bytes = match &put.content {
            _ if put.copy_from.is_some() => 0,
            Content::File(_) if put.size >= self.threshold => {
                (PART_BYTES * (PARALLEL_PARTS + 1)) as u64
            }
            _ => put.size,
        };
        (bytes.div_ceil(1 << 20) as u32).clamp(1, IN_FLIGHT_MIB)
    }

    /// Writes one key: a copy, a single PUT, or a multipart upload.
    async fn write(&self, put: &Put) -> Result<(), TargetError> {
        let key = object_key(&put.key)?;
        if let Some(from) = &put.copy_from {
            return self
                .store
                .copy(&object_key(from)?, &key)
                .await
                .map_err(store_error("copy", &put.key));
        }
        let bytes = match &put.content {
            Content::File(path) if put.size >= self.threshold => {
                return self.write_parts(&key, path).await;
            }
            Content::File(path) => {
                let read = if put.size <= READ_INLINE {
                    std::fs::read(path)
                } else {
                    tokio::fs::read(path).await
                };
                bytes::Bytes::from(read.map_err(|source| TargetError::Read {
                    path: path.clone(),
                    source,
                })?)
            }
            Content::Bytes(bytes) => bytes.clone(),
        };
        self.store
            .put(&key, PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(store_error("upload", &put.key))
    }

    /// A large file in parts, read a part at a time; an upload that fails
    /// is aborted so the store frees its parts.
    async fn write_parts(&self, key: &Key, path: &std::path::Path) -> Result<(), TargetError> {
        let shown = key.to_string();
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(store_error("start uploading", &shown))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let read = |source| TargetError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(read)?;
        let mut part = vec![0u8; PART_BYTES];
        loop {
            let n = match read_full(&mut file, &mut part).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(read(e));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(PARALLEL_PARTS).await {
                let _ = writer.abort().await;
                return Err(store_error("upload a part of", &shown)(e));
            }
            writer.write(&part[..n]);
        }
        writer
            .finish()
            .await
            .map(drop)
            .map_err(store_error("finish uploading", &shown))
    }
}

/// Reads until `buf` is full or the file ends.
async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn object_key(key: &str) -> Result<Key, TargetError> {
    Key::parse(key).map_err(|e| TargetError::Local(format!("`{key}` is not a valid key: {e}")))
}

fn store_error(action: &'static str, key: &str) -> impl FnOnce(object_store::Error) -> TargetError {
    let key = key.to_string();
    move |source| TargetError::Store {
        action,
        key,
        source,
    }
}

/// The error a publish reports when some target is not up to date.
pub(super) fn failures(syncs: &[TargetSync]) -> Option<OpsError> {
    let errors: Vec<String> = syncs.iter().filter_map(|s| s.error.clone()).collect();
    (!errors.is_empty()).then(|| OpsError::Targets(errors.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::named_by_content;

    #[test]
    fn only_keys_named_by_their_bytes_are_adopted() {
        let sha = "ab".repeat(32);
        for key in [
            format!("objects/{sha}"),
            format!("p/objects/{sha}"),
            format!("p/prod/dists/bookworm/main/binary-amd64/by-hash/SHA256/{sha}"),
        ] {
            assert_eq!(named_by_content(&key), Some(sha.clone()), "{key}");
        }
        for key in [
            "p/prod/dists/bookworm/InRelease".to_string(),
            format!("p/prod/pool/main/a/a/{sha}"),
            "p/objects/not-a-hash".to_string(),
            format!("p/prod/dists/bookworm/by-hash/MD5Sum/{sha}"),
        ] {
            assert_eq!(named_by_content(&key), None, "{key}");
        }
    }
}
