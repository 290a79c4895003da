//! Provisioning a machine, in order, each step recorded (for the
//! homepage and `bess env status`) and its whole output appended to the
//! workspace's `var/log/bess/<machine>.log`:
//!
//! 1. `apt source`: the repository's key (`signed-by`), the channel's
//!    source and the environment's credential in `auth.conf.d`;
//! 2. `apt-get update`, then `apt-get install` of the machine's packages
//!    (each first looked up in the channel, so a missing one is named),
//!    and the installed versions recorded;
//! 3. `files`: every rendered template copied to the same path in the machine;
//! 4. the platform's steps: `shell` scripts run in the machine, `ansible`
//!    playbooks run from the host against `bess env inventory`.

use super::machines::Fleet;
use crate::catalog::{InstalledRow, StepRow, now};
use crate::env::provider::{Machine, Program, command::last_lines};
use crate::env::template::{install, render_all};
use crate::env::variables::KEYRING;
use crate::ops::{OpsError, Repo};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;

/// Lines of a step's output the catalog keeps (the log file has all).
const KEPT_LINES: usize = 40;

/// Where provisioning scripts are copied in a machine.
const SCRIPTS_DIR: &str = "/var/lib/bess/provision";

/// `etc/bess/variables.json` of the workspace.
pub(super) fn variables_of(fleet: &Fleet) -> Result<Value, OpsError> {
    let path = crate::env::workspace::Workspace::variables_file(&fleet.workspace);
    let text = std::fs::read(&path).map_err(OpsError::io("read", &path))?;
    serde_json::from_slice(&text)
        .map_err(|e| OpsError::Invalid(vec![format!("{}: {e}", path.display())]))
}

/// The environment's password, from its workspace.
pub(super) fn password_of(fleet: &Fleet) -> Result<String, OpsError> {
    let path = crate::env::workspace::Workspace::password_file(&fleet.workspace);
    let text = std::fs::read_to_string(&path).map_err(OpsError::io("read", &path))?;
    Ok(text.trim().to_string())
}

/// Renders the workspace's templates again (`env reload`): edits to its
/// `-dist` files take effect.
pub(super) fn render_again(fleet: &Fleet) -> Result<(), OpsError> {
    let vars = variables_of(fleet)?;
    let rendered = render_all(&fleet.workspace, &vars)?;
    Ok(install(&fleet.workspace, &rendered)?)
}

/// Whether a machine in `state` (before this command) was never provisioned
/// whole: `defined`, `failed`, or `starting` when a process died.
pub(super) fn needs_provisioning(state: &str) -> bool {
    !matches!(state, "up" | "halted")
}

/// Records steps in the catalog and the log file.
pub(super) struct StepLog {
    platform: String,
    env: String,
    machine: String,
    seq: i64,
    file: PathBuf,
}

impl StepLog {
    /// A new provisioning of `machine`: its previous steps are forgotten.
    pub(super) fn begin(
        repo: &mut Repo,
        fleet: &Fleet,
        machine: &str,
    ) -> Result<StepLog, OpsError> {
        let writer = repo.catalog.write()?;
        writer.clear_steps(&fleet.env.platform, &fleet.env.name, machine)?;
        writer.commit()?;
        let dir = fleet.workspace.join("var/log/bess");
        std::fs::create_dir_all(&dir).map_err(OpsError::io("create", &dir))?;
        Ok(StepLog {
            platform: fleet.env.platform.clone(),
            env: fleet.env.name.clone(),
            machine: machine.into(),
            seq: 0,
            file: dir.join(format!("{machine}.log")),
        })
    }

    /// Runs one step: `running`, then `ok` or `failed` with its output.
    pub(super) fn step(
        &mut self,
        repo: &mut Repo,
        label: &str,
        work: impl FnOnce() -> Result<String, OpsError>,
    ) -> Result<(), OpsError> {
        self.seq += 1;
        let mut row = StepRow {
            machine: self.machine.clone(),
            seq: self.seq,
            step: label.into(),
            status: "running".into(),
            started_at: now(),
            finished_at: None,
            output: String::new(),
        };
        self.put(repo, &row)?;
        let outcome = work();
        let output = match &outcome {
            Ok(output) => output.clone(),
            Err(error) => error.to_string(),
        };
        row.status = if outcome.is_ok() { "ok" } else { "failed" }.into();
        row.finished_at = Some(now());
        row.output = last_lines(&output, KEPT_LINES);
        self.append(label, &row.status, &output);
        self.put(repo, &row)?;
        outcome.map(drop)
    }

    fn put(&self, repo: &mut Repo, row: &StepRow) -> Result<(), OpsError> {
        let writer = repo.catalog.write()?;
        writer.put_step(&self.platform, &self.env, row)?;
        Ok(writer.commit()?)
    }

    fn append(&self, label: &str, status: &str, output: &str) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file);
        if let Ok(mut file) = file {
            let at = crate::ops::rfc3339(now());
            let _ = writeln!(file, "=== {at} {label}: {status}\n{}", output.trim_end());
        }
    }
}

