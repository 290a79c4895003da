//! `bess restore SRC DIR`: a working repository rebuilt from a backup.
//!
//! Every file is checked against the manifest (and every object against
//! its name) while it is copied; `bess.toml` is written last, so an
//! interrupted restore never looks like a repository, and a failed one
//! removes what it made. The public trees are then republished from the
//! restored catalog: the same indices with the same checksums, under a
//! new Date (a restore is a new publication).

use super::copy::{self, CopyCounts, ObjectSource, copy_file_atomically};
use super::manifest::Manifest;
use crate::catalog::CatalogCopy;
use crate::config::Layout;
use crate::ops::progress::Progress;
use crate::ops::{OpsError, PublishRequest, Published, Repo};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which backup to restore where.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The backup directory (`bess backup DEST`).
    pub source: PathBuf,
    /// The repository to create: a new or empty directory.
    pub dir: PathBuf,
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    pub dir: PathBuf,
    /// When the restored backup was taken.
    pub backup_created: String,
    pub objects: CopyCounts,
    pub keys: usize,
    pub published: Vec<Published>,
}

/// Restores the backup at `request.source` into `request.dir` and publishes it.
pub fn restore(
    request: &RestoreRequest,
    progress: Arc<dyn Progress>,
) -> Result<RestoreReport, OpsError> {
    let manifest = Manifest::load(&request.source)?;
    let snapshot = manifest.snapshot_dir(&request.source);
    let catalog_path = snapshot.join(&manifest.catalog.file);
    check_file(&catalog_path, &manifest.catalog.sha256)?;
    let catalog = CatalogCopy::open(&catalog_path)?;
    catalog.check()?;
    let existed = claim_dir(&request.dir)?;
    let layout = Layout::new(&request.dir);
    let restored = rebuild(&request.source, &manifest, &catalog, &layout, &*progress)
        .and_then(|counts| publish(&request.dir, progress, counts))
        .and_then(|done| finish(&request.dir).map(|()| done));
    match restored {
        Ok((objects, published)) => Ok(RestoreReport {
            dir: request.dir.clone(),
            backup_created: manifest.created.clone(),
            objects,
            keys: manifest.keys.len(),
            published,
        }),
        Err(error) => {
            let _ = fs::remove_dir_all(&request.dir);
            if existed {
                let _ = fs::create_dir(&request.dir);
            }
            Err(error)
        }
    }
}

/// Copies everything into the new repository, `bess.toml` last.
fn rebuild(
    source: &Path,
    manifest: &Manifest,
    catalog: &CatalogCopy,
    layout: &Layout,
    progress: &dyn Progress,
) -> Result<CopyCounts, OpsError> {
    make_layout(layout)?;
    let pool = source.join("pool");
    let from = ObjectSource {
        pool: &pool,
        role: "the backup",
        hint: "this backup cannot be restored whole; restore an older backup, or copy the object from another one",
    };
    let stage = progress.stage("restoring objects", manifest.objects.bytes, true);
    let pool_dir = layout.pool_dir();
    let counts = copy::copy_all(catalog, (&from, &pool_dir), true, &*stage, |_| {})?;
    drop(stage);
    let snapshot = manifest.snapshot_dir(source);
    let catalog = snapshot.join(&manifest.catalog.file);
    // It holds the users' password hashes: owner-only, like a new catalog.
    copy_checked(
        &catalog,
        &layout.catalog_file(),
        0o600,
        &manifest.catalog.sha256,
    )?;
    let secrets = manifest.keys.iter().map(|k| (&k.file, &k.sha256));
    let box_token_key = manifest.box_token_key.iter().map(|k| (&k.file, &k.sha256));
    for (file, sha256) in secrets.chain(box_token_key) {
        let to = layout.root().join(file);
        private_dir(to.parent().expect("key files sit in a directory"))?;
        copy_checked(&snapshot.join(file), &to, 0o600, sha256)?;
    }
    // bess.toml last: its presence is what marks a complete repository.
    let mut config = manifest.config.clone();
    config.sort_by_key(|f| f.file.ends_with("bess.toml"));
    for file in &config {
        let name = Path::new(&file.file).file_name().unwrap_or_default();
        copy_checked(
            &snapshot.join(&file.file),
            &layout.root().join(name),
            0o644,
            &file.sha256,
        )?;
    }
    Ok(counts)
}

