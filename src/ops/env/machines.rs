//! An environment's machines on this host: `bess env up|halt|status|reload`
//! and `bess platform up|halt`, and their teardown when the environment
//! goes.
//!
//! States (environment and machines alike) change only while the
//! environment's lock is held: `starting` while `env up` or `env reload`
//! works, then `up` or `failed`; `halted` after `env halt`. An
//! environment left `starting` by a process that died is marked `failed`
//! by the next command (see `recover`), and `env up` finishes it: every
//! step of bringing a machine up is idempotent.

use super::super::audit::record;
use super::provision::{needs_provisioning, provision};
use super::{
    lock_env, lock_platform_shared, range_of, recover::recover, require_environment,
    require_platform, stored_spec, workspace,
};
use crate::catalog::{EnvironmentRow, MachineRow, now};
use crate::env::platform::PlatformSpec;
use crate::env::provider::{self, EnvNetwork, Machine, MachineState, Program, Provider};
use crate::ops::{OpsError, Repo};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Set while `env up` or `env reload` works.
pub const STARTING: &str = "starting";
/// Every machine runs and was provisioned.
pub const UP: &str = "up";
/// Stopped by `env halt`.
pub const HALTED: &str = "halted";
/// A machine could not be started or provisioned; `env reload` retries.
pub const FAILED: &str = "failed";

/// An environment's machines and what drives them.
pub(crate) struct Fleet {
    pub env: EnvironmentRow,
    pub spec: PlatformSpec,
    pub rows: Vec<MachineRow>,
    pub network: EnvNetwork,
    pub provider: Box<dyn Provider>,
    /// The workspace root.
    pub workspace: PathBuf,
    /// `<repo>/machines/<platform>/<env>`.
    pub dir: PathBuf,
    instance: String,
}

impl Fleet {
    /// The machines of `env` as the catalog lists them.
    pub fn load(repo: &Repo, env: &EnvironmentRow) -> Result<Fleet, OpsError> {
        let platform = require_platform(repo, &env.platform)?;
        let spec = stored_spec(&env.spec)?;
        let range = range_of(&platform)?;
        let instance = instance_id(repo.config.layout.root());
        let netns = format!("{instance}.{}.{}", env.platform, env.name);
        Ok(Fleet {
            rows: repo.catalog.reader().machines(&env.platform, &env.name)?,
            network: EnvNetwork::new(&netns, range.host_address(), range.prefix()),
            provider: provider::provider(&spec.provider)?,
            workspace: workspace(repo, &env.platform, &env.name)
                .root()
                .to_path_buf(),
            dir: machines_root(repo).join(&env.platform).join(&env.name),
            env: env.clone(),
            spec,
            instance,
        })
    }

    /// Machine `name` as its provider sees it, its image at `image`.
    pub fn machine(&self, row: &MachineRow, image: PathBuf) -> Machine {
        let declared = self.spec.machine(&row.name);
        Machine {
            id: format!(
                "{}.{}.{}.{}",
                self.instance, self.env.platform, self.env.name, row.name
            ),
            name: row.name.clone(),
            dir: self.dir.join(&row.name),
            image,
            address: row.address,
            network: self.network.clone(),
            memory: declared.map_or(512, |d| d.memory),
            cpus: declared.map_or(1, |d| d.cpus),
            ssh_public_key: std::fs::read_to_string(self.ssh_key().with_extension("pub"))
                .unwrap_or_default(),
            ssh_key: self.ssh_key(),
            workspace: self.workspace.clone(),
        }
    }

    /// The environment's SSH private key (`.pub` beside it).
    pub fn ssh_key(&self) -> PathBuf {
        self.workspace.join("etc/bess/ssh/id_ed25519")
    }

    /// The known_hosts file `bess env ssh` and Ansible use.
    pub fn known_hosts(&self) -> PathBuf {
        self.workspace.join("etc/bess/ssh/known_hosts")
    }

    /// The rows of the machines asked for: one, or all.
    fn chosen(&self, machine: Option<&str>) -> Result<Vec<MachineRow>, OpsError> {
        let Some(name) = machine else {
            return Ok(self.rows.clone());
        };
        let found = self.rows.iter().find(|r| r.name == name).cloned();
        found.map(|r| vec![r]).ok_or_else(|| {
            let names: Vec<&str> = self.rows.iter().map(|r| r.name.as_str()).collect();
            OpsError::NotFound(format!(
                "environment {}/{} has no machine `{name}` (its machines: {})",
                self.env.platform,
                self.env.name,
                names.join(", ")
            ))
        })
    }
}

/// `bess-` and 8 hex digits of the repository's path: names on the host
/// (network namespaces, cgroups) of two repositories never meet.
fn instance_id(root: &Path) -> String {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
    format!("bess-{}", &hex::encode(digest)[..8])
}

