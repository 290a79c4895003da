//! What a frontend serves, read from the store: per channel and dist the
//! `InRelease`, `Release` and `Release.gpg` of one publication, the files
//! that `Release` lists (by SHA-256), and the pool paths their `Packages`
//! indices name. A dist is switched only once all of it was read, and the
//! three Release files agree, so a client never sees half of a publication.

use super::disk_cache::{CacheError, DiskCache};
use super::store::{Store, StoreError};
use crate::pool::Sha256;
use crate::publish::store_manifest::{self, BoxIndex, PublishedBox, PublishedUsers, StoreManifest};
use crate::serve::files::{FileInfo, Loaded};
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

/// A file named by its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRef {
    pub sha256: Sha256,
    pub size: u64,
}

/// Everything a frontend serves, switched as a whole per dist.
#[derive(Clone)]
pub struct Publication {
    pub manifest: StoreManifest,
    pub manifest_etag: Option<String>,
    /// The binary keyring and the ETag it had.
    pub keyring: Option<(Loaded, Option<String>)>,
    pub armored: Arc<String>,
    pub users_etag: Option<String>,
    pub channels: HashMap<String, Arc<ChannelView>>,
}

/// One channel: its dists, the union of their pool paths, its boxes.
#[derive(Clone, Default)]
pub struct ChannelView {
    pub dists: HashMap<String, Arc<DistView>>,
    pub pool: HashMap<String, ObjectRef>,
    pub boxes: Vec<PublishedBox>,
    pub boxes_etag: Option<String>,
}

/// One publication of one dist.
pub struct DistView {
    pub inrelease_etag: String,
    /// `InRelease`, `Release`, `Release.gpg` as they were read.
    pub releases: HashMap<&'static str, Loaded>,
    /// Every file `Release` lists, by its path under the dist.
    pub files: HashMap<String, ObjectRef>,
    /// Pool paths (`pool/…`) of the packages its indices list.
    pub pool: HashMap<String, ObjectRef>,
}

/// Why a part of a publication could not be read (the part served before stays).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Manifest(#[from] store_manifest::ManifestError),
    #[error("{0}")]
    Inconsistent(String),
}

impl ChannelView {
    /// The channel's pool paths: the union of its dists' (a pool path has
    /// the same bytes in every dist of a channel).
    pub fn with_dists(dists: HashMap<String, Arc<DistView>>, boxes: Vec<PublishedBox>) -> Self {
        let mut pool = HashMap::new();
        for dist in dists.values() {
            pool.extend(dist.pool.iter().map(|(k, v)| (k.clone(), *v)));
        }
        ChannelView {
            dists,
            pool,
            boxes,
            boxes_etag: None,
        }
    }
}

/// A file in memory with validators named by its content.
pub fn loaded(bytes: Bytes, modified: std::time::SystemTime) -> Loaded {
    let sha = crate::pool::Digests::sha256_of(&bytes).to_hex();
    Loaded {
        info: Arc::new(FileInfo {
            size: bytes.len() as u64,
            modified: httpdate::HttpDate::from(modified),
            etag: format!("\"{}\"", &sha[..32]),
        }),
        data: bytes,
    }
}

/// Reads the manifest.
pub async fn manifest(store: &Store) -> Result<(StoreManifest, Option<String>), SnapshotError> {
    let fetched = store.get(store_manifest::MANIFEST_KEY).await?;
    let manifest = store_manifest::parse(store_manifest::MANIFEST_KEY, &fetched.bytes)?;
    Ok((manifest, fetched.etag))
}

/// Reads the users, as the gate checks them.
pub async fn users(
    store: &Store,
) -> Result<(HashMap<String, crate::catalog::UserRow>, Option<String>), SnapshotError> {
    let Some(fetched) = store.get_optional(store_manifest::USERS_KEY).await? else {
        return Ok((HashMap::new(), None));
    };
    let published: PublishedUsers =
        store_manifest::parse(store_manifest::USERS_KEY, &fetched.bytes)?;
    let users = published
        .users
        .into_iter()
        .filter(|u| u.password_hash.starts_with("$argon2"))
        .map(|u| {
            let row = crate::catalog::UserRow {
                name: u.name.clone(),
                password_hash: u.password_hash,
                read: u.read,
                upload: u.upload,
                admin: u.admin,
                env: Vec::new(),
                environment: None,
            };
            (u.name, row)
        })
        .collect();
    Ok((users, fetched.etag))
}

/// Reads a channel's box index (empty when it has none).
pub async fn boxes(
    store: &Store,
    channel: &str,
) -> Result<(Vec<PublishedBox>, Option<String>), SnapshotError> {
    let key = store_manifest::boxes_key(channel);
    let Some(fetched) = store.get_optional(&key).await? else {
        return Ok((Vec::new(), None));
    };
    let index: BoxIndex = store_manifest::parse(&key, &fetched.bytes)?;
    Ok((index.boxes, fetched.etag))
}

