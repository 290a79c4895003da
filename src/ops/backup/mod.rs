//! `bess backup` and `bess restore`: a consistent copy of a repository in
//! use, and a working repository rebuilt from one.
//!
//! A backup directory holds:
//!
//! ```text
//! DEST/backup.json                 manifest, replaced last: the commit point
//! DEST/snapshots/<id>/catalog.db   the catalog, through SQLite's online backup API
//! DEST/snapshots/<id>/config/      bess.toml, dists.list, archs.list
//! DEST/snapshots/<id>/keys/        signing keys and the box token key (secret: 0600 in a 0700 directory)
//! DEST/pool/<2 hex>/<sha256>       objects, shared by successive backups
//! ```
//!
//! The catalog is copied first and the objects it names after it: objects
//! are immutable and stay while the catalog refers to them, so the copy is
//! consistent while uploads keep landing. Until the new manifest replaces
//! the old one, the previous backup stays whole and restorable. `public/`
//! and `cache/` are not copied: restore republishes them from the catalog.

mod copy;
mod manifest;
pub(crate) mod restore;

pub use copy::CopyCounts;
pub use manifest::{KeyEntry, Manifest, ObjectTotals};
pub use restore::{RestoreReport, RestoreRequest, restore};

use super::{OpsError, Repo};
use crate::catalog::{CatalogCopy, ObjectRef};
use crate::pool::Sha256;
use copy::{ObjectSource, copy_all, copy_file_atomically};
use manifest::{CatalogEntry, FileEntry};
use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// What `bess backup` copies where.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// The backup directory: new, empty, or holding an earlier backup.
    pub dest: PathBuf,
    /// Hash every object copied, and every object already in `dest`.
    pub verify: bool,
}

/// What a backup did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupReport {
    pub dest: PathBuf,
    pub snapshot: String,
    pub schema_version: usize,
    /// Every object the catalog refers to.
    pub objects: ObjectTotals,
    /// Of those: copied now, or already in the backup.
    #[serde(flatten)]
    pub counts: CopyCounts,
    /// Objects of earlier backups that the catalog no longer refers to.
    pub removed: u64,
    pub keys: Vec<KeyEntry>,
}

/// Backs `repo` up into `request.dest`; only objects the backup lacks are copied.
pub fn backup(repo: &mut Repo, request: &BackupRequest) -> Result<BackupReport, OpsError> {
    let dest = prepare_dest(repo.config.layout.root(), &request.dest)?;
    // One backup at a time per directory: a second one waits.
    let _lock = super::lock::PublishLock::acquire(&dest.join(".lock"))?;
    let (secs, created) = now();
    let id = format!("{secs}-{}", std::process::id());
    let snapshot = dest.join("snapshots").join(&id);
    create_private_dir(&snapshot)?;
    let written = write_backup(repo, request, &dest, (&id, secs, created));
    if written.is_err() {
        // Objects already copied stay for the next attempt; a snapshot
        // without its manifest is only in the way (a full disk, say).
        let _ = fs::remove_dir_all(&snapshot);
    }
    written
}

/// The snapshot `id`, the objects and, last, the manifest that makes them
/// a backup; the unfinished mark goes once the manifest is saved.
fn write_backup(
    repo: &mut Repo,
    request: &BackupRequest,
    dest: &Path,
    (id, secs, created): (&str, u64, String),
) -> Result<BackupReport, OpsError> {
    let snapshot = dest.join("snapshots").join(id);
    create_private_dir(&dest.join("pool"))?;
    // Shared with ingests, exclusive for gc: no object the catalog copy
    // names can be collected before it is copied.
    let pool_lock = super::lock::PoolLock::shared(&super::lock::PoolLock::path(
        &repo.config.layout.catalog_file(),
    ))?;
    let catalog = copy_catalog(repo, &snapshot)?;
    let copy = CatalogCopy::open(&snapshot.join(&catalog.file))?;
    let (count, bytes) = copy.object_totals()?;
    let objects = ObjectTotals { count, bytes };
    let (counts, kept) = copy_referenced(repo, &copy, bytes, dest, request.verify)?;
    drop((copy, pool_lock));
    let manifest = Manifest {
        format: manifest::FORMAT,
        bess_version: env!("CARGO_PKG_VERSION").to_string(),
        created_unix: secs,
        created,
        source: fs::canonicalize(repo.config.layout.root())
            .unwrap_or_else(|_| repo.config.layout.root().to_path_buf()),
        snapshot: format!("snapshots/{id}"),
        catalog,
        objects,
        config: copy_config(repo, &snapshot)?,
        keys: copy_keys(repo, &snapshot)?,
        box_token_key: copy_box_token_key(repo, &snapshot)?,
    };
    crate::pool::sync_filesystem(dest).map_err(OpsError::io("sync", dest))?;
    manifest.save(dest)?;
    let unfinished = dest.join(UNFINISHED);
    if unfinished.exists() {
        fs::remove_file(&unfinished).map_err(OpsError::io("remove", &unfinished))?;
    }
    let removed = remove_stale(dest, id, &kept)?;
    Ok(BackupReport {
        dest: dest.to_path_buf(),
        snapshot: manifest.snapshot,
        schema_version: manifest.catalog.schema_version,
        objects: manifest.objects,
        counts,
        removed,
        keys: manifest.keys,
    })
}

