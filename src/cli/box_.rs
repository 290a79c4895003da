//! `bess box …`: Vagrant boxes on the same store, catalog, channels and server.

use super::output::{Table, json};
use crate::ops::{self, BoxAddRequest, BoxChange, BoxPlacement, BoxSelector, Repo};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Manage Vagrant boxes: add, promote, remove, list.
///
/// A box is stored once in the content-addressed pool, enters the first
/// channel (preprod) and is promoted to the next like a package. `bess
/// serve` answers vagrant at /<channel>/boxes/<name> with a catalog whose
/// box URLs carry signed, expiring tokens (vagrant sends the credentials
/// of the catalog URL to the catalog only).
#[derive(Debug, Subcommand)]
pub enum BoxCommand {
    Add(AddArgs),
    Promote(PromoteArgs),
    Remove(RemoveArgs),
    List(ListArgs),
}

/// Add a box file (tar, tar.gz or zip with a metadata.json naming its provider) to the first channel.
///
/// The same name, version, provider and architecture with different bytes
/// is refused: vagrant would fail its checksum. Identical bytes are stored once.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess box add acme/base 1.2.0 output/base.box --provider libvirt\n  BESS_PASSWORD=\"$PW\" bess box add acme/base 1.2.0 base.box --provider libvirt --remote https://repo.example.com --user ci\n\nOn a vagrant host (credentials go in the catalog URL):\n  config.vm.box = \"acme/base\"\n  config.vm.box_url = \"https://web01:PASSWORD@repo.example.com/prod/boxes/acme/base\""
)]
pub struct AddArgs {
    /// Box name, `name` or `org/name`
    name: String,
    /// Version as vagrant parses it, e.g. 1.2.0
    version: String,
    /// The .box file
    file: PathBuf,
    /// Provider the box is for (libvirt, virtualbox, …); must match its metadata.json
    #[arg(long, required = true)]
    provider: String,
    /// Architecture
    #[arg(long, default_value = "amd64")]
    arch: String,
    /// Print the placement as JSON: {name, version, provider, architecture, channel, sha256, size, changed}
    #[arg(long)]
    json: bool,
    /// Upload to a `bess serve` at this URL instead (password in $BESS_PASSWORD; $BESS_CA_CERT trusts a private CA)
    #[arg(long, value_name = "URL", requires = "user")]
    remote: Option<String>,
    /// User for --remote (needs upload rights on the first channel)
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
}

/// Copy every provider and architecture of an exact box version to the next channel.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  bess box promote acme/base=1.2.0     # preprod → prod")]
pub struct PromoteArgs {
    /// NAME=VERSION
    #[arg(value_name = "NAME=VERSION")]
    selector: String,
    /// Source channel [default: the first channel]
    #[arg(long)]
    from: Option<String>,
    /// Target channel [default: the channel after --from]
    #[arg(long)]
    to: Option<String>,
    /// Print the placements as JSON
    #[arg(long)]
    json: bool,
}

/// Withdraw an exact box version from a channel (the pool keeps the bytes).
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// NAME=VERSION
    #[arg(value_name = "NAME=VERSION")]
    selector: String,
    /// Channel to remove from
    #[arg(long, required = true)]
    channel: String,
    /// Print the placements as JSON
    #[arg(long)]
    json: bool,
}

/// List box placements: one row per box and channel.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this channel
    #[arg(long)]
    channel: Option<String>,
    /// Print a JSON array of {name, version, provider, architecture, channel, sha256, size}
    #[arg(long)]
    json: bool,
}

pub fn run(dir: &Path, command: BoxCommand) -> anyhow::Result<ExitCode> {
    if let BoxCommand::Add(args) = &command
        && let Some(url) = &args.remote
    {
        return run_remote_add(url, args);
    }
    let mut repo = Repo::open(dir)?;
    match command {
        BoxCommand::Add(args) => run_add(&mut repo, args),
        BoxCommand::Promote(args) => {
            let selector = BoxSelector::parse(&args.selector)?;
            let changes = ops::promote_box(
                &mut repo,
                &selector,
                args.from.as_deref(),
                args.to.as_deref(),
            )?;
            print_changes(&changes, args.json, "promoted", "already in")
        }
        BoxCommand::Remove(args) => {
            let selector = BoxSelector::parse(&args.selector)?;
            let changes = ops::remove_box(&mut repo, &selector, &args.channel)?;
            print_changes(&changes, args.json, "removed", "already gone from")
        }
        BoxCommand::List(args) => {
            let placed = ops::list_boxes(&repo, args.channel.as_deref(), None)?;
            print_list(&placed, args.json)
        }
    }
}

fn add_request(args: &AddArgs) -> BoxAddRequest {
    BoxAddRequest {
        name: args.name.clone(),
        version: args.version.clone(),
        provider: args.provider.clone(),
        arch: args.arch.clone(),
    }
}

fn run_add(repo: &mut Repo, args: AddArgs) -> anyhow::Result<ExitCode> {
    let mut file = std::fs::File::open(&args.file)
        .map_err(|e| anyhow::anyhow!("{}: cannot open: {e}", args.file.display()))?;
    let label = args.file.display().to_string();
    let change = ops::add_box(repo, &add_request(&args), &mut file, &label)?;
    if args.json {
        // One object, as the server answers a remote add.
        json(&change)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_changes(std::slice::from_ref(&change), false, "added", "already in")
}

fn run_remote_add(url: &str, args: &AddArgs) -> anyhow::Result<ExitCode> {
    let user = args.user.as_deref().unwrap_or_default();
    let result = super::remote::upload_box(url, user, &args.file, &add_request(args))?;
    if args.json {
        json(&result)?;
    } else {
        let text = |k: &str| result[k].as_str().unwrap_or("?").to_string();
        println!(
            "uploaded box {} {} ({}, {}) to {url}: in {}",
            text("name"),
            text("version"),
            text("provider"),
            text("architecture"),
            text("channel")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_changes(
    changes: &[BoxChange],
    as_json: bool,
    done: &str,
    unchanged: &str,
) -> anyhow::Result<ExitCode> {
    if as_json {
        json(changes)?;
        return Ok(ExitCode::SUCCESS);
    }
    for c in changes {
        let p = &c.placement;
        let what = if c.changed { done } else { unchanged };
        println!(
            "{what} {}: box {} {} ({}, {}), sha256 {}",
            p.channel, p.name, p.version, p.provider, p.architecture, p.sha256
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(placed: &[BoxPlacement], as_json: bool) -> anyhow::Result<ExitCode> {
    if as_json {
        json(placed)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(vec![
        "NAME", "VERSION", "PROVIDER", "ARCH", "CHANNEL", "SIZE", "SHA256",
    ]);
    for p in placed {
        table.row(vec![
            p.name.clone(),
            p.version.clone(),
            p.provider.clone(),
            p.architecture.clone(),
            p.channel.clone(),
            p.size.to_string(),
            p.sha256.clone(),
        ]);
    }
    table.print()?;
    Ok(ExitCode::SUCCESS)
}
