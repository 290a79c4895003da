//! Claims: an upload renamed into `.claimed/<id>/` before anything else
//! happens to it, so the uploader cannot change it while it is verified
//! and ingested, and a pass killed at any instant leaves it where the next
//! pass finds it.
//!
//! A claim is built in `.claimed/<id>.partial/`: first `claim.json` (the
//! upload's dir and files), then the files, then one rename to
//! `.claimed/<id>/` makes it whole. The next pass puts the files of a
//! partial claim back where they were. A whole claim is judged once; the
//! verdict is written to `verdict.json` before any file moves on, so a
//! pass that dies while moving them finishes the same verdict instead of
//! judging half an upload again. A finished claim is renamed to
//! `.claimed/<id>.done/` before it is deleted, so no pass ever finds
//! half of one.

use super::{DropDir, FailedUpload, Upload};
use crate::ops::{IngestedPackage, OpsError};
use crate::pool::{fsync_dir, write_atomically};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

const MANIFEST: &str = "claim.json";
const VERDICT: &str = "verdict.json";
const PARTIAL: &str = ".partial";
const DONE: &str = ".done";

/// An upload renamed into its claim directory.
#[derive(Debug)]
pub(super) struct Claimed {
    /// `.claimed/<id>/`.
    pub dir: PathBuf,
    pub id: String,
    pub upload: Upload,
}

/// What becomes of a claimed upload.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) enum Verdict {
    Taken { packages: Vec<IngestedPackage> },
    Rejected { reason: String },
}

