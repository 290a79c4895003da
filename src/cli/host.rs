//! `bess host …`: this host's DNS and reverse proxy for environments.

use super::output::{Table, json};
use crate::ops::Repo;
use crate::ops::host::{HostChange, bind_proxy, host_check, unbind_proxy};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Route environments' names on this host: bind zones and proxy files.
///
/// `bind-proxy` writes the platform's zone (`<env>` and `*.<env>` →
/// [host] proxy-address) and the environment's nginx or apache file
/// (each site's name → its machine; `<env>.<platform>.<domain>` → bess's
/// homepage of it), into the directories of [host] in bess.toml. Each file
/// is checked with named-checkzone, named-checkconf, `nginx -t` or
/// `apache2 -t` before it replaces the old one; the reload commands run
/// only after that. A rejected file leaves the old ones in place and the
/// error names the line the tool refused.
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Route an environment's names: its records in the platform's zone, and its proxy file
    BindProxy(EnvArgs),
    /// Remove exactly what bind-proxy added for an environment (the platform's zone stays)
    UnbindProxy(EnvArgs),
    Check(CheckArgs),
}

/// An environment.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess host bind-proxy paas 1161     # v5.1161.paas.example.test → its machine\n  bess host unbind-proxy paas 1161   # removes exactly what bind-proxy added"
)]
pub struct EnvArgs {
    /// Platform name
    platform: String,
    /// Environment name
    env: String,
    /// Print the files changed as JSON
    #[arg(long)]
    json: bool,
}

/// Which host tools exist and which configuration bess owns (exit 1 if any is missing or out of sync).
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print JSON: {proxy, ok, tools, files}
    #[arg(long)]
    json: bool,
}

pub fn run(dir: &Path, command: HostCommand) -> anyhow::Result<ExitCode> {
    let mut repo = Repo::open(dir)?;
    // Whatever a killed bess left half done is finished first.
    crate::ops::recover(&mut repo)?;
    match command {
        HostCommand::BindProxy(args) => {
            let change = bind_proxy(&mut repo, &args.platform, &args.env)?;
            print_change(&change, args.json)?;
        }
        HostCommand::UnbindProxy(args) => {
            let change = unbind_proxy(&mut repo, &args.platform, &args.env)?;
            print_change(&change, args.json)?;
        }
        HostCommand::Check(args) => {
            let report = host_check(&mut repo)?;
            if args.json {
                json(&report)?;
            } else {
                let mut tools = Table::new(vec!["TOOL", "PROGRAM", "FOUND"]);
                for t in &report.tools {
                    let found = t
                        .path
                        .clone()
                        .unwrap_or_else(|| format!("missing (apt-get install {})", t.package));
                    tools.row(vec![t.role.clone(), t.program.clone(), found]);
                }
                tools.print()?;
                let mut files = Table::new(vec!["FILE", "KIND", "FOR", "STATUS"]);
                for f in &report.files {
                    files.row(vec![
                        f.path.clone(),
                        f.kind.clone(),
                        f.owner.clone(),
                        f.status.clone(),
                    ]);
                }
                writeln!(std::io::stdout().lock())?;
                files.print()?;
            }
            if !report.ok {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_change(change: &HostChange, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return Ok(json(change)?);
    }
    if !super::progress::chatty() {
        return Ok(());
    }
    for file in &change.files {
        writeln!(std::io::stdout().lock(), "{:<9} {}", file.change, file.path)?;
    }
    for command in &change.reloaded {
        writeln!(std::io::stdout().lock(), "reloaded  {command}")?;
    }
    let state = if change.bound { "bound" } else { "unbound" };
    writeln!(
        std::io::stdout().lock(),
        "{state} {}/{}",
        change.platform,
        change.environment
    )?;
    Ok(())
}
