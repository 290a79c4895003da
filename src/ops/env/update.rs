//! `bess env update`: how operators update an application instance, per
//! machine that installs packages from the channel:
//!
//! 1. the `backup` hook;
//! 2. its `services` stopped;
//! 3. the channel's newest versions (or the exact ones given) installed;
//! 4. the `migrate` hook;
//! 5. the services started;
//! 6. the `check` hook, or an HTTP check of each of its sites without one.
//!
//! If a step fails, the versions installed before are installed again
//! (bess keeps every version, so they are still in the channel), the
//! `restore` hook runs and the services start; the update is reported as
//! failed with the step and its output. `bess log` has `env.update` and
//! `env.rollback` entries with the versions.

use super::super::audit::record;
use super::machines::{FAILED, Fleet, UP};
use super::provision::{StepLog, installed_versions, record_installed, run_script};
use super::{lock_env, lock_platform_shared, recover::recover, require_environment};
use crate::env::platform::MachineSpec;
use crate::env::provider::Machine;
use crate::ops::{OpsError, Repo};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

/// Set while `env update` works; a process that dies leaves it `failed`.
pub const UPDATING: &str = "updating";

/// What `env update` did in one machine.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateOutcome {
    pub machine: String,
    /// Versions before.
    pub from: BTreeMap<String, String>,
    /// Versions asked for.
    pub to: BTreeMap<String, String>,
    /// `updated`, `unchanged` or `rolled-back`.
    pub result: String,
    /// The step that failed, and why.
    pub error: Option<String>,
}

/// Updates every machine's packages to the channel's newest versions,
/// or to the `package=version` pins given.
pub fn env_update(
    repo: &mut Repo,
    platform: &str,
    env: &str,
    pins: &[String],
) -> Result<Vec<UpdateOutcome>, OpsError> {
    recover(repo)?;
    let row = require_environment(repo, platform, env)?;
    let _platform_lock = lock_platform_shared(repo, platform)?;
    let _env_lock = lock_env(repo, platform, &row.name)?;
    let row = require_environment(repo, platform, env)?;
    if row.state != UP {
        return Err(OpsError::Conflict(format!(
            "environment {platform}/{} is {}; updates need it up (`bess env up {platform} {}`)",
            row.name, row.state, row.name
        )));
    }
    let fleet = Fleet::load(repo, &row)?;
    let pins = parse_pins(&fleet, pins)?;
    set_env_state(repo, &fleet, UPDATING)?;
    let mut outcomes = Vec::new();
    for m in fleet.rows.clone() {
        let Some(spec) = fleet.spec.machine(&m.name).cloned() else {
            continue;
        };
        if spec.packages.is_empty() {
            continue;
        }
        let machine = fleet.machine(&m, std::path::PathBuf::new());
        let outcome = update_machine(repo, &fleet, &machine, &spec, &pins)?;
        outcomes.push(outcome);
    }
    set_env_state(repo, &fleet, UP)?;
    failures(&fleet, outcomes)
}

fn set_env_state(repo: &mut Repo, fleet: &Fleet, state: &str) -> Result<(), OpsError> {
    let writer = repo.catalog.write()?;
    writer.set_environment_state(&fleet.env.platform, &fleet.env.name, state)?;
    Ok(writer.commit()?)
}

/// `package=version` pins, each naming a package some machine installs.
fn parse_pins(fleet: &Fleet, pins: &[String]) -> Result<BTreeMap<String, String>, OpsError> {
    let mut parsed = BTreeMap::new();
    for pin in pins {
        let Some((package, version)) = pin.split_once('=') else {
            return Err(OpsError::Usage(format!(
                "`{pin}`: name an exact version as PACKAGE=VERSION (see `bess list PACKAGE`)"
            )));
        };
        let known = fleet
            .spec
            .machines
            .iter()
            .any(|m| m.packages.iter().any(|p| p == package));
        if !known {
            return Err(OpsError::Usage(format!(
                "`{pin}`: no machine of {}/{} installs {package} (platform.toml's packages)",
                fleet.env.platform, fleet.env.name
            )));
        }
        parsed.insert(package.to_string(), version.to_string());
    }
    Ok(parsed)
}