/// `<repo>/machines`: overlays, disks and process files of machines.
pub(crate) fn machines_root(repo: &Repo) -> PathBuf {
    repo.config.layout.root().join("machines")
}

/// What `env up`, `env halt` or `env reload` did to each machine.
#[derive(Debug, Clone, Serialize)]
pub struct MachineOutcome {
    pub machine: String,
    pub ip: String,
    /// `up`, `halted` or `failed`.
    pub state: String,
    /// Whether it was provisioned this time.
    pub provisioned: bool,
    /// Why it failed.
    pub error: Option<String>,
}

/// Starts an environment's machines (or one), provisioning those never
/// provisioned successfully, or all of them when `reprovision`.
pub fn env_up(
    repo: &mut Repo,
    platform: &str,
    env: &str,
    machine: Option<&str>,
    reprovision: bool,
) -> Result<Vec<MachineOutcome>, OpsError> {
    let (row, outcomes) = bring_up_env(repo, platform, env, machine, reprovision)?;
    failures(&row, outcomes)
}

/// `env up` short of its verdict: every machine's outcome, failed ones
/// included, so `platform up` can list them all.
pub(super) fn bring_up_env(
    repo: &mut Repo,
    platform: &str,
    env: &str,
    machine: Option<&str>,
    reprovision: bool,
) -> Result<(EnvironmentRow, Vec<MachineOutcome>), OpsError> {
    recover(repo)?;
    let row = require_environment(repo, platform, env)?;
    let _platform_lock = lock_platform_shared(repo, platform)?;
    let _env_lock = lock_env(repo, platform, &row.name)?;
    let row = require_environment(repo, platform, env)?;
    refuse_unfinished(&row)?;
    let fleet = Fleet::load(repo, &row)?;
    fleet.provider.check_host()?;
    let chosen = fleet.chosen(machine)?;
    if reprovision {
        super::provision::render_again(&fleet)?;
    }
    set_states(repo, &fleet, &chosen, STARTING)?;
    let mut outcomes = Vec::new();
    for m in &chosen {
        outcomes.push(bring_up(repo, &fleet, m, reprovision));
    }
    finish(
        repo,
        &fleet,
        &outcomes,
        if reprovision { "env.reload" } else { "env.up" },
    )?;
    Ok((row, outcomes))
}

/// Refuses environments being made or removed.
fn refuse_unfinished(row: &EnvironmentRow) -> Result<(), OpsError> {
    if row.state == super::CREATING || row.state == super::DESTROYING {
        return Err(OpsError::Conflict(format!(
            "environment {}/{} is {}; wait for that command to finish",
            row.platform, row.name, row.state
        )));
    }
    Ok(())
}

/// One machine: image, disk or overlay, boot, provisioning.
fn bring_up(repo: &mut Repo, fleet: &Fleet, row: &MachineRow, reprovision: bool) -> MachineOutcome {
    let mut outcome = MachineOutcome {
        machine: row.name.clone(),
        ip: row.address.to_string(),
        state: UP.into(),
        provisioned: false,
        error: None,
    };
    let result = start_machine(repo, fleet, row).and_then(|m| {
        if reprovision || needs_provisioning(&row.state) {
            outcome.provisioned = true;
            provision(repo, fleet, &m)?;
        }
        Ok(())
    });
    if let Err(error) = result {
        outcome.state = FAILED.into();
        outcome.error = Some(error.to_string());
    }
    let writer = repo.catalog.write();
    if let Ok(writer) = writer {
        let _ = writer.set_machine_state(
            &fleet.env.platform,
            &fleet.env.name,
            &row.name,
            &outcome.state,
        );
        let _ = writer.commit();
    }
    outcome
}

/// The image, the machine made from it, started.
fn start_machine(repo: &Repo, fleet: &Fleet, row: &MachineRow) -> Result<Machine, OpsError> {
    ensure_ssh_key(fleet)?;
    if fleet.provider.uses_env_network() {
        // The network first: the host reaches bess at the gateway address it gives.
        fleet.network.ensure()?;
    }
    // vagrant downloads the box the Vagrantfile names itself, into its own store.
    let image = if fleet.provider.fetches_own_image() {
        PathBuf::new()
    } else {
        catalog_image(repo, fleet, row)?
    };
    let machine = fleet.machine(row, image);
    fleet.provider.create(&machine)?;
    fleet.provider.start(&machine)?;
    Ok(machine)
}

