//! `bess repo gc`: delete the pool objects nothing references any more.
//!
//! An object is garbage when no placement references it and no public tree
//! links to it. Its package stays in the catalog (`bess repo versions`
//! lists it as published nowhere, and its name, version and architecture
//! stay bound to its checksum); ingesting the same file again stores it
//! again. Deciding that an object is garbage is only sound if nothing can
//! start referencing it while gc looks, so gc excludes every process that
//! could:
//!
//! - **Ingest.** An ingest asks "is this object already stored?", skips or
//!   stores it, and only later commits the catalog rows that reference it.
//!   In that window the object looks unreferenced. Ingests therefore hold
//!   the pool lock (`catalog/pool.lock`) *shared* from the first question
//!   until their rows commit; gc takes it *exclusively* before it reads a
//!   single reference. Once gc holds it, every ingest that relied on an
//!   object has committed, and no ingest can rely on one until gc is done.
//! - **Publish.** Publishing links placed objects into `public/<channel>/pool`
//!   and withdraws files no placement wants, from a queue it read earlier.
//!   gc holds the publish lock, so no link is made or withdrawn meanwhile.
//! - **Promote and remove** only copy placements of objects that are
//!   already placed, or drop placements: a reference set read once can only
//!   be larger than the truth, which errs on the side of keeping.
//!
//! Published generations: a removed version's file stays in its channel's
//! pool tree until the publish that drops it from the indices withdraws it,
//! and clients holding an older index may still fetch it until then. Public
//! files are hard links to the pool objects, so an object whose link count
//! is above one is still published somewhere: gc keeps it and reports it;
//! once withdrawn, the next gc deletes it. (`bess serve` reads only public
//! trees, whose entries are separate links, so gc never pulls a file from
//! under it.)
//!
//! Locks are always taken in the order publish → pool → catalog (an ingest
//! releases the pool lock before it publishes), so they cannot deadlock.
//! Deleting garbage is idempotent: a crash part-way leaves the rest for the
//! next run. The audit entry is written after the deletions, so a crash
//! can lose a gc's entry but never record a deletion that did not happen.
//!
//! Staging files (`pool/<xx>/.tmp-*`) that a killed ingest left behind are
//! deleted once older than an hour. Only ingests stage there, and they hold
//! the pool lock from before they stage until they commit or discard, so
//! while gc holds it exclusively every staging file belongs to a process
//! that is gone; the hour is a margin for a process that does not take the
//! lock (a bess from before it, during an upgrade), whose ingests took
//! seconds. `bess repo check` reports the same files. Scratch files under
//! `tmp/` wait a day: an upload's directory exists while its body arrives,
//! before the ingest takes the lock.
//!
//! Publish targets are collected too, under the same locks: an object a
//! target holds that no channel references is deleted from the store
//! once it stayed unreferenced for the target's grace period
//! (`ops::targets`, module `gc`).
//!
//! An ingest does not collect them when it starts: that would read every
//! shard of the pool (some 80 ms per 60 000 objects here) on every upload,
//! more than a small ingest costs, to find files that only a crash leaves.

use super::audit::record;
use super::lock::{PoolLock, PublishLock};
use super::{OpsError, Repo};
use crate::pool::{Pool, Sha256, fsync_dir};
use serde::Serialize;
use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How old a staging file in a shard must be before gc deletes it.
pub(super) const STAGING_STALE_AFTER: Duration = Duration::from_secs(3600);

/// How old a scratch entry under `tmp/` must be before gc deletes it.
const SCRATCH_STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Scratch files under `tmp/` that only a crash leaves behind.
const SCRATCH_PREFIXES: [&str; 5] = ["link-", "copy-", "upload-", ".stream-", "ingest-"];

/// What to collect.
#[derive(Debug, Clone, Default)]
pub struct GcRequest {
    /// Only report what would be deleted.
    pub dry_run: bool,
}

/// What gc found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcOutcome {
    pub dry_run: bool,
    /// Objects in the pool before gc.
    pub objects: usize,
    pub objects_deleted: usize,
    pub bytes_freed: u64,
    /// Unreferenced objects kept because a public tree still links to them.
    pub objects_still_published: usize,
    pub bytes_still_published: u64,
    /// Leftover staging and scratch files deleted.
    pub temp_files_deleted: usize,
    pub temp_bytes_freed: u64,
    /// What gc found and did in each `[[publish.target]]`.
    pub targets: Vec<super::TargetGc>,
}

