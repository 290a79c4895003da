//! `bess env …`: environments of a platform.

use super::output::{Table, json};
use crate::ops::{self, EnvInitRequest, EnvironmentView, Repo};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Manage environments: init, up, halt, status, reload, ssh, logs, update, destroy.
///
/// An environment is one instance of a platform, named after a ticket
/// (`PROJ-42` becomes `proj-42`). It has a workspace in
/// <repo>/envs/<platform>/<env>/ (the platform's files with every -dist
/// template rendered, etc/bess/variables.json, a Vagrantfile), an address
/// per machine, and a read-only user of `bess serve` for its channel.
/// `env up` starts its machines (provider nspawn by default) and
/// provisions them from the environment's channel.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    Init(InitArgs),
    List(ListArgs),
    /// Show an environment: state, channel, sites, machines and their addresses, packages
    Show(EnvArgs),
    /// Print the URLs of an environment's homepage, sites and tools
    Urls(EnvArgs),
    Up(UpArgs),
    Halt(MachineArgs),
    Status(EnvArgs),
    Reload(MachineArgs),
    Ssh(SshArgs),
    Logs(LogsArgs),
    Inventory(InventoryArgs),
    Update(UpdateArgs),
    Destroy(DestroyArgs),
}

/// Update an environment's packages the way operators update an instance.
///
/// Per machine that installs packages: its `backup` hook, its services
/// stopped, the channel's newest versions (or the exact PACKAGE=VERSION
/// given) installed, its `migrate` hook, the services started, and its
/// `check` hook (an HTTP check of each of its sites when it has none).
/// If a step fails, the versions installed before are installed again, the
/// `restore` hook runs, and bess exits non-zero saying which step failed.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess env update paas 1161\n  bess env update paas 1161 myapp=1.1"
)]
pub struct UpdateArgs {
    /// Platform name
    platform: String,
    /// Environment name
    env: String,
    /// Exact versions, as PACKAGE=VERSION [default: the channel's newest]
    pins: Vec<String>,
    /// Print what happened to each machine as JSON
    #[arg(long)]
    json: bool,
}

/// Start an environment's machines and provision those never provisioned.
///
/// Each machine's image is the newest version of its box in the
/// environment's channel, downloaded from `bess serve` with the
/// environment's credential (so `bess serve` must run and machines must
/// reach it: [serve] listen, or [environments] repo-url). Provisioning, in
/// order: the apt source of the channel with its key and credential,
/// apt-get install of the machine's packages, the rendered files copied
/// in, the platform's shell scripts and Ansible playbooks. A machine that
/// fails leaves the environment `failed`; `bess env reload` retries.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess env up paas 1161\n  bess env up paas 1161 web     # one machine\n  bess env status paas 1161"
)]
pub struct UpArgs {
    /// Platform name
    platform: String,
    /// Environment name
    env: String,
    /// Only this machine [default: all]
    machine: Option<String>,
    /// Print what happened to each machine as JSON
    #[arg(long)]
    json: bool,
}

/// Machines of an environment: all, or one.
#[derive(Debug, Args)]
pub struct MachineArgs {
    /// Platform name
    platform: String,
    /// Environment name
    env: String,
    /// Only this machine [default: all]
    machine: Option<String>,
    /// Print what happened to each machine as JSON
    #[arg(long)]
    json: bool,
}

/// Open a shell as root in a machine, or run a command there, over SSH.
///
/// bess uses the environment's own key (etc/bess/ssh/ in its workspace);
/// the machine's host key is remembered on first use.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess env ssh paas 1161 web\n  bess env ssh paas 1161 web -- dpkg -l myapp"
)]
pub struct SshArgs {
    /// Platform name
    platform: String,
    /// Environment name
    env: String,
    /// Machine name
    machine: String,
    /// The command to run instead of a shell
    #[arg(last = true)]
    command: Vec<String>,
}