/// The machine's box from bess's catalog, unpacked on this host.
fn catalog_image(repo: &Repo, fleet: &Fleet, row: &MachineRow) -> Result<PathBuf, OpsError> {
    let vars = super::provision::variables_of(fleet)?;
    let box_url = vars["machines"][&row.name]["box_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let password = super::provision::password_of(fleet)?;
    let image = super::fetch::machine_image(
        repo,
        &box_url,
        (&fleet.env.user, &password),
        fleet.provider.name(),
    )?;
    Ok(image.path)
}

/// The environment's SSH key pair, made on first use.
fn ensure_ssh_key(fleet: &Fleet) -> Result<(), OpsError> {
    let key = fleet.ssh_key();
    if key.exists() {
        return Ok(());
    }
    let dir = key.parent().expect("the key is in a directory");
    std::fs::create_dir_all(dir).map_err(OpsError::io("create", dir))?;
    let comment = format!("bess-env-{}-{}", fleet.env.platform, fleet.env.name);
    let path = key.to_string_lossy();
    Program::SSH_KEYGEN.run(&["-q", "-t", "ed25519", "-N", "", "-C", &comment, "-f", &path])?;
    Ok(())
}

fn set_states(
    repo: &mut Repo,
    fleet: &Fleet,
    rows: &[MachineRow],
    state: &str,
) -> Result<(), OpsError> {
    let writer = repo.catalog.write()?;
    writer.set_environment_state(&fleet.env.platform, &fleet.env.name, state)?;
    for row in rows {
        writer.set_machine_state(&fleet.env.platform, &fleet.env.name, &row.name, state)?;
    }
    Ok(writer.commit()?)
}

/// The environment's state from its machines', the provisioning result,
/// and the audit entry.
fn finish(
    repo: &mut Repo,
    fleet: &Fleet,
    outcomes: &[MachineOutcome],
    action: &str,
) -> Result<(), OpsError> {
    let rows = repo
        .catalog
        .reader()
        .machines(&fleet.env.platform, &fleet.env.name)?;
    let state = environment_state(&rows);
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.error
                .as_ref()
                .map(|e| format!("{}: {}", o.machine, first_line(e)))
        })
        .collect();
    let result = if failed.is_empty() {
        "ok".to_string()
    } else {
        format!("failed: {}", failed.join("; "))
    };
    let writer = repo.catalog.write()?;
    writer.set_environment_state(&fleet.env.platform, &fleet.env.name, state)?;
    if outcomes.iter().any(|o| o.provisioned) {
        writer.set_provisioned(&fleet.env.platform, &fleet.env.name, now(), &result)?;
    }
    let detail = json!({
        "platform": fleet.env.platform, "environment": fleet.env.name,
        "machines": outcomes, "result": result,
    });
    record(&writer, &repo.actor, action, detail)?;
    Ok(writer.commit()?)
}

/// `failed` if a machine failed, `halted` if none runs, `up` otherwise.
fn environment_state(rows: &[MachineRow]) -> &'static str {
    if rows.iter().any(|r| r.state == FAILED) {
        FAILED
    } else if rows
        .iter()
        .all(|r| r.state == HALTED || r.state == "defined")
    {
        if rows.iter().any(|r| r.state == HALTED) {
            HALTED
        } else {
            super::READY
        }
    } else {
        UP
    }
}

/// Marks an environment left `starting` by a dead process `failed`, with
/// its unfinished machines; the caller holds its lock.
pub(super) fn mark_interrupted(repo: &mut Repo, env: &EnvironmentRow) -> Result<(), OpsError> {
    let rows = repo.catalog.reader().machines(&env.platform, &env.name)?;
    let writer = repo.catalog.write()?;
    for row in rows.iter().filter(|r| r.state == STARTING) {
        writer.set_machine_state(&env.platform, &env.name, &row.name, FAILED)?;
    }
    writer.set_environment_state(&env.platform, &env.name, FAILED)?;
    let (p, e) = (&env.platform, &env.name);
    // An update may have stopped between installing and checking: the
    // machines run, but their packages are whatever apt had reached.
    let result = if env.state == super::update::UPDATING {
        format!(
            "failed: interrupted (the bess process that ran `env update` died, packages may be \
             half updated); run `bess env up {p} {e}`, then `bess env update {p} {e}` again"
        )
    } else {
        format!(
            "failed: interrupted (the bess process that ran `env up` died); run `bess env up {p} {e}` to finish"
        )
    };
    writer.set_provisioned(&env.platform, &env.name, now(), &result)?;
    let detail = json!({ "platform": env.platform, "environment": env.name, "state": env.state });
    record(&writer, &repo.actor, "env.recover", detail)?;
    Ok(writer.commit()?)
}

pub(super) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The outcomes, or an error listing the machines that failed.
pub(super) fn failures(
    env: &EnvironmentRow,
    outcomes: Vec<MachineOutcome>,
) -> Result<Vec<MachineOutcome>, OpsError> {
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.error.as_ref().map(|e| naming_machine(&o.machine, e)))
        .collect();
    if failed.is_empty() {
        return Ok(outcomes);
    }
    Err(OpsError::Conflict(format!(
        "environment {}/{} is failed:\n{}\nSee `bess env status {} {}`; fix the cause and run `bess env reload {} {}`",
        env.platform,
        env.name,
        failed.join("\n"),
        env.platform,
        env.name,
        env.platform,
        env.name
    )))
}

