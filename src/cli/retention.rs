//! `bess repo prune`, `pin`, `unpin`, `pins`, `gc` and `stats`: retention and space.

use super::output::human_bytes;
use super::output::{Table, json};
use crate::ops::{self, GcRequest, PinRequest, PruneOutcome, PruneRequest, Repo, Selector, Stats};
use clap::Args;
use std::process::ExitCode;

/// Withdraw old versions, keeping the newest N of each package in every dist of a channel.
///
/// Versions are ranked per channel, dist and architecture in dpkg order. A
/// version goes when it is beyond the newest KEEP and, when an age is set,
/// was placed in that dist more than DAYS days ago (both must hold).
/// --older-than alone keeps the newest version. A version pinned with
/// `bess repo pin` always stays.
///
/// Rules come from bess.toml (`[prune.<channel>]` with `keep = N` and/or
/// `older-than-days = D`); --keep and --older-than replace them for this
/// run. Channels without a rule are left alone.
///
/// Prune withdraws placements exactly as `bess repo remove` does and
/// publishes the result; the pool keeps the bytes until `bess repo gc`.
/// The bytes reported are those gc will free.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess repo prune --dry-run                          # what the rules of bess.toml would withdraw\n  bess repo prune --channel preprod --keep 5\n  bess repo prune --channel prod --keep 10 --older-than 90\n  bess repo gc                                       # then free the bytes\n\nIn bess.toml:\n  [prune.preprod]\n  keep = 5\n  [prune.prod]\n  keep = 10"
)]
pub struct PruneArgs {
    /// Only this channel [default: every channel with a rule]
    #[arg(long)]
    channel: Option<String>,
    /// Versions to keep of each package, per dist and architecture (at least 1)
    #[arg(long, value_name = "N")]
    keep: Option<u32>,
    /// Only prune versions placed more than DAYS days ago
    #[arg(long, value_name = "DAYS")]
    older_than: Option<u32>,
    /// Show what would go and the bytes it would free; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Do not publish now; `bess repo publish` publishes later
    #[arg(long)]
    no_publish: bool,
    /// Print {"removed": [...], "spared_by_pin": [...], "bytes_freed": N, ...}
    #[arg(long)]
    json: bool,
}

/// Keep a version in a channel whatever `bess repo prune` decides.
///
/// The pin covers every architecture and dist of the channel. It does not
/// place the version: promote it too if the channel lacks it.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  bess repo pin myapp=1.4.2-1 --channel prod")]
pub struct PinArgs {
    /// PKG=VERSION
    #[arg(value_name = "PKG=VERSION")]
    package: String,
    /// Channel that keeps it
    #[arg(long, required = true)]
    channel: String,
}

/// Drop a pin: `bess repo prune` may withdraw the version again.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  bess repo unpin myapp=1.4.2-1 --channel prod")]
pub struct UnpinArgs {
    /// PKG=VERSION
    #[arg(value_name = "PKG=VERSION")]
    package: String,
    /// Channel that kept it
    #[arg(long, required = true)]
    channel: String,
}

/// List the pins of every channel, or of one.
#[derive(Debug, Args)]
pub struct PinsArgs {
    /// Only this channel
    #[arg(long)]
    channel: Option<String>,
    /// Print a JSON array of {channel, package, version}
    #[arg(long)]
    json: bool,
}

/// Delete pool objects that nothing references any more, and report the bytes freed.
///
/// An object goes when no placement references it and no public tree still
/// links to it (a removed version stays published until the publish that
/// withdraws it). Staging files left by crashed processes for over a day go
/// too. Safe while `bess serve` runs and while other bess processes ingest:
/// ingests wait while gc decides.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  bess repo prune && bess repo gc")]
pub struct GcArgs {
    /// Show what would be deleted; delete nothing
    #[arg(long)]
    dry_run: bool,
    /// Print {"objects_deleted": N, "bytes_freed": N, ...}
    #[arg(long)]
    json: bool,
}

/// Packages, versions, objects and bytes: stored in the pool vs published, per channel and dist.
///
/// Stored bytes count each pool object once. Published bytes add up the
/// files every channel and dist lists; the difference is what publishing
/// hard links to one pool saves.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print the figures as JSON
    #[arg(long)]
    json: bool,
}