/// Copies the objects the catalog copy refers to from the repository's
/// pool, `bytes` in all; returns what it did and the objects' digests.
fn copy_referenced(
    repo: &Repo,
    copy: &CatalogCopy,
    bytes: u64,
    dest: &Path,
    verify: bool,
) -> Result<(CopyCounts, HashSet<Sha256>), OpsError> {
    let stage = repo.progress.stage("copying objects", bytes, true);
    let source = ObjectSource {
        pool: &repo.config.layout.pool_dir(),
        role: "the repository",
        hint: "it was in the catalog when the backup started (removed meanwhile?); run `bess repo check`, then `bess backup` again",
    };
    let mut kept = HashSet::new();
    let keep = |o: &ObjectRef| kept.extend(Sha256::from_hex(&o.sha256));
    let counts = copy_all(copy, (&source, &dest.join("pool")), verify, &*stage, keep)?;
    Ok((counts, kept))
}

/// The backup directory, absolute: created if missing; refused if it is
/// inside the repository (or holds it), or holds anything but a backup.
fn prepare_dest(root: &Path, dest: &Path) -> Result<PathBuf, OpsError> {
    let root = fs::canonicalize(root).map_err(OpsError::io("resolve", root))?;
    let target = absolute(dest)?;
    if target.starts_with(&root) || root.starts_with(&target) {
        return Err(OpsError::Usage(format!(
            "backup directory {} overlaps the repository {}; back up to another directory, ideally another disk",
            target.display(),
            root.display()
        )));
    }
    let unfinished = target.join(UNFINISHED);
    if target.exists() && !target.join(manifest::MANIFEST).exists() && !unfinished.exists() {
        let mut entries = fs::read_dir(&target).map_err(OpsError::io("read", &target))?;
        if entries.next().is_some() {
            return Err(OpsError::Usage(format!(
                "{} is neither empty nor a bess backup (no {}); choose a new or empty directory",
                target.display(),
                manifest::MANIFEST
            )));
        }
    }
    create_private_dir(&target)?;
    if !target.join(manifest::MANIFEST).exists() {
        fs::File::create(&unfinished).map_err(OpsError::io("create", &unfinished))?;
    }
    Ok(target)
}

/// Marks a first backup not yet complete, so that the same command, run
/// again after a failure (a full disk), resumes in that directory instead
/// of refusing it as foreign.
const UNFINISHED: &str = ".bess-backup-unfinished";

/// `path` made absolute through its longest existing ancestor, so that
/// symlinks cannot hide that it lies inside the repository.
fn absolute(path: &Path) -> Result<PathBuf, OpsError> {
    let mut existing = path;
    let mut rest = Vec::new();
    while !existing.as_os_str().is_empty() && !existing.exists() {
        rest.push(existing.file_name().unwrap_or_default());
        existing = existing.parent().unwrap_or(Path::new(""));
    }
    let base = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    let mut absolute = fs::canonicalize(base).map_err(OpsError::io("resolve", base))?;
    absolute.extend(rest.iter().rev());
    Ok(absolute)
}

/// Creates `dir` and its parents; the ones created are owner-only,
/// since a backup holds secret keys and password hashes.
fn create_private_dir(dir: &Path) -> Result<(), OpsError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(OpsError::io("create directory", dir))
}

/// The catalog, first: its copy decides which objects the backup needs.
fn copy_catalog(repo: &Repo, snapshot: &Path) -> Result<CatalogEntry, OpsError> {
    let file = "catalog.db";
    let temp = snapshot.join(".catalog.db.tmp");
    let path = snapshot.join(file);
    repo.catalog.copy_to(&temp)?;
    fs::rename(&temp, &path).map_err(OpsError::io("rename into place", &path))?;
    crate::pool::fsync_dir(snapshot).map_err(OpsError::io("sync directory", snapshot))?;
    let sha256 = copy::sha256_file(&path).map_err(OpsError::io("read", &path))?;
    let size = fs::metadata(&path)
        .map_err(OpsError::io("read", &path))?
        .len();
    let schema_version = CatalogCopy::open(&path)?.schema_version()?;
    Ok(CatalogEntry {
        file: file.to_string(),
        sha256,
        size,
        schema_version,
    })
}