/// The versions a machine's packages should have after the update.
fn targets(
    repo: &Repo,
    fleet: &Fleet,
    spec: &MachineSpec,
    pins: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, OpsError> {
    let vars = super::provision::variables_of(fleet)?;
    let dist = vars["machines"][&spec.name]["dist"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut targets = BTreeMap::new();
    for package in &spec.packages {
        let version = match pins.get(package) {
            Some(version) => Some(version.clone()),
            None => super::view::newest_in(repo, package, &fleet.env.channel, &dist)?,
        };
        let version = version.ok_or_else(|| {
            OpsError::NotFound(format!(
                "package {package} is not in channel {} for {dist}",
                fleet.env.channel
            ))
        })?;
        targets.insert(package.clone(), version);
    }
    Ok(targets)
}

fn update_machine(
    repo: &mut Repo,
    fleet: &Fleet,
    m: &Machine,
    spec: &MachineSpec,
    pins: &BTreeMap<String, String>,
) -> Result<UpdateOutcome, OpsError> {
    let to = targets(repo, fleet, spec, pins)?;
    let from: BTreeMap<String, String> = installed_versions(fleet, m, &spec.packages)?
        .into_iter()
        .collect();
    let mut outcome = UpdateOutcome {
        machine: m.name.clone(),
        from: from.clone(),
        to: to.clone(),
        result: "unchanged".into(),
        error: None,
    };
    if from == to {
        // Nothing to install; but an update killed after its install may
        // have left the services stopped and the record behind.
        start_services(fleet, m, spec)?;
        record_installed(repo, fleet, m, &spec.packages)?;
        return Ok(outcome);
    }
    let mut log = StepLog::begin(repo, fleet, &m.name)?;
    let applied = apply(repo, &mut log, fleet, m, spec, &to);
    record_installed(repo, fleet, m, &spec.packages)?;
    outcome.result = "updated".into();
    if let Err(error) = applied {
        outcome.error = Some(error.to_string());
        outcome.result = "rolled-back".into();
        let rolled = roll_back(repo, &mut log, fleet, m, spec, &from);
        record_installed(repo, fleet, m, &spec.packages)?;
        if let Err(again) = rolled {
            outcome.result = FAILED.into();
            outcome.error = Some(format!("{error}\nand the rollback failed too: {again}"));
        }
    }
    audit(repo, fleet, &outcome)?;
    Ok(outcome)
}

/// Backup, stop, install, migrate, start, check.
fn apply(
    repo: &mut Repo,
    log: &mut StepLog,
    fleet: &Fleet,
    m: &Machine,
    spec: &MachineSpec,
    to: &BTreeMap<String, String>,
) -> Result<(), OpsError> {
    if let Some(hook) = &spec.hooks.backup {
        log.step(repo, &format!("backup {hook}"), || {
            run_script(fleet, m, hook)
        })?;
    }
    services(repo, log, fleet, m, spec, "stop")?;
    install(repo, log, fleet, m, to)?;
    if let Some(hook) = &spec.hooks.migrate {
        log.step(repo, &format!("migrate {hook}"), || {
            run_script(fleet, m, hook)
        })?;
    }
    services(repo, log, fleet, m, spec, "start")?;
    match &spec.hooks.check {
        Some(hook) => log.step(repo, &format!("check {hook}"), || {
            run_script(fleet, m, hook)
        }),
        None => log.step(repo, "check sites over HTTP", || check_sites(fleet, m)),
    }
}

/// The previous versions again, the restore hook, the services started.
fn roll_back(
    repo: &mut Repo,
    log: &mut StepLog,
    fleet: &Fleet,
    m: &Machine,
    spec: &MachineSpec,
    from: &BTreeMap<String, String>,
) -> Result<(), OpsError> {
    install(repo, log, fleet, m, from)?;
    if let Some(hook) = &spec.hooks.restore {
        log.step(repo, &format!("restore {hook}"), || {
            run_script(fleet, m, hook)
        })?;
    }
    services(repo, log, fleet, m, spec, "start")
}

fn services(
    repo: &mut Repo,
    log: &mut StepLog,
    fleet: &Fleet,
    m: &Machine,
    spec: &MachineSpec,
    verb: &str,
) -> Result<(), OpsError> {
    if spec.services.is_empty() {
        return Ok(());
    }
    let script = format!("systemctl {verb} {}", spec.services.join(" "));
    let provider = fleet.provider.as_ref();
    log.step(repo, &script.clone(), || {
        let out = provider.run(m, &script, &[])?;
        out.check(&format!("{script} in machine {}", m.name))?;
        Ok(out.output)
    })
}

/// `systemctl start` of the machine's services, outside any step log.
fn start_services(fleet: &Fleet, m: &Machine, spec: &MachineSpec) -> Result<(), OpsError> {
    if spec.services.is_empty() {
        return Ok(());
    }
    let script = format!("systemctl start {}", spec.services.join(" "));
    let out = fleet.provider.run(m, &script, &[])?;
    out.check(&format!("{script} in machine {}", m.name))?;
    Ok(())
}

fn install(
    repo: &mut Repo,
    log: &mut StepLog,
    fleet: &Fleet,
    m: &Machine,
    versions: &BTreeMap<String, String>,
) -> Result<(), OpsError> {
    let wanted: Vec<String> = versions.iter().map(|(p, v)| format!("{p}={v}")).collect();
    // An update whose bess was killed may have left apt running (it
    // outlives bess in the machine, and apt-get update takes no lock
    // timeout) or dpkg half done: wait up to 5 minutes for the one, finish
    // the other, then install.
    let script = format!(
        "n=0; while grep -qsxE 'apt-get|dpkg' /proc/[0-9]*/comm && [ $n -lt 300 ]; do \
         sleep 1; n=$((n + 1)); done; \
         dpkg --configure -a && apt-get update -q --error-on=any \
         && apt-get install -y -q --allow-downgrades \
         -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {}",
        wanted.join(" ")
    );
    let provider = fleet.provider.as_ref();
    let label = format!("apt-get install {}", wanted.join(" "));
    log.step(repo, &label, || {
        let out = provider.run(m, &script, &[])?;
        out.check(&format!("apt-get install in machine {}", m.name))?;
        Ok(out.output)
    })
}

/// GET each site of the machine at its address with its host name; any
/// answer below 400 passes. A service just started gets a few tries.
fn check_sites(fleet: &Fleet, m: &Machine) -> Result<String, OpsError> {
    let vars = super::provision::variables_of(fleet)?;
    let mut report = Vec::new();
    let sites = vars["sites"].as_object().cloned().unwrap_or_default();
    for (name, site) in sites {
        if site["machine"].as_str() != Some(m.name.as_str()) {
            continue;
        }
        let port = site["port"].as_u64().unwrap_or(80) as u16;
        let (host, path) = (
            site["host"].as_str().unwrap_or(""),
            site["path"].as_str().unwrap_or("/"),
        );
        let mut status = http_status(m, port, host, path);
        for _ in 0..20 {
            if matches!(status, Ok(code) if code < 400) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
            status = http_status(m, port, host, path);
        }
        let line = format!(
            "{name}: GET http://{}:{port}{path} (Host: {host})",
            m.address
        );
        match status {
            Ok(code) if code < 400 => report.push(format!("{line} answered {code}")),
            Ok(code) => return Err(check_failed(&name, &format!("{line} answered {code}"))),
            Err(e) => return Err(check_failed(&name, &format!("{line}: {e}"))),
        }
    }
    Ok(report.join("\n"))
}

fn check_failed(site: &str, what: &str) -> OpsError {
    OpsError::Conflict(format!("the check of site {site} failed: {what}"))
}

/// The status code of a plain HTTP/1.0 GET.
fn http_status(m: &Machine, port: u16, host: &str, path: &str) -> std::io::Result<u16> {
    let address = std::net::SocketAddr::from((m.address, port));
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    text.get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))
}

