//! The `vagrant` provider: vagrant runs the Vagrantfile `bess env init`
//! wrote in the workspace, one machine at a time, on VirtualBox or
//! libvirt (the vagrant-libvirt plugin).
//!
//! - vagrant downloads each machine's box itself, from the catalog URL the
//!   Vagrantfile names (bess's own, with the environment's credential),
//!   and makes the Vagrantfile's private network; bess gives it neither
//!   an image nor its own network.
//! - `VAGRANT_DOTFILE_PATH` puts vagrant's record of the machine (its VM
//!   id) in the machine's runtime directory, so two machines of one
//!   workspace never share it and `env destroy` removes it.
//! - `vagrant up --no-provision`: bess provisions through `run` as with
//!   every provider, so the Vagrantfile's own provisioners do not run twice.
//! - Commands run with `vagrant ssh -c` as the box's user, through `sudo`
//!   to root.

use super::command::quote;
use super::{Machine, MachineState, Program, Provider, ProviderError, RunOutput};
use std::path::PathBuf;
use std::process::Command;

const VAGRANT: Program = Program::new("vagrant", "vagrant");
/// VirtualBox's command line, on PATH wherever VirtualBox is installed.
const VBOXMANAGE: &str = "VBoxManage";
/// The plugin that lets vagrant drive libvirt.
const LIBVIRT_PLUGIN: &str = "vagrant-libvirt";

/// The vagrant provider.
pub struct Vagrant;

impl Vagrant {
    pub fn new() -> Vagrant {
        Vagrant
    }
}

impl Default for Vagrant {
    fn default() -> Vagrant {
        Vagrant::new()
    }
}

impl Provider for Vagrant {
    fn name(&self) -> &'static str {
        "vagrant"
    }

    fn check_host(&self) -> Result<(), ProviderError> {
        VAGRANT.require()?;
        Program::SSH_KEYGEN.require()
    }

    fn fetches_own_image(&self) -> bool {
        true
    }

    fn uses_env_network(&self) -> bool {
        false
    }

    /// Nothing: `vagrant up` makes the VM from the box as it starts it.
    fn create(&self, _m: &Machine) -> Result<(), ProviderError> {
        Ok(())
    }

    fn start(&self, m: &Machine) -> Result<(), ProviderError> {
        require_backend(m)?;
        std::fs::create_dir_all(&m.dir).map_err(ProviderError::io("create", &m.dir))?;
        vagrant(m, &["up", &m.name, "--no-provision"], &[])?
            .check(&format!("vagrant up {}", m.name))?;
        // `bess env ssh` and Ansible log in as root with the environment's key.
        let key = format!("{}\n", m.ssh_public_key.trim());
        self.copy(m, key.as_bytes(), "/root/.ssh/authorized_keys", 0o600)
    }

    fn stop(&self, m: &Machine) -> Result<(), ProviderError> {
        if !created(m) {
            return Ok(());
        }
        vagrant(m, &["halt", &m.name], &[])?.check(&format!("vagrant halt {}", m.name))
    }

    fn destroy(&self, m: &Machine) -> Result<(), ProviderError> {
        // A machine vagrant never made needs no vagrant (nor a backend) to go.
        if created(m) {
            vagrant(m, &["destroy", "-f", &m.name], &[])?
                .check(&format!("vagrant destroy -f {}", m.name))?;
        }
        super::remove_if_present(&m.dir)
    }

    fn state(&self, m: &Machine) -> Result<MachineState, ProviderError> {
        if !created(m) {
            return Ok(MachineState::Absent);
        }
        let out = vagrant(m, &["status", &m.name, "--machine-readable"], &[])?;
        out.check(&format!("vagrant status {}", m.name))?;
        machine_state(&out.stdout, &m.name).ok_or_else(|| ProviderError::State {
            machine: m.name.clone(),
            problem: format!(
                "`vagrant status {} --machine-readable` printed no state:\n{}",
                m.name,
                super::command::last_lines(&out.output, 20)
            ),
        })
    }

    fn run(&self, m: &Machine, script: &str, stdin: &[u8]) -> Result<RunOutput, ProviderError> {
        let mut words = vec!["sudo -H /usr/bin/env -i".to_string()];
        words.extend(super::MACHINE_ENV.iter().map(|w| quote(w)));
        words.push(format!("/bin/sh -c {}", quote(script)));
        let remote = words.join(" ");
        // `-- -T`: no terminal, so stdin reaches the script byte for byte.
        vagrant(m, &["ssh", &m.name, "-c", &remote, "--", "-T"], stdin)
    }
}

/// Runs vagrant on the machine's workspace, its record kept in the
/// machine's runtime directory.
fn vagrant(m: &Machine, args: &[&str], stdin: &[u8]) -> Result<RunOutput, ProviderError> {
    let mut command = Command::new(VAGRANT.name);
    command
        .args(args)
        .current_dir(&m.workspace)
        // Not `--no-color`: after `ssh … --` it would reach ssh.
        .env("VAGRANT_NO_COLOR", "1")
        .env("VAGRANT_CWD", &m.workspace)
        .env("VAGRANT_DOTFILE_PATH", dotfile_path(m))
        // No call to HashiCorp's version server on every command.
        .env("VAGRANT_CHECKPOINT_DISABLE", "1");
    VAGRANT.output_of(command, args, stdin)
}

/// Where vagrant records the machine: `<machine dir>/vagrant`.
fn dotfile_path(m: &Machine) -> PathBuf {
    m.file("vagrant")
}

/// Whether vagrant recorded a VM for the machine: its `id` file, under
/// `machines/<name>/<backend>/`.
fn created(m: &Machine) -> bool {
    let dir = dotfile_path(m).join("machines").join(&m.name);
    std::fs::read_dir(&dir).is_ok_and(|backends| {
        backends
            .filter_map(Result::ok)
            .any(|b| b.path().join("id").is_file())
    })
}

