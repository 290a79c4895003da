//! `bess repo …`: ingest, list, versions, diff, promote, remove.

use super::output::{Table, human_bytes, json};
use super::progress::{chatty, reporter, verbose};
use super::retention;
use crate::ops::{
    self, ChangedPlacement, IngestRequest, Listing, PromoteRequest, RemoveRequest, Repo, Selector,
};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Manage packages: ingest, list, versions, diff, promote, remove, prune, gc, stats.
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    Ingest(IngestArgs),
    List(ListArgs),
    Versions(VersionsArgs),
    Diff(DiffArgs),
    Promote(PromoteArgs),
    Remove(RemoveArgs),
    Publish(PublishArgs),
    Refresh(RefreshArgs),
    Check(CheckArgs),
    Prune(retention::PruneArgs),
    Pin(retention::PinArgs),
    Unpin(retention::UnpinArgs),
    Pins(retention::PinsArgs),
    Gc(retention::GcArgs),
    Stats(retention::StatsArgs),
}

/// Verify the whole repository: pool objects, published links, indices,
/// Release entries and by-hash copies, signatures.
///
/// Exits 1 if anything is damaged. What an interrupted writer left (staging
/// files of a killed ingest) is printed as a warning with the command that
/// removes it; harmless leftovers (objects no placement uses, changes
/// waiting for `bess repo publish`) as notes.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print {"problems": [...], "warnings": [...], "notes": [...], ...}
    #[arg(long)]
    json: bool,
}

/// Publish pending changes: Packages indices, Release, InRelease, Release.gpg.
///
/// ingest, promote and remove publish what they change unless given
/// --no-publish; this publishes whatever is still pending (and every dist
/// never published yet). A dist is switched to its new metadata atomically;
/// a publish with no change rewrites nothing.
///
/// Release files carry a Valid-Until date ([release] valid-days in
/// bess.toml); `bess serve` or `bess repo refresh --due` renews it.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Republish with a new Date and Valid-Until even if nothing changed,
    /// and repair: relink every package file, move the files of an earlier
    /// bess to Debian's pool layout, compress again index chunks damaged on disk
    #[arg(long)]
    refresh: bool,
    /// Only this channel (with --refresh or alone: every dist of it)
    #[arg(long)]
    channel: Option<String>,
    /// Only this dist (repeatable)
    #[arg(long = "dist", value_name = "DIST")]
    dists: Vec<String>,
    /// Print {"published": [...], "targets": [...]} as JSON: the dists, then
    /// what each [[publish.target]] received (requests, puts, bytes)
    #[arg(long)]
    json: bool,
}

/// Sign Release files again with a new Date and Valid-Until, before apt
/// would refuse them as expired.
///
/// Only Release, InRelease and Release.gpg change: the indices, their
/// hashes and the packages stay. `bess serve` does this by itself (at
/// start and every ten minutes) for every dist whose Valid-Until is closer
/// than [release] refresh-before-days (default: a third of valid-days);
/// on a host without it, run `bess repo refresh --due` daily (the Debian
/// package ships bess-refresh.timer).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess repo refresh --due      # what is close to expiring (a daily timer)\n  bess repo refresh            # every published dist, now"
)]
pub struct RefreshArgs {
    /// Only the dists whose Valid-Until is closer than refresh-before-days
    #[arg(long)]
    due: bool,
    /// Print what was signed again as JSON
    #[arg(long)]
    json: bool,
}

/// Validate .deb files and add them to the first channel (preprod).
///
/// Every file is checked (ar structure, control data, names, versions,
/// architectures) before anything is stored; one bad file refuses the whole
/// upload. Identical bytes are stored once; re-ingesting a package is a no-op.
/// The same name, version and architecture with different bytes is refused.
///
/// Without --dist a package is published in every dist of dists.list, unless
/// a [[dist-rule]] in bess.toml matches its version.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess repo ingest build/                      # every .deb under build/, recursively\n  bess repo ingest --dist bookworm php8.2_8.2.7-1+deb12u1_amd64.deb"
)]
pub struct IngestArgs {
    /// .deb files, or directories searched recursively for *.deb
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Publish only in this dist (repeatable); default: dist rules, else every dist
    #[arg(long = "dist", value_name = "DIST")]
    dists: Vec<String>,
    /// Component to publish in [default: bess.toml's default-component]
    #[arg(long)]
    component: Option<String>,
    /// Do not publish now; `bess repo publish` publishes later
    #[arg(long)]
    no_publish: bool,
    /// Print the result as JSON (one object per package)
    #[arg(long)]
    json: bool,
    /// Upload to a `bess serve` at this URL instead (password in $BESS_PASSWORD; $BESS_CA_CERT trusts a private CA)
    #[arg(long, value_name = "URL", requires = "user")]
    remote: Option<String>,
    /// User for --remote
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
}

