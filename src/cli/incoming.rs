//! `bess incoming process`: one pass over the drop directory.

use super::output::json;
use super::progress::{chatty, verbose};
use crate::ops::{self, NoWatch, Repo};
use clap::{Args, Subcommand};
use std::path::Path;
use std::process::ExitCode;

/// The drop directory of SCP/SFTP uploads ([incoming] in bess.toml).
#[derive(Debug, Subcommand)]
pub enum IncomingCommand {
    Process(ProcessArgs),
}

/// Ingest the complete uploads of the drop directory, once.
///
/// CI jobs copy a .deb, or a .changes with the files it lists, into the
/// drop directory ([incoming] dir, default DIR/incoming) by scp or sftp.
/// incoming/<dist>/ publishes in that dist only; the top level in every
/// dist (dist rules apply), as `bess repo ingest` without --dist. A file
/// is taken once unchanged for [incoming] quiet-period-secs; a .changes
/// once every file it lists is there (its signature is checked against
/// [incoming] uploaders-keyring when set, then each file's size and
/// SHA-256). Taken uploads are deleted, or moved to processed/ with
/// keep-processed = true; refused ones go to rejected/<name>, with
/// rejected/<name>.reason holding the error. Each upload is one
/// transaction: a bad one never stops the others, and a pass killed at
/// any point is finished by the next one, nothing ingested twice.
///
/// `bess serve` does the same continuously while the directory exists;
/// this command is for hosts that do not run it (cron, or the packaged
/// bess-incoming.path unit). Prints one line per upload on stderr; exits
/// 1 only when an upload could not be processed for a reason of the
/// server's (it stays for the next pass), never for a rejected upload.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess incoming process\n  bess incoming process --json | jq '.rejected[].reason'\n  bess incoming process --settle   # also wait out the quiet period of files just closed\n  scp -i ci_key app_1.0_amd64.deb ci-upload@repo:/incoming/bookworm/   # from a CI job (conf/sshd-drop-only.conf)"
)]
pub struct ProcessArgs {
    /// Then wait for uploads that only need their quiet period to run out, and pass again, until none is left waiting for it (for a unit started when a file is closed)
    #[arg(long)]
    settle: bool,
    /// Print {"taken": [...], "rejected": [...], "waiting": [...], "failed": [...], "published": [...]}
    #[arg(long)]
    json: bool,
}

pub fn run(dir: &Path, command: IncomingCommand) -> anyhow::Result<ExitCode> {
    let IncomingCommand::Process(args) = command;
    let mut repo = Repo::open(dir)?;
    let mut outcome = pass(&mut repo)?;
    while let Some(wait) = outcome.recheck_in.filter(|_| args.settle) {
        // Past the moment the file becomes due, so the next pass takes it.
        std::thread::sleep(wait + std::time::Duration::from_millis(50));
        let next = pass(&mut repo)?;
        outcome.merge(next);
    }
    if args.json {
        json(&outcome)?;
        return Ok(exit_code(&outcome));
    }
    if verbose() {
        for waiting in &outcome.waiting {
            eprintln!(
                "incoming: waiting for {}: {}",
                waiting.upload, waiting.reason
            );
        }
    }
    if chatty() {
        println!(
            "{} taken, {} rejected, {} waiting, {} failed",
            outcome.taken.len(),
            outcome.rejected.len(),
            outcome.waiting.len(),
            outcome.failed.len()
        );
    }
    Ok(exit_code(&outcome))
}

/// One pass, its uploads logged on stderr as they are settled.
fn pass(repo: &mut Repo) -> anyhow::Result<ops::IncomingOutcome> {
    let outcome = ops::process_incoming(repo, &NoWatch)?;
    for line in outcome.log_lines() {
        eprintln!("{line}");
    }
    Ok(outcome)
}

/// Failure only when an upload is left for the next pass: a rejected
/// upload was processed, and cron need not mail about it.
fn exit_code(outcome: &ops::IncomingOutcome) -> ExitCode {
    match outcome.failed.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}