/// The three configuration files, as they are now.
fn copy_config(repo: &Repo, snapshot: &Path) -> Result<Vec<FileEntry>, OpsError> {
    let layout = &repo.config.layout;
    let dir = snapshot.join("config");
    create_private_dir(&dir)?;
    let mut entries = Vec::new();
    for from in [
        layout.settings_file(),
        layout.dists_file(),
        layout.archs_file(),
    ] {
        let name = from
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let sha256 = copy_file_atomically(&from, &dir.join(name), 0o644)?;
        entries.push(FileEntry {
            file: format!("config/{name}"),
            sha256,
        });
    }
    Ok(entries)
}

/// Every key the key store recognises (signing and retired), mode 0600.
fn copy_keys(repo: &Repo, snapshot: &Path) -> Result<Vec<KeyEntry>, OpsError> {
    let store = crate::sign::KeyStore::open(repo.config.layout.root());
    let refuse = |e: crate::sign::SignError| OpsError::Usage(format!("cannot back up keys: {e}"));
    let signing = store.signing_fingerprints().map_err(refuse)?;
    let retired = store.retired_fingerprints().map_err(refuse)?;
    let mut entries = Vec::new();
    let listed = signing.iter().map(|f| (f, false));
    for (fingerprint, is_retired) in listed.chain(retired.iter().map(|f| (f, true))) {
        let file = if is_retired {
            format!("keys/retired/{fingerprint}.key")
        } else {
            format!("keys/{fingerprint}.key")
        };
        let to = snapshot.join(&file);
        create_private_dir(to.parent().expect("key files sit in a directory"))?;
        let from = repo.config.layout.root().join(&file);
        let sha256 = copy_file_atomically(&from, &to, 0o600)?;
        entries.push(KeyEntry {
            file,
            fingerprint: fingerprint.clone(),
            sha256,
            secret: true,
            retired: is_retired,
        });
    }
    Ok(entries)
}

/// The box token key, mode 0600, if the repository has one yet (it is
/// made the first time `bess serve` runs).
fn copy_box_token_key(repo: &Repo, snapshot: &Path) -> Result<Option<FileEntry>, OpsError> {
    let layout = &repo.config.layout;
    let from = layout.box_token_secret();
    if !from.exists() {
        return Ok(None);
    }
    let file = from
        .strip_prefix(layout.root())
        .ok()
        .and_then(|rel| rel.to_str())
        .map(str::to_string)
        .ok_or_else(|| OpsError::Usage(format!("{} is outside the repository", from.display())))?;
    let to = snapshot.join(&file);
    create_private_dir(to.parent().expect("the key sits in a directory"))?;
    let sha256 = copy_file_atomically(&from, &to, 0o600)?;
    Ok(Some(FileEntry { file, sha256 }))
}

/// After the new manifest is in place: older snapshots, objects no longer
/// referenced, and temp files of interrupted backups go. Returns how many
/// objects were removed.
fn remove_stale(dest: &Path, keep: &str, kept: &HashSet<Sha256>) -> Result<u64, OpsError> {
    let snapshots = dest.join("snapshots");
    for entry in fs::read_dir(&snapshots).map_err(OpsError::io("read", &snapshots))? {
        let entry = entry.map_err(OpsError::io("read", &snapshots))?;
        if entry.file_name() != keep {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(OpsError::io("remove", &path))?;
        }
    }
    let mut removed = 0;
    let pool = dest.join("pool");
    let files = walkdir::WalkDir::new(&pool)
        .min_depth(2)
        .max_depth(2)
        .into_iter()
        .filter_map(Result::ok);
    for entry in files.filter(|e| e.file_type().is_file()) {
        let name = entry.file_name().to_str().unwrap_or_default();
        if !Sha256::from_hex(name).is_some_and(|o| kept.contains(&o)) {
            fs::remove_file(entry.path()).map_err(OpsError::io("remove", entry.path()))?;
            removed += u64::from(!name.starts_with('.'));
        }
    }
    Ok(removed)
}

/// Now, in Unix seconds and as an RFC 1123 date.
fn now() -> (u64, String) {
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs, crate::publish::release::rfc1123(now))
}