/// List published packages: one row per channel, dist and component.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this channel
    #[arg(long)]
    channel: Option<String>,
    /// Only this dist (repeatable)
    #[arg(long = "dist", value_name = "DIST")]
    dists: Vec<String>,
    /// Print a JSON array of {package, version, architecture, channel, dist, component, sha256, size}
    #[arg(long)]
    json: bool,
}

/// Every version known for a package, newest first, and where each is published.
#[derive(Debug, Args)]
pub struct VersionsArgs {
    /// Package name
    package: String,
    /// Print a JSON array of {package, version, architecture, sha256, size, placements}
    #[arg(long)]
    json: bool,
}

/// What is published in FROM and not in TO, dist by dist.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  bess repo diff preprod prod     # what a promotion would bring to prod"
)]
pub struct DiffArgs {
    /// Channel that has the packages (e.g. preprod)
    from: String,
    /// Channel that lacks them (e.g. prod)
    to: String,
    /// Only this dist (repeatable)
    #[arg(long = "dist", value_name = "DIST")]
    dists: Vec<String>,
    /// Print a JSON array of {package, version, architecture, dist, component, …}
    #[arg(long)]
    json: bool,
}

/// Copy exact versions to the next channel (preprod → prod by default).
///
/// PKG=VERSION promotes that version (every architecture); PKG alone promotes
/// the newest version of each dist in the source channel. No byte is copied:
/// the target channel's files are hard links to the same pool objects.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess repo promote myapp=1.4.2-1 mylib=2:0.9-3\n  bess repo promote --dist jammy php8.2"
)]
pub struct PromoteArgs {
    /// PKG or PKG=VERSION
    #[arg(required = true, value_name = "PKG[=VERSION]")]
    packages: Vec<String>,
    /// Source channel [default: the first channel]
    #[arg(long)]
    from: Option<String>,
    /// Target channel [default: the channel after --from]
    #[arg(long)]
    to: Option<String>,
    /// Only this dist (repeatable)
    #[arg(long = "dist", value_name = "DIST")]
    dists: Vec<String>,
    /// Do not publish now; `bess repo publish` publishes later
    #[arg(long)]
    no_publish: bool,
    /// Print the placements as JSON
    #[arg(long)]
    json: bool,
}

/// Withdraw exact versions from a channel (the pool keeps the bytes).
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// PKG=VERSION
    #[arg(required = true, value_name = "PKG=VERSION")]
    packages: Vec<String>,
    /// Channel to remove from
    #[arg(long, required = true)]
    channel: String,
    /// Only this dist (repeatable)
    #[arg(long = "dist", value_name = "DIST")]
    dists: Vec<String>,
    /// Do not publish now; `bess repo publish` publishes later
    #[arg(long)]
    no_publish: bool,
    /// Print the placements as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(dir: &Path, command: RepoCommand) -> anyhow::Result<ExitCode> {
    if let RepoCommand::Ingest(args) = &command
        && let Some(url) = &args.remote
    {
        return run_remote_ingest(url, args);
    }
    let mut repo = Repo::open(dir)?;
    repo.progress = reporter();
    match command {
        RepoCommand::Ingest(args) => run_ingest(&mut repo, args),
        RepoCommand::List(args) => run_list(&repo, args),
        RepoCommand::Versions(args) => run_versions(&repo, args),
        RepoCommand::Diff(args) => run_diff(&repo, args),
        RepoCommand::Promote(args) => run_promote(&mut repo, args),
        RepoCommand::Remove(args) => run_remove(&mut repo, args),
        RepoCommand::Publish(args) => run_publish(&mut repo, args),
        RepoCommand::Refresh(args) => run_refresh(&mut repo, args),
        RepoCommand::Check(args) => run_check(&mut repo, args),
        RepoCommand::Prune(args) => retention::run_prune(&mut repo, args),
        RepoCommand::Pin(args) => retention::run_pin(&mut repo, args),
        RepoCommand::Unpin(args) => retention::run_unpin(&mut repo, args),
        RepoCommand::Pins(args) => retention::run_pins(&repo, args),
        RepoCommand::Gc(args) => retention::run_gc(&mut repo, args),
        RepoCommand::Stats(args) => retention::run_stats(&mut repo, args),
    }
}

