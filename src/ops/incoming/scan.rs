//! What in the drop directory is a complete upload, and what is still
//! arriving.
//!
//! scp and sftp write in place, under the final name, so a file is judged
//! by its own history: it must have gone unchanged (size, mtime and ctime,
//! which no client can set back) for the quiet period, a watcher must not
//! have seen it written since its last close, and a `.deb` must hold every
//! byte its `ar` headers announce. A `.changes` is complete when each file
//! it lists is there and complete (its size and SHA-256 are verified once
//! claimed); until then nothing it lists is taken.

use super::{DropDir, Upload, WaitingUpload, WriteWatch};
use crate::deb::Changes;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::Metadata;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Largest `.changes` read: a real one is a few kilobytes.
pub(super) const MAX_CHANGES_BYTES: u64 = 1 << 20;

/// What one look at the drop directory found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Uploads to claim: complete, or certainly broken (to be rejected).
    pub ready: Vec<Upload>,
    pub waiting: Vec<WaitingUpload>,
    /// When the next waiting file will have been quiet long enough.
    pub recheck_in: Option<Duration>,
}

/// How long files must be left alone, and who else knows about writes.
pub(super) struct Judge<'a> {
    pub quiet: Duration,
    pub watch: &'a dyn WriteWatch,
    pub now: SystemTime,
}

/// Scans the top level and each subdirectory (a dist) of `drop`.
pub(super) fn scan(drop: &DropDir, judge: &Judge<'_>) -> std::io::Result<Scan> {
    let mut scan = Scan::default();
    scan_dir(drop, "", judge, &mut scan)?;
    for entry in std::fs::read_dir(drop.root())? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() && !DropDir::is_own(&name) {
            scan_dir(drop, &name, judge, &mut scan)?;
        }
    }
    Ok(scan)
}

/// The regular, visible files of one directory, with their metadata.
/// Symlinks are never followed: an uploader could point one anywhere.
fn files_of(dir: &Path) -> std::io::Result<BTreeMap<String, Metadata>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let meta = entry.metadata()?;
        if meta.file_type().is_file() && !name.starts_with('.') {
            files.insert(name, meta);
        }
    }
    Ok(files)
}

fn scan_dir(drop: &DropDir, sub: &str, judge: &Judge<'_>, scan: &mut Scan) -> std::io::Result<()> {
    let dir = drop.root().join(sub);
    let files = files_of(&dir)?;
    let mut listed = BTreeSet::new();
    for (name, meta) in files.iter().filter(|(n, _)| n.ends_with(".changes")) {
        let upload = Upload::new(sub, name);
        let changes = read_changes(&dir.join(name), meta);
        if let Some(changes) = &changes {
            listed.extend(changes.files.iter().map(|f| f.name.clone()));
        }
        match judge.file(&dir.join(name), meta) {
            Err(wait) => scan.wait(&upload, wait),
            Ok(()) => match &changes {
                // Unreadable once quiet: claimed to be rejected with the reason.
                None => scan.ready.push(upload),
                Some(changes) => judge.changes(&dir, &files, upload, changes, scan),
            },
        }
    }
    for (name, meta) in &files {
        if !name.ends_with(".deb") || listed.contains(name) {
            continue;
        }
        let upload = Upload::new(sub, name);
        match judge.file(&dir.join(name), meta) {
            Ok(()) => scan.ready.push(upload),
            Err(wait) => scan.wait(&upload, wait),
        }
    }
    Ok(())
}

/// The parsed `.changes`, if it can be read now (signature not checked:
/// this only reserves the names it lists).
fn read_changes(path: &Path, meta: &Metadata) -> Option<Changes> {
    if meta.len() > MAX_CHANGES_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let text = crate::sign::signed_text_unchecked(&bytes).ok()?;
    Changes::parse(std::str::from_utf8(&text).ok()?).ok()
}

