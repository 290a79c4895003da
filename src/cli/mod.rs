//! Command-line interface: clap definitions, one file per command group.

use std::process::ExitCode;

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
