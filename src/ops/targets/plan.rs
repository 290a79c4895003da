//! What a target lacks: the local publication compared with the target's
//! ledger, as ordered batches of uploads, copies and deletions.
//!
//! The store layout is `publish::store_manifest`'s: `objects/<sha256>` for
//! every pool object a placement of a channel references (packages and
//! boxes, content-addressed, put once), `<channel>/dists/<dist>/…`
//! mirroring the local dists files byte for byte, `<channel>/boxes.json`,
//! `key.gpg`, `bess.json` and `.bess/users.json`. With `layout = "tree"`,
//! also the apt and box paths (`<channel>/pool/…`, `<channel>/boxes/…`),
//! as server-side copies of the objects.

use super::TargetError;
use crate::boxes::BoxIdentity;
use crate::catalog::{PlacementFilter, Reader, TargetLedger};
use crate::config::{PublishTarget, TargetLayout};
use crate::pool::{Digests, Pool, Sha256, sha256_of_file};
use crate::publish::DistTree;
use crate::publish::store_manifest::{
    BoxIndex, FORMAT, KEYRING_KEY, MANIFEST_KEY, PublishedBox, USERS_KEY, boxes_key, object_key,
};
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

/// Everything a target lacks, each part sent after the ones above it.
#[derive(Debug, Default)]
pub struct Plan {
    pub keyring: Option<Put>,
    /// Package and box objects.
    pub objects: Vec<Put>,
    /// `layout = "tree"`: copies of objects at their apt and box paths.
    pub tree: Vec<Put>,
    /// `<channel>/boxes.json`, after the objects it names.
    pub box_indices: Vec<Put>,
    pub dists: Vec<DistPlan>,
    /// `bess.json` and `.bess/users.json`, once every dist is complete.
    pub manifest: Vec<Put>,
    /// Tree keys no placement wants any more, deleted at the very end.
    pub stale_tree: Vec<String>,
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
    /// The bytes of `bess.json`.
    pub manifest: Vec<u8>,
    /// The bytes of `.bess/users.json`.
    pub users: Vec<u8>,
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
    let mut walk = Walk::new(target, &held.objects);
    for channel in local.channels {
        walk.packages(local, channel)?;
        walk.boxes(local, channel, &held.files)?;
    }
    let held = &held.files;
    let (tree, stale_tree) = walk.tree_changes(local, held);
    // A key per content the store has, or will have once an earlier
    // batch of this plan is written: the source of server-side copies.
    // Only by-hash keys, whose bytes never change: a named index file may
    // be overwritten by a copy running beside the one reading it.
    let mut holders: HashMap<String, String> = HashMap::new();
    for (key, sha) in held.iter().filter(|(key, _)| is_by_hash(key)) {
        holders.entry(sha.clone()).or_insert_with(|| key.clone());
    }
    let keyring = local
        .keyring
        .as_ref()
        .and_then(|bytes| changed_file(target.key(KEYRING_KEY), bytes, held));
    let manifest = [(MANIFEST_KEY, &local.manifest), (USERS_KEY, &local.users)]
        .into_iter()
        .filter_map(|(key, bytes)| changed_file(target.key(key), bytes, held))
        .collect();
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
        objects: walk.missing,
        tree,
        box_indices: walk.box_indices,
        dists,
        manifest,
        stale_tree,
    })
}

/// A small file at `key` unless the store holds these very bytes there.
pub fn changed_file(key: String, bytes: &[u8], held: &HashMap<String, String>) -> Option<Put> {
    let sha = Digests::sha256_of(bytes).to_hex();
    (held.get(&key) != Some(&sha)).then(|| Put {
        key,
        sha256: sha,
        size: bytes.len() as u64,
        content: Content::Bytes(bytes::Bytes::copy_from_slice(bytes)),
        copy_from: None,
    })
}

/// The placements of every channel, walked once: the objects the store
/// lacks, each channel's box index, and (tree layout) the key each placed
/// file wants with its bytes.
struct Walk<'a> {
    target: &'a PublishTarget,
    held: &'a HashSet<[u8; 32]>,
    missing: Vec<Put>,
    /// Only the missing objects are remembered, for the other channels.
    planned: HashSet<[u8; 32]>,
    box_indices: Vec<Put>,
    /// Tree key → SHA-256 of its bytes; empty unless `layout = "tree"`.
    tree: HashMap<String, String>,
}