/// Republishes every channel and dist from the restored catalog, relinking
/// every placed file into the public trees.
fn publish(
    dir: &Path,
    progress: Arc<dyn Progress>,
    counts: CopyCounts,
) -> Result<(CopyCounts, Vec<Published>), OpsError> {
    let mut repo = Repo::open_restoring(dir)?;
    repo.progress = progress;
    let request = PublishRequest {
        targets: Vec::new(),
        refresh: true,
    };
    Ok((counts, crate::ops::publish(&mut repo, &request)?))
}

/// The directories `bess init` makes.
fn make_layout(layout: &Layout) -> Result<(), OpsError> {
    for dir in [layout.pool_dir(), layout.tmp_dir(), layout.public_dir()] {
        fs::create_dir_all(&dir).map_err(OpsError::io("create directory", &dir))?;
    }
    let catalog = layout.catalog_file();
    private_dir(catalog.parent().expect("the catalog is in a directory"))?;
    private_dir(&layout.keys_dir())
}

fn private_dir(dir: &Path) -> Result<(), OpsError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(OpsError::io("create directory", dir))
}

/// Marks a restore in progress in its directory: [`Repo::open`] refuses
/// such a half-built repository, and the same `bess restore`, run again
/// after a crash, starts it over instead of refusing a non-empty directory.
pub const UNFINISHED: &str = ".bess-restore-unfinished";

/// Creates `dir`, or accepts an empty one or one an interrupted restore
/// left (emptied first), and marks it unfinished; returns whether it existed.
fn claim_dir(dir: &Path) -> Result<bool, OpsError> {
    let existed = match fs::read_dir(dir) {
        Ok(mut entries) => {
            if dir.join(UNFINISHED).exists() {
                fs::remove_dir_all(dir).map_err(OpsError::io("empty", dir))?;
                fs::create_dir(dir).map_err(OpsError::io("create directory", dir))?;
            } else if entries.next().is_some() {
                return Err(OpsError::Usage(format!(
                    "{} is not empty; restore into a new or empty directory",
                    dir.display()
                )));
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(OpsError::io("create directory", dir))?;
            false
        }
        Err(e) => return Err(OpsError::io("read", dir)(e)),
    };
    let mark = dir.join(UNFINISHED);
    fs::File::create(&mark).map_err(OpsError::io("create", &mark))?;
    crate::pool::fsync_dir(dir).map_err(OpsError::io("sync directory", dir))?;
    Ok(existed)
}

/// The restore is complete: the directory becomes a repository.
fn finish(dir: &Path) -> Result<(), OpsError> {
    let mark = dir.join(UNFINISHED);
    fs::remove_file(&mark).map_err(OpsError::io("remove", &mark))?;
    crate::pool::fsync_dir(dir).map_err(OpsError::io("sync directory", dir))
}

/// Copies a file of the backup, refusing it unless it matches the manifest.
fn copy_checked(from: &Path, to: &Path, mode: u32, sha256: &str) -> Result<(), OpsError> {
    let copied = copy_file_atomically(from, to, mode)?;
    if copied != sha256 {
        let _ = fs::remove_file(to);
        return Err(damaged(from, &copied, sha256));
    }
    Ok(())
}

/// Checks a file of the backup against the manifest before using it.
fn check_file(path: &Path, sha256: &str) -> Result<(), OpsError> {
    let found = copy::sha256_file(path).map_err(OpsError::io("read", path))?;
    if found != sha256 {
        return Err(damaged(path, &found, sha256));
    }
    Ok(())
}

fn damaged(path: &Path, found: &str, expected: &str) -> OpsError {
    OpsError::Conflict(format!(
        "{} is damaged: its content hashes to {found}, the backup manifest says {expected}; restore another backup",
        path.display()
    ))
}
