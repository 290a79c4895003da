//! Copying between a repository and a backup: pool objects in parallel
//! through temp names (one filesystem sync per batch, then renames), and
//! single files through temp + fsync + rename, hashed while copied.

use crate::catalog::{CatalogCopy, ObjectRef};
use crate::ops::OpsError;
use crate::ops::progress::Stage;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where objects come from, and how to word a failure there.
pub struct ObjectSource<'a> {
    /// The `pool/` directory read from.
    pub pool: &'a Path,
    /// "the repository" or "the backup".
    pub role: &'a str,
    /// What to do when an object there is missing or damaged.
    pub hint: &'a str,
}

/// What [`copy_objects`] did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CopyCounts {
    /// Objects copied, and their bytes.
    pub copied: u64,
    pub copied_bytes: u64,
    /// Objects already present at the destination with the right size
    /// (and hash, when verifying), left as they were.
    pub reused: u64,
}

/// Objects copied at a time: each batch is staged, synced once, then
/// renamed, so memory holds one batch rather than the repository.
const OBJECTS_PER_BATCH: usize = 4096;

/// Copies every object `catalog` refers to from `source` into the pool
/// `dest`, a batch at a time, showing each to `seen` first.
pub fn copy_all(
    catalog: &CatalogCopy,
    (source, dest): (&ObjectSource<'_>, &Path),
    verify: bool,
    stage: &dyn Stage,
    mut seen: impl FnMut(&ObjectRef),
) -> Result<CopyCounts, OpsError> {
    let mut counts = CopyCounts::default();
    catalog.each_object_batch(OBJECTS_PER_BATCH, |batch| {
        batch.iter().for_each(&mut seen);
        let done = copy_objects(&batch, source, dest, verify, stage)?;
        counts.copied += done.copied;
        counts.copied_bytes += done.copied_bytes;
        counts.reused += done.reused;
        Ok::<_, OpsError>(())
    })?;
    Ok(counts)
}

/// Copies every object of `objects` from `source` into the pool `dest`,
/// skipping those already there. With `verify`, every object read is
/// hashed (a damaged one fails the copy) and so is every object reused.
fn copy_objects(
    objects: &[ObjectRef],
    source: &ObjectSource<'_>,
    dest: &Path,
    verify: bool,
    stage: &dyn Stage,
) -> Result<CopyCounts, OpsError> {
    let results: Vec<Result<Option<PathBuf>, OpsError>> = objects
        .par_iter()
        .map(|object| {
            let result = copy_object(object, source, dest, verify);
            stage.advance(object.size);
            result
        })
        .collect();
    let mut staged = Vec::new();
    let mut failure = None;
    for result in results {
        match result {
            Ok(Some(temp)) => staged.push(temp),
            Ok(None) => {}
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(error) = failure {
        staged.iter().for_each(|t| drop(fs::remove_file(t)));
        return Err(error);
    }
    commit(objects, &staged, dest)
}

/// Makes the staged copies durable, then gives each its hash name.
fn commit(objects: &[ObjectRef], staged: &[PathBuf], dest: &Path) -> Result<CopyCounts, OpsError> {
    let sync = || crate::pool::sync_filesystem(dest).map_err(OpsError::io("sync", dest));
    sync()?;
    let mut copied = std::collections::HashSet::new();
    for temp in staged {
        let name = final_name(temp);
        let target = temp.with_file_name(&name);
        fs::rename(temp, &target).map_err(OpsError::io("rename into place", &target))?;
        copied.insert(name);
    }
    sync()?;
    let copied_bytes = objects
        .iter()
        .filter(|o| copied.contains(&o.sha256))
        .map(|o| o.size)
        .sum();
    Ok(CopyCounts {
        copied: copied.len() as u64,
        copied_bytes,
        reused: (objects.len() - copied.len()) as u64,
    })
}

/// Temp names are `.<sha256>.tmp-<pid>-<n>`.
fn final_name(temp: &Path) -> String {
    let name = temp.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.trim_start_matches('.')
        .split('.')
        .next()
        .unwrap_or("")
        .to_string()
}

/// Copies one object to a temp name beside its final one; `None` when
/// the destination already holds it.
fn copy_object(
    object: &ObjectRef,
    source: &ObjectSource<'_>,
    dest: &Path,
    verify: bool,
) -> Result<Option<PathBuf>, OpsError> {
    let shard = object.sha256.get(..2).unwrap_or("00");
    let target = dest.join(shard).join(&object.sha256);
    if already_there(&target, object, verify) {
        return Ok(None);
    }
    let from = source.pool.join(shard).join(&object.sha256);
    let dir = dest.join(shard);
    fs::create_dir_all(&dir).map_err(OpsError::io("create directory", &dir))?;
    let temp = dir.join(format!(".{}.tmp-{}", object.sha256, unique()));
    let copied = if verify {
        copy_hashing(&from, &temp, 0o644, false).map(|(sha, size)| (Some(sha), size))
    } else {
        fs::copy(&from, &temp).map(|size| (None, size))
    };
    let failed = |message: String| {
        let _ = fs::remove_file(&temp);
        Err(OpsError::Conflict(format!(
            "{} ({}) {message}; {}",
            from.display(),
            object.name,
            source.hint
        )))
    };
    match copied {
        Err(e) if e.kind() == io::ErrorKind::NotFound && !temp.exists() => {
            failed(format!("is missing from {}", source.role))
        }
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(copy_error(&from, &temp, e))
        }
        Ok((Some(sha), _)) if sha != object.sha256 => failed(format!(
            "is damaged in {}: its content hashes to {sha}",
            source.role
        )),
        Ok((_, size)) if size != object.size => failed(format!(
            "is damaged in {}: {size} bytes, the catalog says {}",
            source.role, object.size
        )),
        Ok(_) => Ok(Some(temp)),
    }
}

/// Whether `target` already holds the object (size, and hash with `verify`).
fn already_there(target: &Path, object: &ObjectRef, verify: bool) -> bool {
    let right_size = fs::metadata(target).is_ok_and(|m| m.is_file() && m.len() == object.size);
    right_size && (!verify || sha256_file(target).is_ok_and(|sha| sha == object.sha256))
}

/// The SHA-256 (hex) of a file's content.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..n]);
    }
}

