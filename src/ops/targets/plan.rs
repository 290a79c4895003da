//! What a target lacks: the local publication compared with the target's
//! ledger, as ordered batches of uploads, copies and deletions.
//!
//! The store layout under `<prefix>/`: `objects/<sha256>` for every pool
//! object a placement of a channel references (content-addressed, put
//! once), `<channel>/dists/<dist>/…` mirroring the local dists files
//! byte for byte, and `key.gpg`, the binary public keyring.

use super::TargetError;
use crate::catalog::{CatalogError, PlacementFilter, Reader, TargetLedger};
use crate::config::PublishTarget;
use crate::pool::{Digests, Pool, Sha256, sha256_of_file};
use crate::publish::DistTree;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The bytes of one key.
#[derive(Debug, Clone)]
pub enum Content {
    File(PathBuf),
    Bytes(bytes::Bytes),
}

/// One key to write, from local bytes or by a server-side copy of a key
/// already holding the same bytes.
#[derive(Debug, Clone)]
pub struct Put {
    pub key: String,
    pub sha256: String,
    pub size: u64,
    pub content: Content,
    pub copy_from: Option<String>,
}

/// A dist's changes, in the order they must reach the store: new bytes,
/// then copies of them, then `Release`, `Release.gpg`, `InRelease` one by
/// one, then the keys the local tree no longer has.
#[derive(Debug, Default)]
pub struct DistPlan {
    pub uploads: Vec<Put>,
    pub copies: Vec<Put>,
    pub releases: Vec<Put>,
    pub stale: Vec<String>,
}

/// Everything a target lacks.
#[derive(Debug, Default)]
pub struct Plan {
    pub keyring: Option<Put>,
    pub objects: Vec<Put>,
    pub dists: Vec<DistPlan>,
}

/// The files at the top of a dist that name the others, written last.
const RELEASE_FILES: [&str; 3] = ["Release", "Release.gpg", "InRelease"];

/// What the local state holds for the store.
pub struct Local<'a> {
    pub reader: &'a Reader<'a>,
    pub pool: &'a Pool,
    pub public_dir: &'a Path,
    pub channels: &'a [String],
    pub dists: &'a [String],
    pub keyring: Option<Vec<u8>>,
}

/// What the ledger says a store holds: pool objects as digests (32 bytes
/// each: a target holds every object of the repository), every other key
/// with the SHA-256 of its bytes.
#[derive(Debug, Default)]
pub struct Held {
    objects: HashSet<[u8; 32]>,
    files: HashMap<String, String>,
}

impl Held {
    /// Reads `ledger`, the record of `target`.
    pub fn load(ledger: &TargetLedger, target: &PublishTarget) -> Result<Held, TargetError> {
        let objects = target.key("objects/");
        let mut held = Held::default();
        ledger.each_held(|key, sha| {
            match key.strip_prefix(&objects).and_then(Sha256::from_hex) {
                Some(digest) => held.objects.insert(digest.0),
                None => held
                    .files
                    .insert(key.to_string(), sha.to_string())
                    .is_none(),
            };
        })?;
        Ok(held)
    }
}

/// Compares `local` with what the target holds.
pub fn plan(target: &PublishTarget, local: &Local<'_>, held: &Held) -> Result<Plan, TargetError> {
    let objects = missing_objects(target, local, &held.objects)?;
    let held = &held.files;
    // A key per content the store has, or will have once an earlier
    // batch of this plan is written: the source of server-side copies.
    // Only by-hash keys, whose bytes never change: a named index file may
    // be overwritten by a copy running beside the one reading it.
    let mut holders: HashMap<String, String> = HashMap::new();
    for (key, sha) in held.iter().filter(|(key, _)| is_by_hash(key)) {
        holders.entry(sha.clone()).or_insert_with(|| key.clone());
    }
    let keyring = local.keyring.as_ref().and_then(|bytes| {
        let sha = Digests::sha256_of(bytes).to_hex();
        let key = target.key("key.gpg");
        (held.get(&key) != Some(&sha)).then(|| Put {
            key,
            sha256: sha,
            size: bytes.len() as u64,
            content: Content::Bytes(bytes::Bytes::from(bytes.clone())),
            copy_from: None,
        })
    });
    let mut dists = Vec::new();
    for channel in local.channels {
        for dist in local.dists {
            let dir = DistTree::new(local.public_dir.join(channel), dist).link_path();
            if !dir.exists() {
                continue;
            }
            let base = target.key(&format!("{channel}/dists/{dist}"));
            let files = dist_files(&dir, &base)?;
            dists.push(dist_plan(&base, files, held, &mut holders));
        }
    }
    Ok(Plan {
        keyring,
        objects,
        dists,
    })
}