/// Print a machine's journal, or one unit's.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess env logs paas 1161 web\n  bess env logs paas 1161 web nginx --lines 50"
)]
pub struct LogsArgs {
    /// Platform name
    platform: String,
    /// Environment name
    env: String,
    /// Machine name
    machine: String,
    /// A systemd unit (nginx, myapp.service) [default: the whole journal]
    unit: Option<String>,
    /// How many of the last lines
    #[arg(long, default_value_t = 200)]
    lines: u32,
}

/// Print the environment as Ansible's JSON inventory (an inventory script's --list).
///
/// Hosts are the machines (a group each), with their address, user root,
/// the environment's SSH key, and every variable of the environment as
/// `bess`. bess runs a platform's `ansible` steps against it.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  bess env inventory paas 1161 > inventory.json")]
pub struct InventoryArgs {
    /// Platform name
    platform: String,
    /// Environment name
    env: String,
    /// Accepted for symmetry: the inventory is always JSON
    #[arg(long)]
    json: bool,
}

/// Create an environment: workspace, addresses, credential, rendered templates.
///
/// Either all of it is made or none: a failure (or a kill) leaves nothing
/// behind once the next bess command has run.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bess env init paas 1161\n  bess env init paas PROJ-42 --sites v5,api --channel prod\n  bess host bind-proxy paas 1161          # then route its names on this host"
)]
pub struct InitArgs {
    /// Platform name (see `bess platform list`)
    platform: String,
    /// Environment name, usually a ticket id
    env: String,
    /// Sites to include, comma-separated [default: all of the platform's]
    #[arg(long, value_delimiter = ',', value_name = "SITES")]
    sites: Option<Vec<String>>,
    /// Channel to install packages from [default: the platform's]
    #[arg(long)]
    channel: Option<String>,
    /// Print the environment as JSON
    #[arg(long)]
    json: bool,
}

/// List environments with their sites.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this platform's
    #[arg(long)]
    platform: Option<String>,
    /// Print a JSON array of environments
    #[arg(long)]
    json: bool,
}

/// One environment.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// Platform name
    platform: String,
    /// Environment name (a ticket id such as PROJ-42 finds proj-42)
    env: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Remove an environment: its machines, network, proxy routes, workspace, addresses and user.
#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Platform name
    platform: String,
    /// Environment name
    env: String,
}

