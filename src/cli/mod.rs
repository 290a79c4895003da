//! Command-line interface: clap definitions, one file per command group.
//! Commands parse and print; the work happens in `ops`.

mod init;
mod key;
mod output;
mod repo;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// bess: an APT repository manager with channels, signed publication and an authenticated server.
#[derive(Debug, Parser)]
#[command(
    name = "bess",
    version,
    about,
    long_about = "bess keeps every version of your .deb packages in a content-addressed pool, \
publishes them per channel (preprod, then prod), per distribution and per architecture, \
and lets operators promote exact versions from one channel to the next.",
    after_help = "Quick start:
  bess init /srv/bess --dists bookworm,jammy --archs amd64,arm64
  export BESS_REPO=/srv/bess
  bess repo ingest build/*.deb           # lands in preprod, every dist of dists.list
  bess repo diff preprod prod            # what prod does not have yet
  bess repo promote myapp=1.4.2-1        # exact version to prod"
)]
pub struct Cli {
    /// Repository directory [default: $BESS_REPO, else the current directory]
    #[arg(long, global = true, env = "BESS_REPO", value_name = "DIR")]
    repo: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Init(init::InitArgs),
    #[command(subcommand)]
    Repo(repo::RepoCommand),
    #[command(subcommand)]
    Key(key::KeyCommand),
}

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let repo_dir = cli.repo.clone().unwrap_or_else(|| PathBuf::from("."));
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Repo(command) => repo::run(&repo_dir, command),
        Command::Key(command) => key::run(&repo_dir, command),
    }
}