/// Why a file is not taken yet, and when to look again.
pub(super) struct Wait {
    reason: String,
    again_in: Option<Duration>,
}

impl Scan {
    fn wait(&mut self, upload: &Upload, wait: Wait) {
        if let Some(again) = wait.again_in {
            self.recheck_in = Some(self.recheck_in.map_or(again, |r| r.min(again)));
        }
        self.waiting.push(WaitingUpload {
            upload: upload.display(),
            reason: wait.reason,
        });
    }
}

impl Judge<'_> {
    /// Whether one file is complete as far as its history tells.
    fn file(&self, path: &Path, meta: &Metadata) -> Result<(), Wait> {
        if self.watch.is_being_written(path) {
            return Err(Wait {
                reason: "still open for writing".into(),
                again_in: None,
            });
        }
        let quiet_for = self
            .now
            .duration_since(last_change(meta))
            .unwrap_or_default();
        if quiet_for < self.quiet {
            return Err(Wait {
                reason: format!(
                    "changed {:.1} s ago; taken once unchanged for {} s",
                    quiet_for.as_secs_f64(),
                    self.quiet.as_secs()
                ),
                again_in: Some(self.quiet - quiet_for),
            });
        }
        if path.extension().is_some_and(|e| e == "deb")
            && let Some(missing) = cut_short(path, meta.len())
        {
            return Err(Wait {
                reason: missing,
                again_in: None,
            });
        }
        Ok(())
    }

    /// Decides a quiet `.changes`: ready once every file it lists is there,
    /// complete and no shorter than listed (a longer one, or one with
    /// another SHA-256, is then rejected by the claim's verification).
    fn changes(
        &self,
        dir: &Path,
        files: &BTreeMap<String, Metadata>,
        mut upload: Upload,
        changes: &Changes,
        scan: &mut Scan,
    ) {
        // A .changes that lists itself would be claimed twice over.
        for listed in changes.files.iter().filter(|f| f.name != upload.name) {
            let Some(meta) = files.get(&listed.name) else {
                let reason = format!("waiting for {}, which it lists", listed.name);
                return scan.wait(
                    &upload,
                    Wait {
                        reason,
                        again_in: None,
                    },
                );
            };
            if let Err(not_yet) = self.file(&dir.join(&listed.name), meta) {
                let reason = format!("{}: {}", listed.name, not_yet.reason);
                let again_in = not_yet.again_in;
                return scan.wait(&upload, Wait { reason, again_in });
            }
            if meta.len() < listed.size {
                let reason = format!(
                    "{} has {} of {} bytes",
                    listed.name,
                    meta.len(),
                    listed.size
                );
                return scan.wait(
                    &upload,
                    Wait {
                        reason,
                        again_in: None,
                    },
                );
            }
            upload.files.push(listed.name.clone());
        }
        scan.ready.push(upload);
    }
}

/// The newer of mtime and ctime: clients can set mtime (`scp -p`), but any
/// write or attribute change moves ctime to now.
fn last_change(meta: &Metadata) -> SystemTime {
    use std::os::unix::fs::MetadataExt;
    let ctime = SystemTime::UNIX_EPOCH
        + Duration::new(
            u64::try_from(meta.ctime()).unwrap_or(0),
            u32::try_from(meta.ctime_nsec()).unwrap_or(0),
        );
    meta.modified().map_or(ctime, |mtime| mtime.max(ctime))
}

/// Why a `.deb` is certainly incomplete, judged from its `ar` headers: a
/// member reaching past the end of the file, or fewer members than a
/// binary package has. A file that is not an `ar` archive at all is left
/// to the ingest, which says what is wrong with it.
fn cut_short(path: &Path, len: u64) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).ok()?;
    let read_at = |offset: u64, buf: &mut [u8]| file.read_at(buf, offset);
    crate::deb::missing_bytes(read_at, len).map(|why| format!("incomplete: {why}"))
}
