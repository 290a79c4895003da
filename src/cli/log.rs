//! `bess log`: the audit log of every change.

use super::output::{Table, json};
use crate::ops::{self, LogEntry, LogQuery, Repo};
use clap::Args;
use std::path::Path;
use std::process::ExitCode;

/// Show who changed what, newest first: ingests, promotions, removals,
/// prunes, pins, gc, user and key changes.
///
/// Each entry names the actor: the local user for the CLI (with the sudo
/// user, e.g. `root (sudo: alice)`), or the HTTP user for uploads and
/// promotions through `bess serve`. Entries are written in the same
/// transaction as the change they record.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess log --package myapp\n  bess log --since 7d\n  bess log --since 2026-11-01 --json\n  bess log --since 2026-11-01T09:30:00+01:00 --action promote"
)]
pub struct LogArgs {
    /// Only changes to this package
    #[arg(long, value_name = "PKG")]
    package: Option<String>,
    /// Only changes at or after this time: 7d, 12h, 30m, 2w, a date (2026-11-01, UTC) or RFC 3339
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only this action (ingest, promote, remove, prune, pin, unpin, gc, user.add, key.generate, ...)
    #[arg(long)]
    action: Option<String>,
    /// At most N entries (the newest)
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Print a JSON array of {id, at, actor, origin, action, channel, dists, package, version, architecture, detail}
    #[arg(long)]
    json: bool,
}

pub fn run(dir: &Path, args: LogArgs) -> anyhow::Result<ExitCode> {
    let repo = Repo::open(dir)?;
    let query = LogQuery {
        package: args.package,
        action: args.action,
        since: args.since,
        limit: args.limit,
    };
    let entries = ops::log(&repo, &query)?;
    if args.json {
        json(&entries)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(vec!["AT", "ACTOR", "ACTION", "WHAT"]);
    for e in &entries {
        table.row(vec![
            e.at.clone(),
            format!("{} ({})", e.actor, e.origin),
            e.action.clone(),
            what(e),
        ]);
    }
    table.print()?;
    Ok(ExitCode::SUCCESS)
}

/// One line about the change: the package and where, or the detail.
fn what(e: &LogEntry) -> String {
    let place = match (&e.channel, e.dists.is_empty()) {
        (Some(channel), false) => format!("{channel}/{}", e.dists.join(",")),
        (Some(channel), true) => channel.clone(),
        (None, _) => String::new(),
    };
    match (&e.package, &e.version) {
        (Some(package), Some(version)) => {
            let arch = e
                .architecture
                .as_ref()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default();
            let from = e.detail["from"]
                .as_str()
                .map(|f| format!(" from {f}"))
                .unwrap_or_default();
            format!("{package} {version}{arch} {place}{from}")
        }
        _ => {
            let fields = e.detail.as_object().into_iter().flatten();
            let pairs: Vec<String> = fields.map(|(k, v)| format!("{k}={v}")).collect();
            format!("{place} {}", pairs.join(" ")).trim().to_string()
        }
    }
}