/// The machine's error unless vagrant can run VMs here.
fn require_backend(m: &Machine) -> Result<(), ProviderError> {
    if virtualbox_installed() || libvirt_plugin_installed()? {
        return Ok(());
    }
    Err(ProviderError::State {
        machine: m.name.clone(),
        problem: format!(
            "vagrant has no VM provider to run it on this host: neither the {LIBVIRT_PLUGIN} \
             plugin (`vagrant plugin list`) nor VirtualBox (`{VBOXMANAGE}`) is installed; \
             install vagrant-libvirt with `apt-get install vagrant-libvirt libvirt-daemon-system`, \
             or install VirtualBox"
        ),
    })
}

fn virtualbox_installed() -> bool {
    Program::new(VBOXMANAGE, "virtualbox").installed()
}

fn libvirt_plugin_installed() -> Result<bool, ProviderError> {
    let out = VAGRANT.output(&["plugin", "list", "--no-color"], &[])?;
    out.check("vagrant plugin list")?;
    Ok(lists_plugin(&out.stdout, LIBVIRT_PLUGIN))
}

/// Whether `vagrant plugin list` output names `plugin`: lines are
/// `vagrant-libvirt (0.11.2, system)`, or `No plugins installed.`
fn lists_plugin(listing: &str, plugin: &str) -> bool {
    listing
        .lines()
        .any(|line| line.split_whitespace().next() == Some(plugin))
}

/// The state of `machine` in `vagrant status --machine-readable` output:
/// lines `timestamp,target,type,data…`, the one that matters
/// `…,web,state,running`. `not_created` is absent; every other state
/// (VirtualBox's `poweroff`, `saved`, `aborted`; libvirt's `shutoff`,
/// `paused`) is a VM that exists and does not run.
fn machine_state(output: &str, machine: &str) -> Option<MachineState> {
    output.lines().find_map(|line| {
        let mut fields = line.splitn(4, ',');
        let (_time, target, kind) = (fields.next()?, fields.next()?, fields.next()?);
        if target != machine || kind != "state" {
            return None;
        }
        Some(match fields.next()?.trim() {
            "not_created" => MachineState::Absent,
            "running" => MachineState::Running,
            _ => MachineState::Stopped,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `vagrant status web --machine-readable` with vagrant-libvirt, for
    /// a running VM: vagrant 2.3's line types (plugins/commands/status)
    /// with its and vagrant-libvirt's messages; no VM runs on the hosts
    /// these tests run on, so it is assembled rather than captured.
    const RUNNING: &str = "\
1733402201,web,metadata,provider,libvirt
1733402201,web,provider-name,libvirt
1733402201,web,state,running
1733402201,web,state-human-short,running
1733402201,web,state-human-long,The Libvirt domain is running. To stop this machine%!(VAGRANT_COMMA) you can run\\n`vagrant halt`. To destroy the machine%!(VAGRANT_COMMA) you can run `vagrant destroy`.
1733402201,,ui,info,Current machine states:\\n\\nweb                       running (libvirt)\\n\\nThe Libvirt domain is running.
";

    /// The same with VirtualBox, for a VM never made and one powered off.
    const VIRTUALBOX: &str = "\
1733402301,db,metadata,provider,virtualbox
1733402301,db,provider-name,virtualbox
1733402301,db,state,not_created
1733402301,db,state-human-short,not created
1733402301,db,state-human-long,The environment has not yet been created. Run `vagrant up` to\\ncreate the environment. If a machine is not created%!(VAGRANT_COMMA) only the\\ndefault provider will be shown. So if a provider is not listed%!(VAGRANT_COMMA)\\nthen the machine is not created for that environment.
1733402301,web,metadata,provider,virtualbox
1733402301,web,provider-name,virtualbox
1733402301,web,state,poweroff
1733402301,web,state-human-short,poweroff
1733402301,web,state-human-long,The VM is powered off. To restart the VM%!(VAGRANT_COMMA) simply run `vagrant up`
1733402301,,ui,info,Current machine states:\\n\\ndb                        not created (virtualbox)\\nweb                       poweroff (virtualbox)
";

    #[test]
    fn machine_readable_status_gives_the_machine_state() {
        assert_eq!(machine_state(RUNNING, "web"), Some(MachineState::Running));
        assert_eq!(machine_state(VIRTUALBOX, "db"), Some(MachineState::Absent));
        assert_eq!(
            machine_state(VIRTUALBOX, "web"),
            Some(MachineState::Stopped)
        );
        assert_eq!(
            machine_state(&RUNNING.replace(",running\n", ",shutoff\n"), "web"),
            Some(MachineState::Stopped)
        );
    }

    #[test]
    fn status_of_another_machine_or_an_error_has_no_state() {
        assert_eq!(machine_state(RUNNING, "db"), None);
        let error = "1733402401,,error-exit,Vagrant::Errors::NoDefaultProvider,No usable default provider could be found for your system.\n";
        assert_eq!(machine_state(error, "web"), None);
        // A machine named like a field of another line is not confused with it.
        assert_eq!(machine_state(RUNNING, "state"), None);
    }

    #[test]
    fn the_libvirt_plugin_is_found_in_the_plugin_list() {
        let listing = "vagrant-libvirt (0.11.2, system)\nvagrant-mutate (1.2.0, global)\n";
        assert!(lists_plugin(listing, LIBVIRT_PLUGIN));
        assert!(!lists_plugin("No plugins installed.\n", LIBVIRT_PLUGIN));
        assert!(!lists_plugin(
            "vagrant-libvirt-extra (0.1.0, global)\n",
            LIBVIRT_PLUGIN
        ));
    }
}