/// Pool objects some placement references that the target lacks.
fn missing_objects(
    target: &PublishTarget,
    local: &Local<'_>,
    held: &HashSet<[u8; 32]>,
) -> Result<Vec<Put>, TargetError> {
    let mut missing = Vec::new();
    // Only the missing ones are remembered, for the other channels.
    let mut planned = HashSet::new();
    for channel in local.channels {
        let filter = PlacementFilter {
            channel: Some(channel.clone()),
            ..PlacementFilter::default()
        };
        let mut bad = None;
        local
            .reader
            .each_placement(&filter, |p| -> Result<(), CatalogError> {
                let Some(digest) = Sha256::from_hex(&p.package.sha256) else {
                    bad = Some(p.package.sha256);
                    return Ok(());
                };
                if !held.contains(&digest.0) && planned.insert(digest.0) {
                    missing.push(Put {
                        key: target.key(&format!("objects/{}", p.package.sha256)),
                        sha256: p.package.sha256,
                        size: p.package.size,
                        content: Content::File(local.pool.object_path(&digest)),
                        copy_from: None,
                    });
                }
                Ok(())
            })?;
        if let Some(sha) = bad {
            return Err(TargetError::Local(format!(
                "the catalog names object `{sha}`, not a SHA-256"
            )));
        }
    }
    Ok(missing)
}

/// Every file of a published dist (through its by-hash links) with its
/// key under `base`. By-hash files come first, so that a named index file
/// is copied from the by-hash key of the same bytes.
fn dist_files(dir: &Path, base: &str) -> Result<Vec<(String, PathBuf)>, TargetError> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry =
            entry.map_err(|e| TargetError::Local(format!("cannot read {}: {e}", dir.display())))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .expect("walkdir stays under its root")
            .to_string_lossy()
            .into_owned();
        files.push((format!("{base}/{rel}"), entry.into_path()));
    }
    files.sort_by_key(|(key, _)| !is_by_hash(key));
    Ok(files)
}

/// The changes of one dist, given what the store holds (`holders`: a key
/// per content, which this dist's uploads are added to).
fn dist_plan(
    base: &str,
    files: Vec<(String, PathBuf)>,
    held: &HashMap<String, String>,
    holders: &mut HashMap<String, String>,
) -> DistPlan {
    let mut plan = DistPlan::default();
    let mut local_keys = HashSet::new();
    let named = named_by_sha256(&files);
    for (key, path) in files {
        local_keys.insert(key.clone());
        let Ok((sha, size)) = content_of(&path, &named) else {
            continue; // pruned by a concurrent publish: the next one mirrors it
        };
        if held.get(&key) == Some(&sha) {
            continue;
        }
        let mut put = Put {
            key: key.clone(),
            sha256: sha.clone(),
            size,
            content: Content::File(path),
            copy_from: None,
        };
        let top = key.strip_prefix(base).map(|k| k.trim_start_matches('/'));
        if top.is_some_and(|t| RELEASE_FILES.contains(&t)) {
            plan.releases.push(put);
            continue;
        }
        put.copy_from = holders.get(&sha).cloned();
        match put.copy_from {
            Some(_) => plan.copies.push(put),
            None => {
                if is_by_hash(&key) {
                    holders.insert(sha, key);
                }
                plan.uploads.push(put);
            }
        }
    }
    plan.releases.sort_by_key(|p| {
        RELEASE_FILES
            .iter()
            .position(|r| p.key.ends_with(&format!("/{r}")))
    });
    let under = format!("{base}/");
    plan.stale = held
        .keys()
        .filter(|k| k.starts_with(&under) && !local_keys.contains(*k))
        .cloned()
        .collect();
    plan.stale.sort();
    plan
}

/// A file's identity on disk (device, inode).
type FileId = (u64, u64);

/// The SHA-256 of each file stored as `by-hash/SHA256/<hex>`, by file: a
/// dist's index files are hard links to those (`publish/generation.rs`),
/// so their hash is known without reading them again.
fn named_by_sha256(files: &[(String, PathBuf)]) -> HashMap<FileId, String> {
    use std::os::unix::fs::MetadataExt;
    let mut named = HashMap::new();
    for (key, path) in files {
        let Some((_, hex)) = key.rsplit_once("/by-hash/SHA256/") else {
            continue;
        };
        if Sha256::from_hex(hex).is_none() {
            continue;
        }
        if let Ok(meta) = std::fs::metadata(path) {
            named.insert((meta.dev(), meta.ino()), hex.to_string());
        }
    }
    named
}

/// The SHA-256 (hex) and size of a dist file: from `named` when it is a
/// link to a by-hash file, else read and hashed (Release files).
fn content_of(path: &Path, named: &HashMap<FileId, String>) -> std::io::Result<(String, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    let sha = match named.get(&(meta.dev(), meta.ino())) {
        Some(hex) => hex.clone(),
        None => sha256_of_file(path)?.to_hex(),
    };
    Ok((sha, meta.len()))
}

/// Whether `key` is a by-hash copy, named by its bytes.
fn is_by_hash(key: &str) -> bool {
    key.contains("/by-hash/")
}