impl Claimed {
    /// Where a file of the upload is now.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The verdict an interrupted pass reached, if it reached one.
    pub fn verdict(&self) -> Option<Verdict> {
        let text = std::fs::read(self.dir.join(VERDICT)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Records the verdict; from then on the claim is only finished.
    pub fn record(&self, verdict: &Verdict) -> std::io::Result<()> {
        let json = serde_json::to_vec(verdict).map_err(std::io::Error::other)?;
        write_atomically(&self.dir.join(VERDICT), &json)
    }

    /// Seconds since the epoch when the claim was made (its id starts with them).
    pub fn claimed_at(&self) -> i64 {
        let secs = self.id.split('.').next().unwrap_or_default();
        secs.parse().unwrap_or(0)
    }
}

/// Claims `upload`; `None` when one of its files has gone meanwhile (the
/// files already moved go back, and the next scan looks again).
pub(super) fn claim(drop: &DropDir, upload: Upload) -> Result<Option<Claimed>, FailedUpload> {
    let fail = |error: std::io::Error| FailedUpload {
        upload: upload.display(),
        error: format!("cannot claim it in {}: {error}", drop.claimed().display()),
    };
    let claimed = drop.claimed();
    ensure_dir(&claimed).map_err(fail)?;
    let id = new_id();
    let partial = claimed.join(format!("{id}{PARTIAL}"));
    std::fs::create_dir(&partial).map_err(fail)?;
    let manifest = serde_json::to_vec(&upload).map_err(std::io::Error::other);
    manifest
        .and_then(|json| write_atomically(&partial.join(MANIFEST), &json))
        .map_err(fail)?;
    let from = drop.root().join(&upload.dir);
    for name in &upload.files {
        match std::fs::rename(from.join(name), partial.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                unclaim(drop, &partial).map_err(fail)?;
                return Ok(None);
            }
            // Without write access to the file's directory (made by the
            // uploader, not group-writable), the files stay where they are.
            Err(e) => {
                unclaim(drop, &partial).map_err(fail)?;
                return Err(fail(e));
            }
        }
    }
    let dir = claimed.join(&id);
    fsync_dir(&partial)
        .and_then(|()| std::fs::rename(&partial, &dir))
        .and_then(|()| fsync_dir(&claimed))
        .map_err(fail)?;
    Ok(Some(Claimed { dir, id, upload }))
}

/// Finishes what an interrupted pass left in `.claimed/`: partial claims
/// go back, whole ones are returned to be settled, oldest first.
pub(super) fn recover(drop: &DropDir) -> Result<Vec<Claimed>, OpsError> {
    let claimed = drop.claimed();
    let entries = match std::fs::read_dir(&claimed) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(OpsError::io("read", &claimed)(e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut whole = Vec::new();
    for name in names {
        let dir = claimed.join(&name);
        if name.ends_with(DONE) {
            std::fs::remove_dir_all(&dir).map_err(OpsError::io("remove", &dir))?;
            continue;
        }
        if name.ends_with(PARTIAL) {
            unclaim(drop, &dir).map_err(OpsError::io("put back the files of", &dir))?;
            continue;
        }
        let manifest = std::fs::read(dir.join(MANIFEST)).map_err(OpsError::io("read", &dir))?;
        let upload = serde_json::from_slice(&manifest).map_err(|e| {
            OpsError::Usage(format!(
                "{}: not a claim bess wrote ({e}); move its files back to the drop directory by hand",
                dir.join(MANIFEST).display()
            ))
        })?;
        whole.push(Claimed {
            dir,
            id: name,
            upload,
        });
    }
    Ok(whole)
}

/// Puts the files of a partial claim back where they were dropped; where
/// the uploader has dropped a new file of the same name meanwhile, the
/// new one wins and the claimed copy is dropped.
fn unclaim(drop: &DropDir, partial: &Path) -> std::io::Result<()> {
    // The manifest is written before any file moves: without it, no file did.
    if let Ok(json) = std::fs::read(partial.join(MANIFEST))
        && let Ok(upload) = serde_json::from_slice::<Upload>(&json)
    {
        let back = drop.root().join(&upload.dir);
        for name in &upload.files {
            let from = partial.join(name);
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                &from,
                rustix::fs::CWD,
                back.join(name),
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(rustix::io::Errno::EXIST) => std::fs::remove_file(&from)?,
                Err(e) => return Err(e.into()),
            }
        }
        fsync_dir(&back)?;
    }
    std::fs::remove_dir_all(partial)
}

/// Ends a taken upload: its files move to `processed/` (`keep`), or go.
pub(super) fn finish_taken(
    drop: &DropDir,
    claimed: &Claimed,
    keep: bool,
) -> std::io::Result<Option<PathBuf>> {
    let kept = keep.then(|| drop.processed());
    if let Some(processed) = &kept {
        ensure_dir(processed)?;
        move_files(claimed, processed)?;
        fsync_dir(processed)?;
    }
    forget(drop, claimed)?;
    Ok(kept)
}

/// Ends a refused upload: each file goes to `rejected/<name>`, after
/// `rejected/<name>.reason` (written whole, or not at all) says why.
pub(super) fn finish_rejected(
    drop: &DropDir,
    claimed: &Claimed,
    reason: &str,
) -> std::io::Result<()> {
    let rejected = drop.rejected();
    ensure_dir(&rejected)?;
    let text = format!("{}\n", reason.trim_end());
    for name in &claimed.upload.files {
        if claimed.file(name).exists() {
            write_atomically(&rejected.join(format!("{name}.reason")), text.as_bytes())?;
        }
    }
    move_files(claimed, &rejected)?;
    fsync_dir(&rejected)?;
    forget(drop, claimed)
}

/// Moves the files still in the claim to `to` (a file of the same name
/// there is replaced: the newest upload of a name is the one kept).
fn move_files(claimed: &Claimed, to: &Path) -> std::io::Result<()> {
    for name in &claimed.upload.files {
        match std::fs::rename(claimed.file(name), to.join(name)) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Removes the claim directory, with whatever of the upload is left in
/// it: renamed first, since a deletion cut short could leave the manifest
/// without the verdict, and the claim would be judged again.
fn forget(drop: &DropDir, claimed: &Claimed) -> std::io::Result<()> {
    let done = drop.claimed().join(format!("{}{DONE}", claimed.id));
    std::fs::rename(&claimed.dir, &done)?;
    fsync_dir(&drop.claimed())?;
    std::fs::remove_dir_all(&done)
}

/// Creates a directory of bess's inside the drop directory if missing.
fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// `<seconds>.<nanoseconds>-<pid>`: sorts by time, unique per process
/// (passes of one repository never run at once).
fn new_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.{:09}-{}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    )
}