/// Provisions `machine`, stopping at the first step that fails.
pub(super) fn provision(repo: &mut Repo, fleet: &Fleet, m: &Machine) -> Result<(), OpsError> {
    let spec = fleet.spec.machine(&m.name).cloned().ok_or_else(|| {
        OpsError::NotFound(format!(
            "platform.toml of the environment has no machine {}",
            m.name
        ))
    })?;
    let vars = variables_of(fleet)?;
    let key = crate::sign::KeyStore::open(repo.config.layout.root()).export_public(false)?;
    let provider = fleet.provider.as_ref();
    let mut log = StepLog::begin(repo, fleet, &m.name)?;
    log.step(repo, "apt source", || apt_source(provider, m, &vars, &key))?;
    let update = "apt-get update -q --error-on=any";
    log.step(repo, "apt-get update", || {
        run_checked(provider, m, update, "apt-get update")
    })?;
    if !spec.packages.is_empty() {
        let missing = missing_packages(repo, fleet, &vars, &m.name, &spec.packages)?;
        let label = format!("apt-get install {}", spec.packages.join(" "));
        log.step(repo, &label, || {
            install_packages(provider, m, &spec.packages, &missing)
        })?;
        record_installed(repo, fleet, m, &spec.packages)?;
    }
    log.step(repo, "files", || copy_rendered(fleet, m, &vars))?;
    for step in &spec.provision {
        if let Some(script) = &step.shell {
            let label = format!("shell {script}");
            log.step(repo, &label, || run_script(fleet, m, script))?;
        } else if let Some(playbook) = &step.ansible {
            let label = format!("ansible {playbook}");
            log.step(repo, &label, || run_playbook(fleet, m, playbook))?;
        }
    }
    Ok(())
}

/// Runs `script` in the machine and requires success; its output.
fn run_checked(
    provider: &dyn crate::env::provider::Provider,
    m: &Machine,
    script: &str,
    what: &str,
) -> Result<String, OpsError> {
    let out = provider.run(m, script, &[])?;
    out.check(&format!("{what} in machine {}", m.name))?;
    Ok(out.output)
}

fn apt_source(
    provider: &dyn crate::env::provider::Provider,
    m: &Machine,
    vars: &Value,
    key: &[u8],
) -> Result<String, OpsError> {
    let text = |name: &str| format!("{}\n", vars[name].as_str().unwrap_or_default());
    provider.copy(m, key, KEYRING, 0o644)?;
    let source = text("apt_source");
    provider.copy(
        m,
        source.as_bytes(),
        "/etc/apt/sources.list.d/bess.list",
        0o644,
    )?;
    // auth.conf holds the environment's password: root only.
    provider.copy(
        m,
        text("apt_auth").as_bytes(),
        "/etc/apt/auth.conf.d/bess.conf",
        0o600,
    )?;
    Ok(format!(
        "{KEYRING}\n/etc/apt/sources.list.d/bess.list: {source}/etc/apt/auth.conf.d/bess.conf"
    ))
}

/// Packages of `wanted` the channel does not offer for the machine's dist.
fn missing_packages(
    repo: &Repo,
    fleet: &Fleet,
    vars: &Value,
    machine: &str,
    wanted: &[String],
) -> Result<Vec<String>, OpsError> {
    let dist = vars["machines"][machine]["dist"]
        .as_str()
        .unwrap_or_default();
    let mut missing = Vec::new();
    for package in wanted {
        if super::view::newest_in(repo, package, &fleet.env.channel, dist)?.is_none() {
            missing.push(format!(
                "package {package} is not in channel {} for {dist}; upload it (`bess repo ingest`) \
                 or promote it there (`bess repo promote {package}=VERSION`)",
                fleet.env.channel
            ));
        }
    }
    Ok(missing)
}

fn install_packages(
    provider: &dyn crate::env::provider::Provider,
    m: &Machine,
    packages: &[String],
    missing: &[String],
) -> Result<String, OpsError> {
    if !missing.is_empty() {
        return Err(OpsError::NotFound(missing.join("\n")));
    }
    let script = format!(
        "apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {}",
        packages.join(" ")
    );
    run_checked(provider, m, &script, "apt-get install")
}

/// The installed version of each package, from dpkg in the machine.
pub(super) fn installed_versions(
    fleet: &Fleet,
    m: &Machine,
    packages: &[String],
) -> Result<Vec<(String, String)>, OpsError> {
    let script = format!(
        "dpkg-query -W -f '${{Package}}\\t${{Version}}\\t${{db:Status-Abbrev}}\\n' {}",
        packages.join(" ")
    );
    let out = fleet.provider.run(m, &script, &[])?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            let (name, version, status) = (parts.next()?, parts.next()?, parts.next()?);
            status
                .starts_with("ii")
                .then(|| (name.to_string(), version.to_string()))
        })
        .collect())
}