/// `machine NAME: error`, unless the provider's error names it already.
fn naming_machine(machine: &str, error: &str) -> String {
    let prefix = format!("machine {machine}: ");
    if error.starts_with(&prefix) {
        error.to_string()
    } else {
        format!("{prefix}{error}")
    }
}

/// Shuts an environment's machines (or one) down; their disks stay.
pub fn env_halt(
    repo: &mut Repo,
    platform: &str,
    env: &str,
    machine: Option<&str>,
) -> Result<Vec<MachineOutcome>, OpsError> {
    recover(repo)?;
    let row = require_environment(repo, platform, env)?;
    let _platform_lock = lock_platform_shared(repo, platform)?;
    let _env_lock = lock_env(repo, platform, &row.name)?;
    let row = require_environment(repo, platform, env)?;
    refuse_unfinished(&row)?;
    let fleet = Fleet::load(repo, &row)?;
    let mut outcomes = Vec::new();
    for m in fleet.chosen(machine)? {
        fleet.provider.stop(&fleet.machine(&m, PathBuf::new()))?;
        let state = if m.state == "defined" {
            "defined"
        } else {
            HALTED
        };
        let writer = repo.catalog.write()?;
        writer.set_machine_state(&row.platform, &row.name, &m.name, state)?;
        writer.commit()?;
        outcomes.push(MachineOutcome {
            machine: m.name.clone(),
            ip: m.address.to_string(),
            state: state.into(),
            provisioned: false,
            error: None,
        });
    }
    let rows = repo.catalog.reader().machines(platform, &row.name)?;
    let writer = repo.catalog.write()?;
    writer.set_environment_state(platform, &row.name, environment_state(&rows))?;
    let detail = json!({ "platform": platform, "environment": row.name, "machines": outcomes });
    record(&writer, &repo.actor, "env.halt", detail)?;
    writer.commit()?;
    Ok(outcomes)
}

/// Removes every machine of `env` and its network from this host; the
/// caller holds the environment's lock. Nothing to do is fine.
pub(super) fn teardown(repo: &Repo, env: &EnvironmentRow) -> Result<(), OpsError> {
    let dir = machines_root(repo).join(&env.platform).join(&env.name);
    let instance = instance_id(repo.config.layout.root());
    let netns = format!("{instance}.{}.{}", env.platform, env.name);
    if !dir.exists() && !provider::network::netns_exists(&netns) {
        return Ok(()); // never up on this host
    }
    let fleet = Fleet::load(repo, env)?;
    for row in &fleet.rows {
        let machine = fleet.machine(row, PathBuf::new());
        let netns = provider::network::netns_exists(&machine.netns());
        if machine.dir.exists() || netns {
            fleet.provider.destroy(&machine)?;
        }
    }
    if provider::network::netns_exists(&fleet.network.netns) {
        fleet.network.remove()?;
    }
    crate::env::workspace::remove_tree(&fleet.dir)?;
    // The platform's directory goes with its last environment.
    if let Some(parent) = fleet.dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

/// A machine as `bess env status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MachineStatus {
    pub name: String,
    pub ip: String,
    /// What bess recorded: `defined`, `starting`, `up`, `halted`, `failed`.
    pub state: String,
    /// What the provider sees now: `absent`, `stopped` or `running`.
    pub observed: MachineState,
    pub provider: String,
}

/// `bess env status`: the environment and each machine.
#[derive(Debug, Clone, Serialize)]
pub struct EnvStatus {
    pub platform: String,
    pub name: String,
    pub state: String,
    pub machines: Vec<MachineStatus>,
    pub provisioned: Option<super::view::Provisioned>,
    pub steps: Vec<super::view::StepView>,
}

/// What runs, what bess recorded, and the last provisioning's steps.
pub fn env_status(repo: &mut Repo, platform: &str, env: &str) -> Result<EnvStatus, OpsError> {
    recover(repo)?;
    let row = require_environment(repo, platform, env)?;
    let fleet = Fleet::load(repo, &row)?;
    let mut machines = Vec::new();
    for m in &fleet.rows {
        let observed = fleet.provider.state(&fleet.machine(m, PathBuf::new()))?;
        machines.push(MachineStatus {
            name: m.name.clone(),
            ip: m.address.to_string(),
            state: m.state.clone(),
            observed,
            provider: fleet.provider.name().into(),
        });
    }
    let view = super::show_environment(repo, platform, env)?;
    Ok(EnvStatus {
        platform: row.platform,
        name: row.name,
        state: row.state,
        machines,
        provisioned: view.provisioned,
        steps: view.steps,
    })
}