/// What a scan of the pool found.
#[derive(Default)]
struct Scan {
    garbage: Vec<(PathBuf, u64)>,
    stale: Vec<(PathBuf, u64)>,
    objects: usize,
    still_published: (usize, u64),
}

/// The publish lock, then the pool lock alone. An ingest, box upload or
/// backup may hold the pool lock for long; gc then lets go of the publish
/// lock while it waits, so publishing never stalls behind it.
fn both_locks(catalog_file: &Path) -> Result<(PublishLock, PoolLock), OpsError> {
    loop {
        let publish = PublishLock::acquire(&PublishLock::path(catalog_file))?;
        if let Some(pool) = PoolLock::try_exclusive(&PoolLock::path(catalog_file))? {
            return Ok((publish, pool));
        }
        drop(publish);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Deletes unreferenced, unpublished objects and stale temp files.
pub fn gc(repo: &mut Repo, request: &GcRequest) -> Result<GcOutcome, OpsError> {
    let layout = repo.config.layout.clone();
    let catalog_file = layout.catalog_file();
    let (_publish, _pool) = both_locks(&catalog_file)?;
    // Read only now that the locks are held: see the module comment.
    repo.catalog
        .limit_page_cache(super::heap::WALK_PAGE_CACHE_KIB)?;
    let referenced = repo.catalog.reader().placed_objects()?;
    let mut scan = scan_pool(&layout.pool_dir(), &referenced)?;
    scan.stale.extend(stale_scratch(&layout.tmp_dir())?);
    let sum = |files: &[(PathBuf, u64)]| files.iter().map(|(_, n)| n).sum();
    let outcome = GcOutcome {
        dry_run: request.dry_run,
        objects: scan.objects,
        objects_deleted: scan.garbage.len(),
        bytes_freed: sum(&scan.garbage),
        objects_still_published: scan.still_published.0,
        bytes_still_published: scan.still_published.1,
        temp_files_deleted: scan.stale.len(),
        temp_bytes_freed: sum(&scan.stale),
        targets: Vec::new(),
    };
    if request.dry_run {
        let targets = super::targets::collect_all(repo, &referenced, true);
        return Ok(GcOutcome { targets, ..outcome });
    }
    delete_all(&scan.garbage)?;
    delete_all(&scan.stale)?;
    let targets = super::targets::collect_all(repo, &referenced, false);
    let outcome = GcOutcome { targets, ..outcome };
    let in_targets: u64 = outcome.targets.iter().map(|t| t.objects_deleted).sum();
    if outcome.objects_deleted + outcome.temp_files_deleted > 0 || in_targets > 0 {
        let writer = repo.catalog.write()?;
        let mut detail = serde_json::to_value(&outcome).unwrap_or_default();
        if let Some(fields) = detail.as_object_mut() {
            fields.remove("dry_run");
        }
        record(&writer, &repo.actor, "gc", detail)?;
        writer.commit()?;
    }
    Ok(outcome)
}

/// Sorts every file of `pool/<xx>/` into live, garbage, still published or stale.
fn scan_pool(root: &Path, referenced: &HashSet<Sha256>) -> Result<Scan, OpsError> {
    let mut scan = Scan::default();
    let shards = match fs::read_dir(root) {
        Ok(shards) => shards,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(scan),
        Err(e) => return Err(OpsError::io("read", root)(e)),
    };
    for shard in shards {
        let shard = shard.map_err(OpsError::io("read", root))?;
        if shard.file_type().is_ok_and(|t| t.is_dir()) {
            scan_shard(&shard.path(), referenced, &mut scan)?;
        }
    }
    Ok(scan)
}

fn scan_shard(dir: &Path, referenced: &HashSet<Sha256>, scan: &mut Scan) -> Result<(), OpsError> {
    for entry in fs::read_dir(dir).map_err(OpsError::io("read", dir))? {
        let entry = entry.map_err(OpsError::io("read", dir))?;
        let path = entry.path();
        let meta = match entry.metadata() {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => continue,
            // Gone meanwhile: a temp file its ingest just committed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(OpsError::io("inspect", path)(e)),
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if Pool::is_temp_name(&name) {
            if is_stale_staging(&name, &meta) {
                scan.stale.push((path, meta.len()));
            }
            continue;
        }
        if !is_object_name(&name) {
            continue; // not ours: leave it alone
        }
        scan.objects += 1;
        if Sha256::from_hex(&name).is_some_and(|o| referenced.contains(&o)) {
            continue;
        }
        if meta.nlink() > 1 {
            scan.still_published.0 += 1;
            scan.still_published.1 += meta.len();
        } else {
            scan.garbage.push((path, meta.len()));
        }
    }
    Ok(())
}

/// Old scratch entries of `tmp/` (files, or upload directories).
fn stale_scratch(tmp: &Path) -> Result<Vec<(PathBuf, u64)>, OpsError> {
    let entries = match fs::read_dir(tmp) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(OpsError::io("read", tmp)(e)),
    };
    let mut stale = Vec::new();
    for entry in entries {
        let entry = entry.map_err(OpsError::io("read", tmp))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !SCRATCH_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        if let Ok(meta) = entry.metadata()
            && older_than(&meta, SCRATCH_STALE_AFTER)
        {
            stale.push((entry.path(), tree_size(&entry.path())));
        }
    }
    Ok(stale)
}

fn tree_size(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn older_than(meta: &fs::Metadata, age: Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|elapsed| elapsed > age)
}

/// Whether a file of a shard is a staging file an interrupted ingest left.
fn is_stale_staging(name: &str, meta: &fs::Metadata) -> bool {
    Pool::is_staging_name(name) && meta.is_file() && older_than(meta, STAGING_STALE_AFTER)
}

/// The staging files interrupted ingests left in the shards of `root`
/// (what gc would delete of them), with their sizes.
pub(super) fn stale_staging(root: &Path) -> Result<Vec<(PathBuf, u64)>, OpsError> {
    let mut stale = Vec::new();
    let shards = match fs::read_dir(root) {
        Ok(shards) => shards,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(stale),
        Err(e) => return Err(OpsError::io("read", root)(e)),
    };
    for shard in shards {
        let shard = shard.map_err(OpsError::io("read", root))?.path();
        let Ok(entries) = fs::read_dir(&shard) else {
            continue; // not a directory, or gone
        };
        for entry in entries {
            let entry = entry.map_err(OpsError::io("read", &shard))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(meta) = entry.metadata()
                && is_stale_staging(&name, &meta)
            {
                stale.push((entry.path(), meta.len()));
            }
        }
    }
    Ok(stale)
}

fn is_object_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Deletes files (and scratch directories), then makes the deletions durable.
fn delete_all(files: &[(PathBuf, u64)]) -> Result<(), OpsError> {
    let mut dirs = HashSet::new();
    for (path, _) in files {
        let result = if path.is_dir() {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(OpsError::io("delete", path)(e)),
        }
        if let Some(dir) = path.parent() {
            dirs.insert(dir.to_path_buf());
        }
    }
    for dir in dirs {
        fsync_dir(&dir).map_err(OpsError::io("sync", &dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreferenced_single_link_objects_are_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let shard = dir.path().join("ab");
        fs::create_dir_all(&shard).unwrap();
        let name = |c: char| format!("ab{}", c.to_string().repeat(62));
        for c in ['1', '2', '3'] {
            fs::write(shard.join(name(c)), b"data").unwrap();
        }
        fs::hard_link(shard.join(name('3')), dir.path().join("published.deb")).unwrap();
        fs::write(shard.join(".tmp-1-0"), b"fresh staging file").unwrap();
        fs::write(shard.join("README"), b"not an object").unwrap();
        let referenced: HashSet<Sha256> = [Sha256::from_hex(&name('1')).unwrap()].into();
        let scan = scan_pool(dir.path(), &referenced).unwrap();
        assert_eq!(scan.objects, 3);
        assert_eq!(scan.garbage, [(shard.join(name('2')), 4)]);
        assert_eq!(scan.still_published, (1, 4));
        assert!(scan.stale.is_empty(), "a fresh staging file is not stale");
    }
}
