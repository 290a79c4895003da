//! `bess platform …`: platforms, the templates environments are made from.

use super::output::{Table, json};
use crate::ops::{self, PlatformInitRequest, PlatformView, Repo};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Manage platforms: init, list, show, update, check, build, up, halt, destroy.
///
/// A platform is a source tree — a directory or a git repository — with a
/// platform.toml at its root declaring machines (box, memory, packages,
/// provisioning), sites and homepage tools. Every file ending in -dist is
/// a template. bess records the revision it fetched; `bess env init`
/// makes environments from that revision, until `bess platform update`.
#[derive(Debug, Subcommand)]
pub enum PlatformCommand {
    Init(InitArgs),
    /// List platforms
    List(JsonArgs),
    /// Show a platform: source, revision, names, range, machines, sites, tools, environments
    Show(NameArgs),
    /// Fetch the platform's source again and record its new revision (environments keep theirs)
    Update(NameArgs),
    /// Check a platform: source readable, platform.toml valid here, templates render, boxes present, host tools installed (exit 1 on a problem)
    Check(NameArgs),
    Destroy(DestroyArgs),
    Build(BuildArgs),
    Up(UpArgs),
    Halt(HaltArgs),
}

/// Start every environment of a platform: `bess env up` on each, in name order.
///
/// Each environment's machines are started and those never provisioned
/// are provisioned, exactly as `bess env up PLATFORM ENV` does. An
/// environment that fails does not stop the others: every environment is
/// listed with what became of each of its machines, and bess then exits 1
/// naming the environments that failed and why. `bess env status PLATFORM
/// ENV` shows a failed one's steps; `bess env reload PLATFORM ENV` retries
/// it. A platform without environments is not an error.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess platform up paas\n  bess platform up paas --json     # [{\"environment\": \"1161\", \"machines\": [...], \"error\": null}, ...]\n  bess env reload paas 1162        # retry one that failed"
)]
pub struct UpArgs {
    /// Platform name
    name: String,
    /// Print a JSON array with, per environment, its machines' outcomes and its error (null when it came up)
    #[arg(long)]
    json: bool,
}

/// Shut down every environment of a platform: `bess env halt` on each, in name order.
///
/// Machines stop; their disks stay, so `bess platform up` brings them
/// back as they were. An environment never started is reported as it is
/// and left alone. An environment that fails does not stop the others;
/// bess then exits 1 naming the environments that failed and why.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess platform halt paas\n  bess platform halt paas --json   # [{\"environment\": \"1161\", \"machines\": [...], \"error\": null}, ...]"
)]
pub struct HaltArgs {
    /// Platform name
    name: String,
    /// Print a JSON array with, per environment, its machines' outcomes and its error (null when it halted)
    #[arg(long)]
    json: bool,
}

/// Build the platform's machine image and add it to the catalog as a box.
///
/// mmdebstrap makes a Debian root from [image] of platform.toml (systemd,
/// dbus, iproute2 and openssh-server always, plus its packages); bess packs
/// it as a box for provider `nspawn` and adds it to the first channel like
/// `bess box add`. Promote it with `bess box promote BOX=VERSION`.
/// Machines download it from the catalog over HTTP when they start.
///
/// With --provider qemu the root also gets a Debian kernel and becomes an
/// 8 GiB ext4 disk (qcow2) with the kernel and initrd beside it, booted
/// directly by QEMU; that build needs root, and a version can carry both
/// providers (build again with the same --version).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess platform build paas\n  bess platform build paas --cache /var/cache/bess/images   # reuse a box built from the same inputs\n  bess platform build paas --provider qemu --version 20251204.193012   # the VM image of that version\n  bess box promote example/bookworm=20251204.193012         # to the next channel"
)]
pub struct BuildArgs {
    /// Platform name
    name: String,
    /// Box version [default: the UTC time of the build, YYYYMMDD.HHMMSS]
    #[arg(long)]
    version: Option<String>,
    /// Keep built boxes in DIR by the SHA-256 of mmdebstrap's inputs, and
    /// take one from there instead of building when the inputs are the same
    #[arg(long, value_name = "DIR")]
    cache: Option<std::path::PathBuf>,
    /// The provider whose image to build
    #[arg(long, default_value = "nspawn", value_parser = ["nspawn", "qemu"])]
    provider: String,
    /// Print what was built as JSON
    #[arg(long)]
    json: bool,
}