/// Records what dpkg says is installed now.
pub(super) fn record_installed(
    repo: &mut Repo,
    fleet: &Fleet,
    m: &Machine,
    packages: &[String],
) -> Result<(), OpsError> {
    let versions = installed_versions(fleet, m, packages)?;
    let writer = repo.catalog.write()?;
    for (package, version) in versions {
        let row = InstalledRow {
            machine: m.name.clone(),
            package,
            version,
            channel: fleet.env.channel.clone(),
            installed_at: now(),
        };
        writer.set_installed(&fleet.env.platform, &fleet.env.name, &row)?;
    }
    Ok(writer.commit()?)
}

/// Every rendered template, to the same path in the machine.
fn copy_rendered(fleet: &Fleet, m: &Machine, vars: &Value) -> Result<String, OpsError> {
    let rendered = render_all(&fleet.workspace, vars)?;
    let mut copied = Vec::new();
    for file in rendered {
        // Files at the top of the source (a Vagrantfile) are the host's.
        if file.target.components().count() < 2 {
            continue;
        }
        let dest = format!("/{}", file.target.display());
        fleet
            .provider
            .copy(m, file.text.as_bytes(), &dest, file.mode & 0o777)?;
        copied.push(dest);
    }
    Ok(copied.join("\n"))
}

/// Copies a script of the workspace into the machine and runs it there.
pub(super) fn run_script(fleet: &Fleet, m: &Machine, script: &str) -> Result<String, OpsError> {
    let source = fleet.workspace.join(script);
    let data = std::fs::read(&source).map_err(OpsError::io("read", &source))?;
    let dest = format!("{SCRIPTS_DIR}/{script}");
    fleet.provider.copy(m, &data, &dest, 0o755)?;
    let command = format!(
        "cd {SCRIPTS_DIR} && sh {}",
        crate::env::provider::command::quote(script)
    );
    run_checked(fleet.provider.as_ref(), m, &command, script)
}

/// Runs a playbook of the workspace from the host, limited to `m`.
fn run_playbook(fleet: &Fleet, m: &Machine, playbook: &str) -> Result<String, OpsError> {
    Program::ANSIBLE.require()?;
    let inventory = write_inventory(fleet)?;
    let inventory = inventory.to_string_lossy().into_owned();
    let args = [
        "-i",
        inventory.as_str(),
        "--limit",
        m.name.as_str(),
        playbook,
    ];
    let mut command = std::process::Command::new(Program::ANSIBLE.name);
    command
        .args(args)
        .current_dir(&fleet.workspace)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0");
    let out = Program::ANSIBLE.output_of(command, &args, &[])?;
    out.check(&format!(
        "ansible-playbook {playbook} for machine {}",
        m.name
    ))?;
    Ok(out.output)
}

/// The SSH options that reach the environment's machines as root.
pub(super) fn ssh_options(fleet: &Fleet) -> Vec<String> {
    vec![
        "-i".into(),
        fleet.ssh_key().display().to_string(),
        "-o".into(),
        format!("UserKnownHostsFile={}", fleet.known_hosts().display()),
        "-o".into(),
        "StrictHostKeyChecking=accept-new".into(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
    ]
}

/// `bess env inventory`: Ansible's JSON inventory (the format of an
/// inventory script's `--list`): a group per machine, every host's SSH
/// settings, and the environment's variables as `bess`.
pub(super) fn inventory(fleet: &Fleet) -> Result<Value, OpsError> {
    let vars = variables_of(fleet)?;
    let options = ssh_options(fleet);
    let common = options[2..].join(" ");
    let mut hostvars = serde_json::Map::new();
    let mut inventory = serde_json::Map::new();
    for row in &fleet.rows {
        hostvars.insert(
            row.name.clone(),
            json!({
                "ansible_host": row.address.to_string(),
                "ansible_user": "root",
                "ansible_ssh_private_key_file": fleet.ssh_key().display().to_string(),
                "ansible_ssh_common_args": common,
                "bess_machine": row.name,
            }),
        );
        inventory.insert(row.name.clone(), json!({ "hosts": [row.name] }));
    }
    let hosts: Vec<&str> = fleet.rows.iter().map(|r| r.name.as_str()).collect();
    inventory.insert(
        "all".into(),
        json!({ "hosts": hosts, "vars": { "bess": vars } }),
    );
    inventory.insert("_meta".into(), json!({ "hostvars": hostvars }));
    Ok(Value::Object(inventory))
}

/// The inventory as a file and a script Ansible runs for it; the script's path.
fn write_inventory(fleet: &Fleet) -> Result<PathBuf, OpsError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = fleet.workspace.join("etc/bess");
    let json_file = dir.join("inventory.json");
    let text = serde_json::to_vec_pretty(&inventory(fleet)?).expect("JSON");
    crate::env::files::replace(&json_file, &text, 0o600)?;
    let script = dir.join("inventory");
    let body = "#!/bin/sh\n# Ansible's inventory of this environment, written by bess.\nexec cat \"$(dirname \"$0\")/inventory.json\"\n";
    crate::env::files::replace(&script, body.as_bytes(), 0o700)?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))
        .map_err(OpsError::io("set the mode of", &script))?;
    Ok(script)
}
