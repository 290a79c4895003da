//! Judging a claimed upload and carrying the verdict out.
//!
//! A `.changes` is verified on the claimed bytes: its signature (when
//! `[incoming] uploaders-keyring` is set), then the size and SHA-256 of
//! every file it lists. The `.deb` files then go through `ops::ingest`,
//! all of an upload in one transaction. A refusal (the upload's fault)
//! rejects it with the text the CLI would print; a failure of the server's
//! own (a full disk, a catalog error) leaves it claimed for the next pass.

use super::claim::{self, Claimed, Verdict};
use super::scan::MAX_CHANGES_BYTES;
use super::{DropDir, FailedUpload, IncomingOutcome, RejectedUpload, TakenUpload};
use crate::catalog::AuditFilter;
use crate::deb::Changes;
use crate::ops::{IngestRequest, OpsError, Repo, ingest};
use crate::pool::sha256_of_file;
use crate::sign::UploadersKeyring;
use std::path::PathBuf;

/// The audit action of a rejected upload.
const REJECT_ACTION: &str = "incoming.reject";

/// Why a claimed upload cannot be judged now: the server's fault, retried.
type Failure = String;

/// Judges `claimed` (unless an interrupted pass already did) and carries
/// the verdict out, recording what happened in `outcome`.
pub(super) fn settle(
    repo: &mut Repo,
    drop: &DropDir,
    claimed: Claimed,
    outcome: &mut IncomingOutcome,
) {
    let fail = |error: String| FailedUpload {
        upload: claimed.upload.display(),
        error,
    };
    let verdict = match claimed.verdict() {
        Some(verdict) => verdict,
        None => match judge(repo, drop, &claimed) {
            Ok(verdict) => verdict,
            Err(error) => return outcome.failed.push(fail(error)),
        },
    };
    let applied = claimed
        .record(&verdict)
        .map_err(|e| {
            format!(
                "cannot record its verdict in {}: {e}",
                claimed.dir.display()
            )
        })
        .and_then(|()| apply(repo, drop, &claimed, verdict, outcome));
    if let Err(error) = applied {
        outcome.failed.push(fail(error));
    }
}

fn apply(
    repo: &mut Repo,
    drop: &DropDir,
    claimed: &Claimed,
    verdict: Verdict,
    outcome: &mut IncomingOutcome,
) -> Result<(), Failure> {
    let upload = &claimed.upload;
    let moving =
        |e: std::io::Error| format!("cannot move it on from {}: {e}", claimed.dir.display());
    match verdict {
        Verdict::Taken { packages } => {
            let keep = repo.config.settings.incoming.keep_processed;
            let kept_in = claim::finish_taken(drop, claimed, keep).map_err(moving)?;
            outcome.taken.push(TakenUpload {
                upload: upload.display(),
                files: upload.files.clone(),
                packages,
                kept_in,
            });
        }
        Verdict::Rejected { reason } => {
            audit_rejection(repo, claimed, &reason).map_err(|e| e.to_string())?;
            claim::finish_rejected(drop, claimed, &reason).map_err(moving)?;
            outcome.rejected.push(RejectedUpload {
                upload: upload.display(),
                files: upload.files.clone(),
                reason,
            });
        }
    }
    Ok(())
}

/// Verifies and ingests a claimed upload.
fn judge(repo: &mut Repo, drop: &DropDir, claimed: &Claimed) -> Result<Verdict, Failure> {
    let debs = match check_files(repo, drop, claimed)? {
        Ok(debs) => debs,
        Err(reason) => return Ok(Verdict::Rejected { reason }),
    };
    let incoming = &repo.config.settings.incoming;
    let dir = &claimed.upload.dir;
    let request = IngestRequest {
        paths: debs,
        dists: if dir.is_empty() {
            vec![]
        } else {
            vec![dir.clone()]
        },
        component: incoming.component.clone(),
        channel: incoming.channel.clone(),
        publish: false,
        summary_only: false,
    };
    match ingest(repo, &request) {
        Ok(ingested) => Ok(Verdict::Taken {
            packages: ingested.packages,
        }),
        Err(error) if error.is_refusal() => Ok(Verdict::Rejected {
            reason: dropped_paths(drop, claimed, &error.to_string()),
        }),
        Err(error) => Err(error.to_string()),
    }
}