/// Register a platform from a directory or a git URL.
///
/// Its environments' names are `<env>.<NAME>.<DOMAIN>`, and their sites
/// `<site>.<env>.<NAME>.<DOMAIN>`; their machines get addresses from
/// --ip-range (the first address is the host's end of their network).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess platform init paas --source conf/platforms/example --domain example.test --ip-range 10.77.0.0/24\n  bess platform init paas --source https://git.example.com/ops/paas-platform.git --domain dev.example.com --ip-range 10.77.0.0/16 --channel preprod"
)]
pub struct InitArgs {
    /// Platform name (a DNS label: lowercase letters, digits, hyphens)
    name: String,
    /// A directory, or a git URL (https://…, file://…, user@host:path)
    #[arg(long, value_name = "PATH|GIT-URL")]
    source: String,
    /// The domain its names live under, e.g. example.test
    #[arg(long)]
    domain: String,
    /// IPv4 network its machines' addresses come from, e.g. 10.77.0.0/24
    #[arg(long, value_name = "CIDR")]
    ip_range: String,
    /// Channel its environments install from [default: the first channel]
    #[arg(long)]
    channel: Option<String>,
    /// Print the platform as JSON
    #[arg(long)]
    json: bool,
}

/// Print as JSON.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print a JSON array of platforms
    #[arg(long)]
    json: bool,
}

/// A platform by name.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// Platform name
    name: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Remove a platform, its zone on the host and its copy of the source.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  bess platform destroy paas --force     # its environments too")]
pub struct DestroyArgs {
    /// Platform name
    name: String,
    /// Destroy its environments too (refused otherwise while it has any)
    #[arg(long)]
    force: bool,
}