fn audit(repo: &mut Repo, fleet: &Fleet, outcome: &UpdateOutcome) -> Result<(), OpsError> {
    let action = if outcome.error.is_some() {
        "env.rollback"
    } else {
        "env.update"
    };
    let writer = repo.catalog.write()?;
    let detail = json!({
        "platform": fleet.env.platform, "environment": fleet.env.name,
        "machine": outcome.machine, "from": outcome.from, "to": outcome.to,
        "result": outcome.result, "error": outcome.error,
    });
    record(&writer, &repo.actor, action, detail)?;
    Ok(writer.commit()?)
}

fn failures(fleet: &Fleet, outcomes: Vec<UpdateOutcome>) -> Result<Vec<UpdateOutcome>, OpsError> {
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            let error = o.error.as_ref()?;
            let back: Vec<String> = o.from.iter().map(|(p, v)| format!("{p} {v}")).collect();
            Some(format!(
                "machine {}: {error}\n{} to {}",
                o.machine,
                if o.result == "rolled-back" {
                    "rolled back"
                } else {
                    "could not roll back"
                },
                back.join(", ")
            ))
        })
        .collect();
    if failed.is_empty() {
        return Ok(outcomes);
    }
    Err(OpsError::Conflict(format!(
        "the update of {}/{} failed:\n{}",
        fleet.env.platform,
        fleet.env.name,
        failed.join("\n")
    )))
}