pub fn run_prune(repo: &mut Repo, args: PruneArgs) -> anyhow::Result<ExitCode> {
    let request = PruneRequest {
        channel: args.channel,
        keep: args.keep,
        older_than_days: args.older_than,
        dry_run: args.dry_run,
        publish: !args.no_publish,
    };
    let outcome = ops::prune(repo, &request)?;
    if args.json {
        json(&outcome)?;
    } else {
        print_prune(&outcome);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_prune(outcome: &PruneOutcome) {
    let verb = if outcome.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for p in &outcome.removed {
        println!(
            "{verb} {} {} ({}) from {}/{} {}: {}",
            p.package, p.version, p.architecture, p.channel, p.dist, p.component, p.reason
        );
    }
    for p in &outcome.spared_by_pin {
        println!(
            "kept {} {} ({}) in {}/{}: {}",
            p.package, p.version, p.architecture, p.channel, p.dist, p.reason
        );
    }
    let rules: Vec<String> = outcome
        .rules
        .iter()
        .map(|r| match r.older_than_days {
            Some(days) => format!("{} keeps {}, prunes after {days} days", r.channel, r.keep),
            None => format!("{} keeps {}", r.channel, r.keep),
        })
        .collect();
    let (objects, bytes) = (outcome.objects_freed, human_bytes(outcome.bytes_freed));
    if outcome.dry_run {
        println!(
            "dry run ({}): {} placement(s) would go; `bess repo gc` would then free {objects} object(s), {bytes}",
            rules.join("; "),
            outcome.removed.len()
        );
    } else {
        println!(
            "pruned {} placement(s) ({}); `bess repo gc` frees {objects} object(s), {bytes}",
            outcome.removed.len(),
            rules.join("; ")
        );
    }
}

pub fn run_unpin(repo: &mut Repo, args: UnpinArgs) -> anyhow::Result<ExitCode> {
    let request = PinRequest {
        selector: Selector::parse(&args.package)?,
        channel: args.channel,
    };
    ops::unpin(repo, &request)?;
    println!("unpinned {} in {}", request.selector, request.channel);
    Ok(ExitCode::SUCCESS)
}

pub fn run_pin(repo: &mut Repo, args: PinArgs) -> anyhow::Result<ExitCode> {
    let request = PinRequest {
        selector: Selector::parse(&args.package)?,
        channel: args.channel,
    };
    if ops::pin(repo, &request)? {
        println!("pinned {} in {}", request.selector, request.channel);
    } else {
        println!("{} already pinned in {}", request.selector, request.channel);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_pins(repo: &Repo, args: PinsArgs) -> anyhow::Result<ExitCode> {
    let pins = ops::pins(repo, args.channel.as_deref())?;
    if args.json {
        json(&pins)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(vec!["CHANNEL", "PACKAGE", "VERSION"]);
    for p in pins {
        table.row(vec![p.channel, p.package, p.version]);
    }
    table.print()?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_gc(repo: &mut Repo, args: GcArgs) -> anyhow::Result<ExitCode> {
    let outcome = ops::gc(
        repo,
        &GcRequest {
            dry_run: args.dry_run,
        },
    )?;
    if args.json {
        json(&outcome)?;
        return Ok(target_errors(&outcome.targets));
    }
    let verb = if outcome.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    println!(
        "{verb} {} of {} object(s), freeing {}",
        outcome.objects_deleted,
        outcome.objects,
        human_bytes(outcome.bytes_freed)
    );
    if outcome.objects_still_published > 0 {
        println!(
            "kept {} unreferenced object(s) ({}) still linked in a public tree; the next publish withdraws them",
            outcome.objects_still_published,
            human_bytes(outcome.bytes_still_published)
        );
    }
    if outcome.temp_files_deleted > 0 {
        println!(
            "{verb} {} stale temp file(s) ({})",
            outcome.temp_files_deleted,
            human_bytes(outcome.temp_bytes_freed)
        );
    }
    for t in outcome.targets.iter().filter(|t| t.error.is_none()) {
        println!(
            "target {}: {verb} {} object(s); {} unreferenced kept for the grace period \
             ({} newly found); {} referenced again",
            t.target, t.objects_deleted, t.objects_waiting, t.objects_marked, t.objects_unmarked
        );
    }
    Ok(target_errors(&outcome.targets))
}

/// Prints each target gc could not collect; failure if there was one.
fn target_errors(targets: &[ops::TargetGc]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for error in targets.iter().filter_map(|t| t.error.as_ref()) {
        eprintln!("bess: {error}");
        status = ExitCode::FAILURE;
    }
    status
}

pub fn run_stats(repo: &mut Repo, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let stats = ops::stats(repo)?;
    if args.json {
        json(&stats)?;
    } else {
        print_stats(&stats)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_stats(stats: &Stats) -> std::io::Result<()> {
    println!(
        "packages   {} ({} versions)",
        stats.packages, stats.versions
    );
    println!(
        "stored     {} in {} object(s); {} in {} unreferenced (see `bess repo gc`)",
        human_bytes(stats.bytes_stored),
        stats.objects,
        human_bytes(stats.bytes_unreferenced),
        stats.objects_unreferenced
    );
    println!(
        "published  {} over every channel and dist; hard links save {}\n",
        human_bytes(stats.bytes_published),
        human_bytes(stats.bytes_saved)
    );
    let mut table = Table::new(vec![
        "CHANNEL", "DIST", "PACKAGES", "VERSIONS", "FILES", "SIZE",
    ]);
    for c in &stats.channels {
        let row = |dist: &str, packages: u64, versions: u64, files: u64, bytes: u64| {
            vec![
                c.channel.clone(),
                dist.to_string(),
                packages.to_string(),
                versions.to_string(),
                files.to_string(),
                human_bytes(bytes),
            ]
        };
        table.row(row("(pool)", c.packages, c.versions, c.files, c.bytes));
        for d in &c.dists {
            table.row(row(&d.dist, d.packages, d.versions, d.files, d.bytes));
        }
    }
    table.print()
}