fn run_ingest(repo: &mut Repo, args: IngestArgs) -> anyhow::Result<ExitCode> {
    let listed = args.json || (chatty() && verbose());
    let request = IngestRequest {
        paths: args.paths,
        dists: args.dists,
        component: args.component,
        publish: !args.no_publish,
        channel: None,
        summary_only: !listed,
    };
    let outcome = ops::ingest(repo, &request)?;
    if args.json {
        json(&outcome.packages)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !chatty() {
        return Ok(ExitCode::SUCCESS);
    }
    for p in &outcome.packages {
        let state = if p.new {
            "added"
        } else if p.placements_added > 0 {
            "placed"
        } else {
            "unchanged"
        };
        println!(
            "{state:9} {} {} ({}) → {} {}",
            p.package,
            p.version,
            p.architecture,
            p.channel,
            p.dists.join(",")
        );
    }
    let totals = &outcome.totals;
    let channel = repo.config.first_channel();
    println!(
        "ingested {} package(s) into {channel}: {} new ({}), {} already present",
        totals.packages,
        totals.new,
        human_bytes(totals.new_bytes),
        totals.packages - totals.new
    );
    Ok(ExitCode::SUCCESS)
}

fn run_remote_ingest(url: &str, args: &IngestArgs) -> anyhow::Result<ExitCode> {
    let user = args.user.as_deref().unwrap_or_default();
    let mut files = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            let found = walkdir::WalkDir::new(path)
                .sort_by_file_name()
                .into_iter()
                .filter_map(Result::ok);
            files.extend(
                found
                    .filter(|e| e.path().extension().is_some_and(|x| x == "deb"))
                    .map(|e| e.into_path()),
            );
        } else {
            files.push(path.clone());
        }
    }
    let results = super::remote::upload(url, user, &files, &args.dists, args.component.as_deref())?;
    if args.json {
        json(
            &results
                .into_iter()
                .flat_map(|r| r.as_array().cloned().unwrap_or_default())
                .collect::<Vec<_>>(),
        )?;
    } else {
        println!("uploaded {} file(s) to {url}", files.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn run_list(repo: &Repo, args: ListArgs) -> anyhow::Result<ExitCode> {
    let listings = ops::list(repo, args.channel.as_deref(), &args.dists)?;
    if args.json {
        json(&listings)?;
    } else {
        print_listings(&listings, true)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_versions(repo: &Repo, args: VersionsArgs) -> anyhow::Result<ExitCode> {
    let versions = ops::versions(repo, &args.package)?;
    if args.json {
        json(&versions)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(vec!["VERSION", "ARCH", "PUBLISHED IN"]);
    for v in &versions {
        let places: Vec<String> = v
            .placements
            .iter()
            .map(|p| format!("{}/{}", p.channel, p.dist))
            .collect();
        let places = if places.is_empty() {
            "(nowhere)".to_string()
        } else {
            places.join(" ")
        };
        table.row(vec![v.version.clone(), v.architecture.clone(), places]);
    }
    table.print()?;
    Ok(ExitCode::SUCCESS)
}

fn run_diff(repo: &Repo, args: DiffArgs) -> anyhow::Result<ExitCode> {
    let missing = ops::diff(repo, &args.from, &args.to, &args.dists)?;
    if args.json {
        json(&missing)?;
    } else if missing.is_empty() {
        println!("{} has everything {} has", args.to, args.from);
    } else {
        print_listings(&missing, false)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_promote(repo: &mut Repo, args: PromoteArgs) -> anyhow::Result<ExitCode> {
    let request = PromoteRequest {
        selectors: parse_selectors(&args.packages)?,
        from: args.from,
        to: args.to,
        dists: args.dists,
        publish: !args.no_publish,
    };
    let changes = ops::promote(repo, &request)?;
    print_changes(&changes, args.json, "promoted to", "already in")
}

fn run_remove(repo: &mut Repo, args: RemoveArgs) -> anyhow::Result<ExitCode> {
    let request = RemoveRequest {
        selectors: parse_selectors(&args.packages)?,
        channel: args.channel,
        dists: args.dists,
        publish: !args.no_publish,
    };
    let changes = ops::remove(repo, &request)?;
    print_changes(&changes, args.json, "removed from", "already gone from")
}

fn run_publish(repo: &mut Repo, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let mut targets = Vec::new();
    if args.channel.is_some() || !args.dists.is_empty() {
        let channels = match &args.channel {
            Some(c) => vec![c.clone()],
            None => repo.config.settings.channels.clone(),
        };
        let dists = if args.dists.is_empty() {
            repo.config.dists.names().to_vec()
        } else {
            args.dists.clone()
        };
        for channel in &channels {
            targets.extend(dists.iter().map(|d| (channel.clone(), d.clone())));
        }
    }
    let request = ops::PublishRequest {
        targets,
        refresh: args.refresh,
    };
    let publication = ops::publish_everywhere(repo, &request)?;
    if args.json {
        json(&publication)?;
    } else if chatty() {
        print_published(&publication.published);
        print_targets(&publication.targets);
    }
    let mut status = ExitCode::SUCCESS;
    for error in publication.targets.iter().filter_map(|t| t.error.as_ref()) {
        eprintln!("bess: {error}");
        status = ExitCode::FAILURE;
    }
    Ok(status)
}

fn print_targets(targets: &[ops::TargetSync]) {
    for t in targets {
        let state = if t.error.is_some() {
            "behind"
        } else {
            "synced"
        };
        // Only a tree-layout target copies pool files to their apt paths.
        let tree = if t.tree_copied + t.tree_deleted > 0 {
            format!(
                "; pool files {} copied, {} deleted",
                t.tree_copied, t.tree_deleted
            )
        } else {
            String::new()
        };
        println!(
            "{state:9} target {}: {} object(s), {} file(s) uploaded, {} copied, {} deleted{tree}; \
             {} request(s), {}",
            t.target,
            t.objects_uploaded,
            t.files_uploaded,
            t.files_copied,
            t.files_deleted,
            t.requests,
            human_bytes(t.bytes_uploaded)
        );
    }
}

fn run_refresh(repo: &mut Repo, args: RefreshArgs) -> anyhow::Result<ExitCode> {
    let report = ops::refresh(repo, args.due)?;
    if args.json {
        json(&report)?;
    } else if chatty() {
        if report.refreshed.is_empty() && report.failed.is_empty() {
            println!("nothing to refresh");
        }
        for r in &report.refreshed {
            let until = r.valid_until.map_or("no Valid-Until".to_string(), |u| {
                format!("valid until {}", ops::rfc3339(u as i64))
            });
            println!(
                "refreshed {}/{} generation {} ({until})",
                r.channel, r.dist, r.generation
            );
        }
        print_targets(&report.targets);
    }
    for f in &report.failed {
        eprintln!("bess: cannot refresh {}/{}: {}", f.channel, f.dist, f.error);
    }
    let behind: Vec<&String> = report
        .targets
        .iter()
        .filter_map(|t| t.error.as_ref())
        .collect();
    for error in &behind {
        eprintln!("bess: {error}");
    }
    Ok(if report.failed.is_empty() && behind.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_published(published: &[ops::Published]) {
    if published.is_empty() {
        println!("nothing to publish");
    }
    for p in published {
        let what = if p.outcome.written {
            "published"
        } else {
            "unchanged"
        };
        println!(
            "{what:9} {}/{} generation {} ({} packages)",
            p.channel, p.outcome.dist, p.outcome.generation, p.outcome.packages
        );
    }
}

fn run_check(repo: &mut Repo, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let report = ops::check(repo)?;
    if args.json {
        json(&report)?;
    } else {
        for problem in &report.problems {
            println!("DAMAGE  {problem}");
        }
        for warning in &report.warnings {
            println!("warning {warning}");
        }
        if chatty() {
            for note in &report.notes {
                println!("note    {note}");
            }
            println!(
                "checked {} object(s) and {} dist(s): {} problem(s)",
                report.objects,
                report.dists,
                report.problems.len()
            );
        }
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn parse_selectors(texts: &[String]) -> anyhow::Result<Vec<Selector>> {
    Ok(texts
        .iter()
        .map(|t| Selector::parse(t))
        .collect::<Result<_, _>>()?)
}

fn print_listings(listings: &[Listing], with_channel: bool) -> std::io::Result<()> {
    let header = if with_channel {
        vec!["PACKAGE", "VERSION", "ARCH", "CHANNEL", "DIST", "COMPONENT"]
    } else {
        vec!["PACKAGE", "VERSION", "ARCH", "DIST", "COMPONENT"]
    };
    let mut table = Table::new(header);
    for l in listings {
        let mut row = vec![l.package.clone(), l.version.clone(), l.architecture.clone()];
        if with_channel {
            row.push(l.channel.clone());
        }
        row.extend([l.dist.clone(), l.component.clone()]);
        table.row(row);
    }
    table.print()
}

fn print_changes(
    changes: &[ChangedPlacement],
    as_json: bool,
    done: &str,
    noop: &str,
) -> anyhow::Result<ExitCode> {
    if as_json {
        json(changes)?;
        return Ok(ExitCode::SUCCESS);
    }
    for c in changes {
        let verb = if c.changed { done } else { noop };
        println!(
            "{} {} ({}) {verb} {}/{} {}",
            c.package, c.version, c.architecture, c.channel, c.dist, c.component
        );
    }
    Ok(ExitCode::SUCCESS)
}