pub fn run(dir: &Path, command: EnvCommand) -> anyhow::Result<ExitCode> {
    let mut repo = Repo::open(dir)?;
    // Whatever a killed bess left half done is finished first.
    crate::ops::recover(&mut repo)?;
    match command {
        EnvCommand::Init(args) => init(&mut repo, args)?,
        EnvCommand::List(args) => {
            let envs = ops::list_environments(&repo, args.platform.as_deref())?;
            print_list(&envs, args.json)?;
        }
        EnvCommand::Show(args) => {
            let view = ops::show_environment(&repo, &args.platform, &args.env)?;
            if args.json {
                json(&view)?;
            } else {
                print_environment(&repo, &view)?;
            }
        }
        EnvCommand::Urls(args) => urls(&repo, &args)?,
        EnvCommand::Up(args) => {
            let outcomes = ops::env_up(
                &mut repo,
                &args.platform,
                &args.env,
                args.machine.as_deref(),
                false,
            )?;
            print_outcomes(&outcomes, args.json)?;
        }
        EnvCommand::Reload(args) => {
            let outcomes = ops::env_up(
                &mut repo,
                &args.platform,
                &args.env,
                args.machine.as_deref(),
                true,
            )?;
            print_outcomes(&outcomes, args.json)?;
        }
        EnvCommand::Halt(args) => {
            let outcomes = ops::env_halt(
                &mut repo,
                &args.platform,
                &args.env,
                args.machine.as_deref(),
            )?;
            print_outcomes(&outcomes, args.json)?;
        }
        EnvCommand::Status(args) => status(&mut repo, &args)?,
        EnvCommand::Ssh(args) => return ssh(&mut repo, &args),
        EnvCommand::Logs(args) => {
            let text = ops::machine_logs(
                &mut repo,
                &args.platform,
                &args.env,
                &args.machine,
                args.unit.as_deref(),
                args.lines,
            )?;
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
        EnvCommand::Inventory(args) => {
            let _ = args.json;
            json(&ops::env_inventory(&mut repo, &args.platform, &args.env)?)?;
        }
        EnvCommand::Update(args) => {
            let outcomes = ops::env_update(&mut repo, &args.platform, &args.env, &args.pins)?;
            print_updates(&outcomes, args.json)?;
        }
        EnvCommand::Destroy(args) => {
            ops::destroy_environment(&mut repo, &args.platform, &args.env)?;
            if super::progress::chatty() {
                let name = crate::env::names::environment_name(&args.env)?;
                writeln!(
                    std::io::stdout().lock(),
                    "destroyed environment {}/{name}",
                    args.platform
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn init(repo: &mut Repo, args: InitArgs) -> anyhow::Result<()> {
    let request = EnvInitRequest {
        platform: args.platform,
        name: args.env,
        sites: args.sites,
        channel: args.channel,
    };
    let view = ops::init_environment(repo, &request)?;
    if args.json {
        return Ok(json(&view)?);
    }
    writeln!(
        std::io::stdout().lock(),
        "created environment {}/{}",
        view.platform,
        view.name
    )?;
    print_environment(repo, &view)
}

fn print_outcomes(outcomes: &[ops::MachineOutcome], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return Ok(json(outcomes)?);
    }
    let mut table = Table::new(vec!["MACHINE", "IP", "STATE", "PROVISIONED"]);
    for o in outcomes {
        let provisioned = if o.provisioned { "yes" } else { "-" };
        table.row(vec![
            o.machine.clone(),
            o.ip.clone(),
            o.state.clone(),
            provisioned.into(),
        ]);
    }
    Ok(table.print()?)
}

fn print_updates(outcomes: &[ops::UpdateOutcome], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return Ok(json(outcomes)?);
    }
    let versions = |m: &std::collections::BTreeMap<String, String>| {
        let list: Vec<String> = m.iter().map(|(p, v)| format!("{p}={v}")).collect();
        list.join(" ")
    };
    let mut table = Table::new(vec!["MACHINE", "FROM", "TO", "RESULT"]);
    for o in outcomes {
        table.row(vec![
            o.machine.clone(),
            versions(&o.from),
            versions(&o.to),
            o.result.clone(),
        ]);
    }
    Ok(table.print()?)
}

fn status(repo: &mut Repo, args: &EnvArgs) -> anyhow::Result<()> {
    let status = ops::env_status(repo, &args.platform, &args.env)?;
    if args.json {
        return Ok(json(&status)?);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "environment {}/{}: {}",
        status.platform, status.name, status.state
    )?;
    if let Some(p) = &status.provisioned {
        writeln!(out, "provisioned {}: {}", p.at, p.result)?;
    }
    drop(out);
    let mut table = Table::new(vec!["MACHINE", "IP", "STATE", "RUNS", "PROVIDER"]);
    for m in &status.machines {
        table.row(vec![
            m.name.clone(),
            m.ip.clone(),
            m.state.clone(),
            m.observed.name().into(),
            m.provider.clone(),
        ]);
    }
    table.print()?;
    let mut steps = Table::new(vec!["MACHINE", "STEP", "STATUS", "FINISHED"]);
    for s in &status.steps {
        steps.row(vec![
            s.machine.clone(),
            s.step.clone(),
            s.status.clone(),
            s.finished.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    writeln!(std::io::stdout().lock())?;
    steps.print()?;
    for s in status.steps.iter().filter(|s| s.status == "failed") {
        writeln!(
            std::io::stdout().lock(),
            "\n{} / {} failed:\n{}",
            s.machine,
            s.step,
            s.output
        )?;
    }
    Ok(())
}

/// Runs ssh with the environment's key; its exit code is bess's.
fn ssh(repo: &mut Repo, args: &SshArgs) -> anyhow::Result<ExitCode> {
    let ssh_args = ops::ssh_command(
        repo,
        &args.platform,
        &args.env,
        &args.machine,
        &args.command,
    )?;
    let status = std::process::Command::new("ssh")
        .args(&ssh_args)
        .status()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run ssh ({e}); install it with `apt-get install openssh-client`"
            )
        })?;
    Ok(ExitCode::from(
        status.code().unwrap_or(255).clamp(0, 255) as u8
    ))
}

fn urls(repo: &Repo, args: &EnvArgs) -> anyhow::Result<()> {
    if args.json {
        return Ok(json(&ops::environment_urls(
            repo,
            &args.platform,
            &args.env,
        )?)?);
    }
    // In platform.toml's order: sites, then tools.
    let view = ops::show_environment(repo, &args.platform, &args.env)?;
    let mut table = Table::new(vec!["NAME", "URL"]);
    table.row(vec!["homepage".into(), view.homepage_url.clone()]);
    for site in view.sites.iter().chain(&view.tools) {
        table.row(vec![site.name.clone(), site.url.clone()]);
    }
    Ok(table.print()?)
}

fn print_environment(repo: &Repo, view: &EnvironmentView) -> anyhow::Result<()> {
    let workspace = repo.config.layout.root().join(&view.workspace);
    let proxy = if view.bound {
        "bound on this host".to_string()
    } else {
        format!(
            "not bound (`bess host bind-proxy {} {}`)",
            view.platform, view.name
        )
    };
    for (key, value) in [
        ("state", view.state.clone()),
        ("channel", view.channel.clone()),
        ("homepage", view.homepage_url.clone()),
        ("workspace", workspace.display().to_string()),
        (
            "user",
            format!(
                "{} (password in {}/etc/bess/password)",
                view.user,
                workspace.display()
            ),
        ),
        ("proxy", proxy),
        ("created", view.created.clone()),
    ] {
        writeln!(std::io::stdout().lock(), "{key:<10} {value}")?;
    }
    let mut sites = Table::new(vec!["SITE", "URL", "MACHINE", "PORT"]);
    for s in view.sites.iter().chain(&view.tools) {
        sites.row(vec![
            s.name.clone(),
            s.url.clone(),
            s.machine.clone(),
            s.port.to_string(),
        ]);
    }
    writeln!(std::io::stdout().lock())?;
    sites.print()?;
    let mut machines = Table::new(vec!["MACHINE", "IP", "STATE", "BOX"]);
    for m in &view.machines {
        machines.row(vec![
            m.name.clone(),
            m.ip.clone(),
            m.state.clone(),
            m.box_name.clone(),
        ]);
    }
    writeln!(std::io::stdout().lock())?;
    machines.print()?;
    if !view.packages.is_empty() {
        let mut packages = Table::new(vec!["PACKAGE", "MACHINE", "INSTALLED", "AVAILABLE"]);
        let none = || "-".to_string();
        for p in &view.packages {
            packages.row(vec![
                p.package.clone(),
                p.machine.clone(),
                p.installed.clone().unwrap_or_else(none),
                p.available
                    .clone()
                    .map_or_else(none, |v| format!("{v} ({})", p.channel)),
            ]);
        }
        writeln!(std::io::stdout().lock())?;
        packages.print()?;
    }
    Ok(())
}

fn print_list(envs: &[EnvironmentView], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return Ok(json(envs)?);
    }
    let mut table = Table::new(vec![
        "PLATFORM", "ENV", "STATE", "CHANNEL", "CREATED", "SITES",
    ]);
    for e in envs {
        let sites: Vec<&str> = e.sites.iter().map(|s| s.name.as_str()).collect();
        table.row(vec![
            e.platform.clone(),
            e.name.clone(),
            e.state.clone(),
            e.channel.clone(),
            e.created.clone(),
            sites.join(","),
        ]);
    }
    Ok(table.print()?)
}