/// Copies `from` to the new file `to` with `mode`, hashing what it reads;
/// returns the SHA-256 (hex) and size. With `sync` the copy is flushed.
pub fn copy_hashing(from: &Path, to: &Path, mode: u32, sync: bool) -> io::Result<(String, u64)> {
    let mut input = File::open(from)?;
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(to)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        output.write_all(&buffer[..n])?;
        size += n as u64;
    }
    if sync {
        output.sync_all()?;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Copies one file durably: temp beside `to`, fsync, rename, fsync of the
/// directory. Returns the SHA-256 (hex) of what was copied.
pub fn copy_file_atomically(from: &Path, to: &Path, mode: u32) -> Result<String, OpsError> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let name = to.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!(".{name}.tmp-{}", unique()));
    let result = copy_hashing(from, &temp, mode, true)
        .map_err(|e| copy_error(from, &temp, e))
        .and_then(|(sha, _)| {
            fs::rename(&temp, to).map_err(OpsError::io("rename into place", to))?;
            crate::pool::fsync_dir(dir).map_err(OpsError::io("sync directory", dir))?;
            Ok(sha)
        });
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// A failed copy names the side at fault: only writing runs out of
/// space, and the user must know which filesystem to free.
fn copy_error(from: &Path, temp: &Path, error: io::Error) -> OpsError {
    if crate::disk::full_hint(&error).is_empty() {
        OpsError::io("copy", from)(error)
    } else {
        OpsError::io("write", temp)(error)
    }
}

/// `<pid>-<n>`: unique across processes and threads.
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
