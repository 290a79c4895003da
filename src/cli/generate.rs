//! Hidden commands that generate documentation from the clap definitions:
//! shell completions and man pages (used by `packaging/build-deb`).

use clap::{Args, CommandFactory};
use std::path::PathBuf;
use std::process::ExitCode;

/// Print a shell completion script for bess.
#[derive(Debug, Args)]
#[command(
    hide = true,
    after_help = "Example:\n  bess completions bash > /usr/share/bash-completion/completions/bess"
)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell
    shell: clap_complete::Shell,
}

/// Write man pages (bess.1, bess-repo.1, bess-repo-ingest.1, ...) into DIR.
#[derive(Debug, Args)]
#[command(hide = true)]
pub struct ManpageArgs {
    /// Directory to write the pages into (created if missing)
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
}

/// Runs `bess completions SHELL`.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = super::Cli::command();
    clap_complete::generate(args.shell, &mut command, "bess", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Runs `bess manpage --out-dir DIR`.
pub fn manpages(args: ManpageArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out_dir)?;
    clap_mangen::generate_to(super::Cli::command(), &args.out_dir)?;
    Ok(ExitCode::SUCCESS)
}