/// The `.deb` files of the upload once its files check out, or why not.
fn check_files(
    repo: &Repo,
    drop: &DropDir,
    claimed: &Claimed,
) -> Result<Result<Vec<PathBuf>, String>, Failure> {
    let dropped = |name: &str| drop.root().join(&claimed.upload.dir).join(name);
    for name in &claimed.upload.files {
        let regular = std::fs::symlink_metadata(claimed.file(name)).is_ok_and(|m| m.is_file());
        if !regular {
            let reason = format!("{}: not a regular file", dropped(name).display());
            return Ok(Err(reason));
        }
    }
    if !claimed.upload.is_changes() {
        return Ok(Ok(vec![claimed.file(&claimed.upload.name)]));
    }
    let keyring = match &repo.config.settings.incoming.uploaders_keyring {
        None => None,
        Some(path) => {
            let path = repo.config.layout.root().join(path);
            Some(UploadersKeyring::load(&path).map_err(|e| {
                format!(
                    "[incoming] uploaders-keyring: {e}; .changes uploads wait until it is fixed"
                )
            })?)
        }
    };
    let changes = dropped(&claimed.upload.name);
    let checked = read_changes(claimed, keyring.as_ref())
        .and_then(|listed| check_listed(claimed, &listed, &dropped));
    Ok(checked.map_err(|why| format!("{}: {why}", changes.display())))
}

/// The verified, parsed `.changes` of a claim.
fn read_changes(claimed: &Claimed, keyring: Option<&UploadersKeyring>) -> Result<Changes, String> {
    let path = claimed.file(&claimed.upload.name);
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_CHANGES_BYTES {
        return Err(format!(
            "{} bytes; a .changes file is a few kilobytes, at most {MAX_CHANGES_BYTES}",
            bytes.len()
        ));
    }
    let text = match keyring {
        Some(keyring) => keyring.verify(&bytes).map(|(text, _)| text),
        None => crate::sign::signed_text_unchecked(&bytes),
    }
    .map_err(|e| e.to_string())?;
    let text = String::from_utf8(text).map_err(|_| "it is not UTF-8 text".to_string())?;
    Changes::parse(&text).map_err(|e| e.to_string())
}

/// Checks each listed file's size and SHA-256; returns the `.deb` files.
fn check_listed(
    claimed: &Claimed,
    changes: &Changes,
    dropped: &dyn Fn(&str) -> PathBuf,
) -> Result<Vec<PathBuf>, String> {
    let mut debs = Vec::new();
    for listed in &changes.files {
        let path = claimed.file(&listed.name);
        let size = std::fs::metadata(&path)
            .map_err(|_| format!("it lists {}, which is not in the upload", listed.name))?
            .len();
        if size != listed.size {
            return Err(format!(
                "{} is {size} bytes, the .changes lists {}; upload both again",
                dropped(&listed.name).display(),
                listed.size
            ));
        }
        let sha256 = sha256_of_file(&path).map_err(|e| format!("{}: {e}", listed.name))?;
        if sha256.to_hex() != listed.sha256 {
            return Err(format!(
                "{} has SHA-256 {}, the .changes lists {}; it was damaged in transit or the .changes is stale: upload both again",
                dropped(&listed.name).display(),
                sha256.to_hex(),
                listed.sha256
            ));
        }
        if listed.name.ends_with(".deb") {
            debs.push(path);
        }
    }
    if debs.is_empty() {
        return Err("it lists no .deb file; bess publishes binary packages only".into());
    }
    Ok(debs)
}

/// An ingest's message, naming the files where they were dropped rather
/// than where they were claimed.
fn dropped_paths(drop: &DropDir, claimed: &Claimed, message: &str) -> String {
    let claim = format!("{}/", claimed.dir.display());
    let dropped = format!("{}/", drop.root().join(&claimed.upload.dir).display());
    message.replace(&claim, &dropped.replace("//", "/"))
}

/// Records the rejection once, even when an interrupted pass already did
/// (the entry names the claim).
fn audit_rejection(repo: &mut Repo, claimed: &Claimed, reason: &str) -> Result<(), OpsError> {
    let filter = AuditFilter {
        action: Some(REJECT_ACTION.into()),
        since: Some(claimed.claimed_at() - 1),
        ..AuditFilter::default()
    };
    let claim_id = serde_json::Value::String(claimed.id.clone());
    let recorded = repo
        .catalog
        .reader()
        .audit(&filter)?
        .into_iter()
        .any(|row| {
            serde_json::from_str::<serde_json::Value>(&row.entry.detail)
                .is_ok_and(|detail| detail["claim"] == claim_id)
        });
    if recorded {
        return Ok(());
    }
    let detail = serde_json::json!({
        "upload": claimed.upload.display(),
        "files": claimed.upload.files,
        "reason": reason,
        "claim": claimed.id,
    });
    let entry = crate::catalog::AuditEntry {
        detail: detail.to_string(),
        ..repo.actor.entry(REJECT_ACTION)
    };
    let writer = repo.catalog.write()?;
    writer.append_audit(&entry)?;
    Ok(writer.commit()?)
}
