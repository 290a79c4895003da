//! `bess backup` and `bess restore`.

use super::output::{human_bytes, json};
use super::progress::{chatty, reporter};
use crate::ops::{self, BackupRequest, Repo, RestoreRequest};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Back the repository up into DEST while it is in use.
///
/// Copies the catalog (through SQLite's online backup API, so `bess serve`
/// and uploads keep running), then every pool object that catalog refers
/// to, the configuration (bess.toml, dists.list, archs.list) and the signing
/// keys. When DEST holds an earlier backup, only the objects it lacks are
/// copied; backup.json is replaced last, so an interrupted backup leaves the
/// previous one whole. public/ and cache/ are not copied: `bess restore`
/// rebuilds them from the catalog.
///
/// DEST holds the secret signing keys (flagged in backup.json): keep it as
/// private as the repository.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess backup /mnt/backup/bess                 # nightly; incremental after the first\n  bess backup --verify --json /mnt/backup/bess # hash every object, report as JSON\n  bess restore /mnt/backup/bess /srv/bess-restored"
)]
pub struct BackupArgs {
    /// Backup directory: new, empty, or holding an earlier backup
    dest: PathBuf,
    /// Hash every object copied and every object already in DEST (slower)
    #[arg(long)]
    verify: bool,
    /// Print {"objects": {...}, "copied": N, "reused": N, "keys": [...], ...}
    #[arg(long)]
    json: bool,
}

/// Rebuild a working repository in DIR from a backup, and publish it.
///
/// Every object is checked against its SHA-256 and every other file against
/// backup.json while it is copied; a damaged backup fails the restore and
/// leaves DIR as it was. The public trees are then republished from the
/// restored catalog: apt clients see the same indices with the same
/// checksums, signed by the same keys, under a new Date.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  bess restore /mnt/backup/bess /var/lib/bess\n  bess --repo /var/lib/bess repo check"
)]
pub struct RestoreArgs {
    /// The backup directory (what `bess backup` wrote)
    source: PathBuf,
    /// Repository directory to create (new or empty)
    dir: PathBuf,
    /// Print what was restored and published as JSON
    #[arg(long)]
    json: bool,
}

/// Runs `bess backup`.
pub fn run_backup(repo_dir: &Path, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let mut repo = Repo::open(repo_dir)?;
    repo.progress = reporter();
    let request = BackupRequest {
        dest: args.dest,
        verify: args.verify,
    };
    let report = ops::backup(&mut repo, &request)?;
    if args.json {
        json(&report)?;
    } else if chatty() {
        println!(
            "backed up {} object(s) ({}) to {}: {} copied ({}), {} already there, {} stale removed",
            report.objects.count,
            human_bytes(report.objects.bytes),
            report.dest.display(),
            report.counts.copied,
            human_bytes(report.counts.copied_bytes),
            report.counts.reused,
            report.removed
        );
        println!(
            "{} secret signing key(s) are in the backup: keep {} private",
            report.keys.len(),
            report.dest.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `bess restore`.
pub fn run_restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let request = RestoreRequest {
        source: args.source,
        dir: args.dir,
    };
    let report = ops::restore(&request, reporter())?;
    if args.json {
        json(&report)?;
    } else if chatty() {
        println!(
            "restored the backup of {} into {}: {} object(s) ({}), {} key(s); published {} dist(s)",
            report.backup_created,
            report.dir.display(),
            report.objects.copied,
            human_bytes(report.objects.copied_bytes),
            report.keys,
            report.published.len()
        );
        println!(
            "verify it with: bess --repo {} repo check",
            report.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