pub fn run(dir: &Path, command: PlatformCommand) -> anyhow::Result<ExitCode> {
    let mut repo = Repo::open(dir)?;
    // Whatever a killed bess left half done is finished first.
    crate::ops::recover(&mut repo)?;
    match command {
        PlatformCommand::Init(args) => {
            let request = PlatformInitRequest {
                name: args.name,
                source: args.source,
                domain: args.domain,
                ip_range: args.ip_range,
                channel: args.channel,
            };
            let view = ops::init_platform(&mut repo, &request)?;
            print_platform(&view, args.json, "registered")?;
        }
        PlatformCommand::List(args) => print_list(&ops::list_platforms(&repo)?, args.json)?,
        PlatformCommand::Show(args) => {
            print_platform(&ops::show_platform(&repo, &args.name)?, args.json, "")?;
        }
        PlatformCommand::Update(args) => {
            let (view, old) = ops::update_platform(&mut repo, &args.name)?;
            let done = if old == view.revision {
                "unchanged"
            } else {
                "updated"
            };
            print_platform(&view, args.json, done)?;
        }
        PlatformCommand::Check(args) => return check(&mut repo, &args),
        PlatformCommand::Build(args) => build(&mut repo, args)?,
        PlatformCommand::Up(args) => {
            let outcomes = ops::platform_up(&mut repo, &args.name)?;
            print_environments(&args.name, &outcomes, args.json)?;
            ops::platform_verdict(&args.name, "come up", &outcomes)?;
        }
        PlatformCommand::Halt(args) => {
            let outcomes = ops::platform_halt(&mut repo, &args.name)?;
            print_environments(&args.name, &outcomes, args.json)?;
            ops::platform_verdict(&args.name, "halt", &outcomes)?;
        }
        PlatformCommand::Destroy(args) => {
            let envs = ops::destroy_platform(&mut repo, &args.name, args.force)?;
            if super::progress::chatty() {
                writeln!(std::io::stdout().lock(), "destroyed platform {}", args.name)?;
                for env in envs {
                    writeln!(
                        std::io::stdout().lock(),
                        "destroyed environment {}/{env}",
                        args.name
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn build(repo: &mut Repo, args: BuildArgs) -> anyhow::Result<()> {
    let request = ops::PlatformBuildRequest {
        platform: args.name,
        version: args.version,
        cache: args.cache,
        provider: args.provider,
    };
    if super::progress::chatty() && !args.json {
        eprintln!(
            "building the image of platform {} (mmdebstrap takes a minute or more)",
            request.platform
        );
    }
    let built = ops::build_platform(repo, &request)?;
    if args.json {
        return Ok(json(&built)?);
    }
    let how = if built.cached {
        "taken from the cache"
    } else {
        "built"
    };
    writeln!(
        std::io::stdout().lock(),
        "{how}: box {} version {} ({}, {}) in channel {}\nsha256 {}  {} bytes\npackages {}",
        built.box_name,
        built.version,
        built.provider,
        built.architecture,
        built.channel,
        built.sha256,
        built.size,
        built.packages.join(", ")
    )?;
    Ok(())
}

/// One row per machine of each environment; an environment that failed
/// before reaching its machines gets one row saying so.
fn print_environments(
    platform: &str,
    outcomes: &[ops::EnvironmentOutcome],
    as_json: bool,
) -> anyhow::Result<()> {
    if as_json {
        return Ok(json(outcomes)?);
    }
    if outcomes.is_empty() {
        writeln!(
            std::io::stdout().lock(),
            "platform {platform} has no environments; make one with `bess env init {platform} ENV`"
        )?;
        return Ok(());
    }
    let mut table = Table::new(vec!["ENVIRONMENT", "MACHINE", "IP", "STATE", "PROVISIONED"]);
    for env in outcomes {
        if env.machines.is_empty() {
            let state = if env.error.is_some() { "failed" } else { "-" };
            let cells = [env.environment.as_str(), "-", "-", state, "-"];
            table.row(cells.iter().map(|c| c.to_string()).collect());
        }
        for m in &env.machines {
            let provisioned = if m.provisioned { "yes" } else { "-" };
            table.row(vec![
                env.environment.clone(),
                m.machine.clone(),
                m.ip.clone(),
                m.state.clone(),
                provisioned.into(),
            ]);
        }
    }
    Ok(table.print()?)
}

fn print_platform(view: &PlatformView, as_json: bool, done: &str) -> anyhow::Result<()> {
    if as_json {
        return Ok(json(view)?);
    }
    if !done.is_empty() {
        writeln!(std::io::stdout().lock(), "{done} platform {}", view.name)?;
    }
    let rows = [
        ("description", view.description.clone()),
        ("source", format!("{} ({})", view.source, view.source_kind)),
        ("revision", view.revision.clone()),
        ("names", format!("<env>.{}.{}", view.name, view.domain)),
        ("ip range", view.ip_range.clone()),
        ("channel", view.channel.clone()),
        ("dist", view.dist.clone()),
        ("machines", view.machines.join(", ")),
        ("sites", view.sites.join(", ")),
        ("tools", view.tools.join(", ")),
        ("environments", view.environments.join(", ")),
    ];
    for (key, value) in rows {
        writeln!(std::io::stdout().lock(), "{key:<13} {value}")?;
    }
    Ok(())
}

fn print_list(platforms: &[PlatformView], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return Ok(json(platforms)?);
    }
    let mut table = Table::new(vec![
        "PLATFORM",
        "DOMAIN",
        "IP RANGE",
        "CHANNEL",
        "ENVIRONMENTS",
        "REVISION",
    ]);
    for p in platforms {
        table.row(vec![
            p.name.clone(),
            p.domain.clone(),
            p.ip_range.clone(),
            p.channel.clone(),
            p.environments.len().to_string(),
            crate::env::source::short(&p.revision).to_string(),
        ]);
    }
    Ok(table.print()?)
}

fn check(repo: &mut Repo, args: &NameArgs) -> anyhow::Result<ExitCode> {
    let report = ops::check_platform(repo, &args.name)?;
    if args.json {
        json(&report)?;
    } else {
        for item in &report.checks {
            writeln!(
                std::io::stdout().lock(),
                "{:<8} {:<14} {}",
                item.status,
                item.check,
                item.detail.replace('\n', "\n                        ")
            )?;
        }
        if super::progress::chatty() {
            let verdict = if report.ok { "ok" } else { "has problems" };
            writeln!(
                std::io::stdout().lock(),
                "platform {} {verdict}",
                report.platform
            )?;
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