impl<'a> Walk<'a> {
    fn new(target: &'a PublishTarget, held: &'a HashSet<[u8; 32]>) -> Walk<'a> {
        Walk {
            target,
            held,
            missing: Vec::new(),
            planned: HashSet::new(),
            box_indices: Vec::new(),
            tree: HashMap::new(),
        }
    }

    /// The objects of the packages placed in `channel`.
    fn packages(&mut self, local: &Local<'_>, channel: &str) -> Result<(), TargetError> {
        let filter = PlacementFilter {
            channel: Some(channel.to_string()),
            ..PlacementFilter::default()
        };
        local
            .reader
            .each_placement(&filter, |p| -> Result<(), TargetError> {
                let rel = format!("{channel}/pool/{}/{}", p.component, p.package.pool_name);
                self.object(local.pool, &p.package.sha256, p.package.size, rel)
            })
    }

    /// The objects of the boxes placed in `channel`, and its `boxes.json`.
    fn boxes(
        &mut self,
        local: &Local<'_>,
        channel: &str,
        held: &HashMap<String, String>,
    ) -> Result<(), TargetError> {
        let mut boxes = Vec::new();
        for placed in local.reader.box_placements(Some(channel), None)? {
            let row = placed.row;
            let identity = BoxIdentity::new(&row.name, &row.version, &row.provider, &row.arch)
                .map_err(|e| {
                    TargetError::Local(format!(
                        "catalog box {} {} is not a valid box identity: {e}",
                        row.name, row.version
                    ))
                })?;
            let rel = format!("{channel}/boxes/{}", identity.file_path());
            self.object(local.pool, &row.sha256, row.size, rel)?;
            boxes.push(PublishedBox {
                name: row.name,
                version: row.version,
                provider: row.provider,
                arch: row.arch,
                sha256: row.sha256,
                size: row.size,
            });
        }
        boxes.sort_by(|a, b| {
            (&a.name, &a.version, &a.provider, &a.arch).cmp(&(
                &b.name,
                &b.version,
                &b.provider,
                &b.arch,
            ))
        });
        let index = BoxIndex {
            format: FORMAT,
            boxes,
        };
        let bytes = json_file(&index);
        let key = self.target.key(&boxes_key(channel));
        self.box_indices.extend(changed_file(key, &bytes, held));
        Ok(())
    }

    /// One placed object, published at `rel` in the tree layout.
    fn object(
        &mut self,
        pool: &Pool,
        sha: &str,
        size: u64,
        rel: String,
    ) -> Result<(), TargetError> {
        let Some(digest) = Sha256::from_hex(sha) else {
            return Err(TargetError::Local(format!(
                "the catalog names object `{sha}`, not a SHA-256"
            )));
        };
        if self.target.layout == TargetLayout::Tree {
            self.tree.insert(self.target.key(&rel), sha.to_string());
        }
        if !self.held.contains(&digest.0) && self.planned.insert(digest.0) {
            self.missing.push(Put {
                key: self.target.key(&object_key(sha)),
                sha256: sha.to_string(),
                size,
                content: Content::File(pool.object_path(&digest)),
                copy_from: None,
            });
        }
        Ok(())
    }

    /// The tree keys to copy from their objects, and those held that no
    /// placement wants any more (every tree key, once the layout is
    /// `objects` again). In the tree layout a key goes only once its local
    /// file is gone too: the local publish withdraws a file after the last
    /// index listing it, and the store's indices follow the local ones.
    fn tree_changes(
        &mut self,
        local: &Local<'_>,
        held: &HashMap<String, String>,
    ) -> (Vec<Put>, Vec<String>) {
        let wanted = std::mem::take(&mut self.tree);
        let roots: Vec<String> = local
            .channels
            .iter()
            .flat_map(|c| [format!("{c}/pool/"), format!("{c}/boxes/")])
            .map(|rel| self.target.key(&rel))
            .collect();
        let base = self.target.key("");
        let mut stale: Vec<String> = held
            .keys()
            .filter(|k| roots.iter().any(|r| k.starts_with(r.as_str())))
            .filter(|k| !wanted.contains_key(*k))
            .filter(|k| {
                let rel = k.strip_prefix(&base).unwrap_or(k);
                self.target.layout != TargetLayout::Tree || !local.public_dir.join(rel).exists()
            })
            .cloned()
            .collect();
        stale.sort();
        let mut copies: Vec<Put> = wanted
            .into_iter()
            .filter(|(key, sha)| held.get(key) != Some(sha))
            .map(|(key, sha)| Put {
                copy_from: Some(self.target.key(&object_key(&sha))),
                key,
                sha256: sha,
                size: 0,
                content: Content::Bytes(bytes::Bytes::new()),
            })
            .collect();
        copies.sort_by(|a, b| a.key.cmp(&b.key));
        (copies, stale)
    }
}

/// A published JSON file: pretty, with a final newline (operators read
/// them with `curl`), and the same bytes for the same value.
pub fn json_file<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("plain data serializes");
    bytes.push(b'\n');
    bytes
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
