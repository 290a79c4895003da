//! `bess init`: create a repository.

use crate::config::{NameList, parse_list};
use crate::ops::{InitRequest, init};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Create a repository: bess.toml, dists.list, archs.list and the data layout.
///
/// The distributions and architectures are written to DIR/dists.list and
/// DIR/archs.list (one name per line, `#` comments); edit them later to add
/// or drop a distribution. Channels and components live in DIR/bess.toml.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  bess init /var/lib/bess --dists bookworm,trixie,jammy --archs amd64,arm64"
)]
pub struct InitArgs {
    /// Directory to create (or an empty existing one)
    dir: PathBuf,
    /// Distribution codenames, comma-separated [default: this machine's]
    #[arg(long, value_delimiter = ',', value_name = "DIST,...")]
    dists: Vec<String>,
    /// Architectures, comma-separated [default: this machine's]
    #[arg(long, value_delimiter = ',', value_name = "ARCH,...")]
    archs: Vec<String>,
}

pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let dists = names_or(
        args.dists,
        host_codename(),
        crate::config::check_dist_name,
        "--dists",
    )?;
    let archs = names_or(
        args.archs,
        host_architecture(),
        crate::config::check_arch_name,
        "--archs",
    )?;
    let layout = init(&InitRequest {
        root: args.dir,
        dists: dists.clone(),
        archs: archs.clone(),
    })?;
    let config = crate::config::RepoConfig::load(layout.root())?;
    let mut repo = crate::ops::Repo::open(layout.root())?;
    let fingerprint = crate::ops::generate_key(&mut repo, &super::key::user_id(&config))?;
    crate::ops::publish(&mut repo, &crate::ops::PublishRequest::default())?;
    if !super::progress::chatty() {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "created repository {}\n  dists: {}\n  archs: {}\n  channels: {}\n  signing key: {fingerprint}",
        layout.root().display(),
        dists.names().join(", "),
        archs.names().join(", "),
        config.settings.channels.join(" → ")
    );
    Ok(ExitCode::SUCCESS)
}

fn names_or(
    given: Vec<String>,
    fallback: String,
    check: fn(&str) -> Result<(), String>,
    flag: &str,
) -> anyhow::Result<NameList> {
    let names = if given.is_empty() {
        vec![fallback]
    } else {
        given
    };
    parse_list(&names.join("\n"), check)
        .map_err(|e| anyhow::anyhow!("{flag}: {}", e.trim_start_matches(|c| c != '`')))
}

/// The codename in /etc/os-release, the natural default for a first dist.
fn host_codename() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("VERSION_CODENAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "bookworm".to_string())
}

/// Debian's name for this machine's architecture.
fn host_architecture() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        _ => "amd64",
    }
    .to_string()
}
