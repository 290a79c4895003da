//! Reaching an environment's machines: `bess env ssh` (the environment's
//! own SSH key; every provider's machines answer SSH at their address),
//! `bess env logs` (the machine's journal) and `bess env inventory`
//! (Ansible's JSON inventory).

use super::machines::{Fleet, UP};
use super::provision::{inventory, ssh_options};
use super::{recover::recover, require_environment};
use crate::ops::{OpsError, Repo};
use std::path::PathBuf;

/// The `ssh` arguments that open a shell (or run `command`) as root in a machine.
pub fn ssh_command(
    repo: &mut Repo,
    platform: &str,
    env: &str,
    machine: &str,
    command: &[String],
) -> Result<Vec<String>, OpsError> {
    recover(repo)?;
    let row = require_environment(repo, platform, env)?;
    let fleet = Fleet::load(repo, &row)?;
    let m = machine_row(&fleet, machine)?;
    if !fleet.ssh_key().exists() {
        return Err(OpsError::Conflict(format!(
            "environment {platform}/{} has never been up; run `bess env up {platform} {}` first",
            row.name, row.name
        )));
    }
    let mut args = ssh_options(&fleet);
    args.push(format!("root@{}", m.address));
    if !command.is_empty() {
        args.push("--".into());
        args.extend(command.iter().cloned());
    }
    Ok(args)
}

/// The machine's journal, or one unit's: its last `lines` lines.
pub fn machine_logs(
    repo: &mut Repo,
    platform: &str,
    env: &str,
    machine: &str,
    unit: Option<&str>,
    lines: u32,
) -> Result<String, OpsError> {
    recover(repo)?;
    let row = require_environment(repo, platform, env)?;
    let fleet = Fleet::load(repo, &row)?;
    let m = fleet.machine(&machine_row(&fleet, machine)?, PathBuf::new());
    let mut script = format!("journalctl --no-pager --lines={lines}");
    if let Some(unit) = unit {
        script.push_str(" --unit=");
        script.push_str(&crate::env::provider::command::quote(unit));
    }
    let out = fleet.provider.run(&m, &script, &[])?;
    out.check(&format!("journalctl in machine {machine}"))?;
    Ok(out.stdout)
}

/// `bess env inventory`.
pub fn env_inventory(
    repo: &mut Repo,
    platform: &str,
    env: &str,
) -> Result<serde_json::Value, OpsError> {
    recover(repo)?;
    let row = require_environment(repo, platform, env)?;
    inventory(&Fleet::load(repo, &row)?)
}

fn machine_row(fleet: &Fleet, machine: &str) -> Result<crate::catalog::MachineRow, OpsError> {
    let found = fleet.rows.iter().find(|r| r.name == machine).cloned();
    let row = found.ok_or_else(|| {
        let names: Vec<&str> = fleet.rows.iter().map(|r| r.name.as_str()).collect();
        OpsError::NotFound(format!(
            "environment {}/{} has no machine `{machine}` (its machines: {})",
            fleet.env.platform,
            fleet.env.name,
            names.join(", ")
        ))
    })?;
    if row.state != UP && row.state != super::machines::FAILED {
        return Err(OpsError::Conflict(format!(
            "machine {machine} of {}/{} is {}; start it with `bess env up {} {}`",
            fleet.env.platform, fleet.env.name, row.state, fleet.env.platform, fleet.env.name
        )));
    }
    Ok(row)
}