/// Reads one dist's publication: the Release files, then the indices they
/// name (through the cache, by hash), checking every hash.
pub async fn dist(
    store: &Store,
    cache: &DiskCache,
    channel: &str,
    dist: &str,
) -> Result<Option<DistView>, SnapshotError> {
    let base = format!("{channel}/dists/{dist}");
    let Some(inrelease) = store.get_optional(&format!("{base}/InRelease")).await? else {
        return Ok(None);
    };
    let release = store.get(&format!("{base}/Release")).await?;
    let signature = store.get_optional(&format!("{base}/Release.gpg")).await?;
    let signed = crate::sign::signed_text_unchecked(&inrelease.bytes)
        .map_err(|e| SnapshotError::Inconsistent(format!("{base}/InRelease: {e}")))?;
    if trim_end(&signed) != trim_end(&release.bytes) {
        return Err(SnapshotError::Inconsistent(format!(
            "{base}/Release and InRelease differ (a publish is under way); the previous \
             publication stays until the next look"
        )));
    }
    let files = listed_files(&release.bytes);
    let pool = pool_of(store, cache, &base, &files).await?;
    let mut releases = HashMap::new();
    releases.insert("InRelease", loaded(inrelease.bytes, inrelease.modified));
    releases.insert("Release", loaded(release.bytes, release.modified));
    if let Some(signature) = signature {
        releases.insert("Release.gpg", loaded(signature.bytes, signature.modified));
    }
    Ok(Some(DistView {
        inrelease_etag: inrelease.etag.unwrap_or_default(),
        releases,
        files,
        pool,
    }))
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// The `SHA256:` entries of a Release file: path → hash and size.
pub fn listed_files(release: &[u8]) -> HashMap<String, ObjectRef> {
    let text = String::from_utf8_lossy(release);
    let mut files = HashMap::new();
    let mut in_sha256 = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_sha256 = line.trim_end() == "SHA256:";
            continue;
        }
        if !in_sha256 {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(hex), Some(size), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let (Some(sha256), Ok(size)) = (Sha256::from_hex(hex), size.parse()) {
            files.insert(path.to_string(), ObjectRef { sha256, size });
        }
    }
    files
}

/// The by-hash key of a file listed in a dist's Release.
pub fn by_hash_key(base: &str, path: &str, object: &ObjectRef) -> String {
    let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let hex = object.sha256.to_hex();
    match dir {
        "" => format!("{base}/by-hash/SHA256/{hex}"),
        dir => format!("{base}/{dir}/by-hash/SHA256/{hex}"),
    }
}

/// Every pool path the dist's `Packages` indices name, one index per
/// component and architecture (the best compressed one listed).
async fn pool_of(
    store: &Store,
    cache: &DiskCache,
    base: &str,
    files: &HashMap<String, ObjectRef>,
) -> Result<HashMap<String, ObjectRef>, SnapshotError> {
    let mut pool = HashMap::new();
    for (path, object) in chosen_indices(files) {
        let key = by_hash_key(base, &path, &object);
        let mut file = cache.open_file(store, object.sha256, &key).await?;
        let text = decompress(&path, &mut file)
            .map_err(|e| SnapshotError::Inconsistent(format!("{key} cannot be read: {e}")))?;
        read_stanzas(&text, &mut pool);
    }
    Ok(pool)
}

/// Per directory holding a `Packages` index, the one to read: `.xz`, else
/// `.gz`, else plain.
fn chosen_indices(files: &HashMap<String, ObjectRef>) -> Vec<(String, ObjectRef)> {
    let mut best: HashMap<&str, (u8, &str, ObjectRef)> = HashMap::new();
    for (path, object) in files {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let rank = match name {
            "Packages.xz" => 0,
            "Packages.gz" => 1,
            "Packages" => 2,
            _ => continue,
        };
        if best.get(dir).is_none_or(|(r, _, _)| rank < *r) {
            best.insert(dir, (rank, path, *object));
        }
    }
    let mut chosen: Vec<_> = best
        .into_values()
        .map(|(_, path, object)| (path.to_string(), object))
        .collect();
    chosen.sort_by(|a, b| a.0.cmp(&b.0));
    chosen
}

fn decompress(path: &str, file: &mut std::fs::File) -> std::io::Result<String> {
    let mut text = String::new();
    if path.ends_with(".xz") {
        xz2::read::XzDecoder::new_multi_decoder(file).read_to_string(&mut text)?;
    } else if path.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(file).read_to_string(&mut text)?;
    } else {
        file.read_to_string(&mut text)?;
    }
    Ok(text)
}

/// `Filename`, `Size` and `SHA256` of each stanza of a Packages index.
fn read_stanzas(text: &str, pool: &mut HashMap<String, ObjectRef>) {
    let (mut name, mut size, mut sha) = (None, None, None);
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if let (Some(name), Some(size), Some(sha256)) = (name.take(), size.take(), sha.take()) {
                pool.insert(name, ObjectRef { sha256, size });
            }
            (name, size, sha) = (None, None, None);
            continue;
        }
        if let Some(v) = line.strip_prefix("Filename: ") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Size: ") {
            size = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("SHA256: ") {
            sha = Sha256::from_hex(v.trim());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_lists_and_packages_stanzas_are_read() {
        let sha = "a".repeat(64);
        let release = format!(
            "Origin: x\nMD5Sum:\n {} 10 main/binary-amd64/Packages\nSHA256:\n {sha} 10 main/binary-amd64/Packages\n {sha} 5 main/binary-amd64/Packages.xz\n",
            "b".repeat(32)
        );
        let files = listed_files(release.as_bytes());
        assert_eq!(files.len(), 2);
        let chosen = chosen_indices(&files);
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].0, "main/binary-amd64/Packages.xz");
        assert_eq!(
            by_hash_key("prod/dists/bookworm", &chosen[0].0, &chosen[0].1),
            format!("prod/dists/bookworm/main/binary-amd64/by-hash/SHA256/{sha}")
        );
        let mut pool = HashMap::new();
        let text = format!(
            "Package: a\nFilename: pool/main/a/a_1_all.deb\nSize: 3\nSHA256: {sha}\n\nPackage: b\nFilename: pool/main/b/b_1_all.deb\nSize: 4\nSHA256: {sha}"
        );
        read_stanzas(&text, &mut pool);
        assert_eq!(pool.len(), 2);
        assert_eq!(pool["pool/main/b/b_1_all.deb"].size, 4);
    }
}
