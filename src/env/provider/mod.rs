//! Machine providers: what runs an environment's machines, behind one
//! small interface (create, start, stop, destroy, state, run a command,
//! copy a file in), so provisioning and updates never ask which one runs.
//!
//! - `nspawn` (the default): a systemd-nspawn container booting systemd,
//!   its root an overlay over the unpacked image, in a network namespace
//!   of its own joined to the environment's bridge.
//! - `qemu`: a virtual machine booting the image's kernel directly, its
//!   disk a qcow2 overlay over the image's, its tap on the environment's
//!   bridge, controlled over QMP and reached by SSH.
//! - `vagrant` (VirtualBox or libvirt VMs): vagrant runs the workspace's
//!   generated Vagrantfile, one machine at a time, and fetches each box
//!   from bess's catalog itself.
//!
//! Everything a provider makes for a machine lives under the machine's
//! runtime directory or carries the machine's id in its name, so that
//! `destroy` can remove it whatever state a killed process left it in.

pub mod command;
pub mod network;
pub mod nspawn;
pub mod qemu;
pub mod vagrant;

pub use command::{Program, RunOutput};

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Why a provider could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(
        "`{program}` is not installed on this host; install it with `apt-get install {package}`"
    )]
    Missing { program: String, package: String },
    #[error("`{command}` failed ({status}){}", tail_of(.output))]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("machine {machine}: {problem}")]
    State { machine: String, problem: String },
    #[error(
        "provider `{0}` is not one bess drives; set provider = \"nspawn\", \"qemu\" or \
         \"vagrant\" in the platform's platform.toml"
    )]
    Unknown(String),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn tail_of(output: &str) -> String {
    let output = output.trim();
    if output.is_empty() {
        String::new()
    } else {
        format!(":\n{}", command::last_lines(output, 20))
    }
}

impl ProviderError {
    /// An I/O failure on `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ProviderError {
        let path = path.into();
        move |source| ProviderError::Io {
            action,
            path,
            source,
        }
    }
}

/// What a provider observes of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MachineState {
    /// Nothing of it exists on this host.
    Absent,
    /// Created (its disk or overlay exists) but not running.
    Stopped,
    Running,
}

impl MachineState {
    /// The word `bess env status` prints.
    pub fn name(self) -> &'static str {
        match self {
            MachineState::Absent => "absent",
            MachineState::Stopped => "stopped",
            MachineState::Running => "running",
        }
    }
}

/// The network an environment's machines share: a network namespace
/// holding a bridge, joined to the host by one veth pair whose host end
/// has the gateway address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvNetwork {
    /// The environment's network namespace, `/run/netns/<netns>`.
    pub netns: String,
    /// The host's end of the veth pair (at most 15 characters).
    pub host_link: String,
    /// The host's address on the network (`.1` of the platform's range).
    pub gateway: Ipv4Addr,
    pub prefix: u8,
}

/// One machine, as a provider needs to know it.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Unique on this host: `<repository id>.<platform>.<env>.<machine>`.
    pub id: String,
    /// The machine's name in platform.toml, and its host name.
    pub name: String,
    /// Where the provider keeps the machine's disk, overlay and process files.
    pub dir: PathBuf,
    /// The unpacked image (nspawn: a root directory; qemu: the image's files).
    pub image: PathBuf,
    pub address: Ipv4Addr,
    pub network: EnvNetwork,
    pub memory: u32,
    pub cpus: u32,
    /// The environment's SSH public key, for root's authorized_keys.
    pub ssh_public_key: String,
    /// The environment's SSH private key, for providers reached by SSH.
    pub ssh_key: PathBuf,
    /// The environment's workspace, which holds its Vagrantfile.
    pub workspace: PathBuf,
}

impl Machine {
    /// The machine's own network namespace (nspawn) or the one its VM's
    /// tap lives in (qemu): `<env netns>.<machine>`.
    pub fn netns(&self) -> String {
        format!("{}.{}", self.network.netns, self.name)
    }

    /// A file in the machine's runtime directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// What drives machines of one kind.
pub trait Provider {
    /// `nspawn`, `qemu` or `vagrant`.
    fn name(&self) -> &'static str;
    /// Checks that the host has what the provider runs, naming what to install.
    fn check_host(&self) -> Result<(), ProviderError>;
    /// Whether the provider downloads the machine's image itself (vagrant,
    /// from the Vagrantfile's box URL) rather than being handed bess's.
    fn fetches_own_image(&self) -> bool {
        false
    }
    /// Whether machines join the environment's network bess makes on the
    /// host; vagrant makes the Vagrantfile's private network itself.
    fn uses_env_network(&self) -> bool {
        true
    }
    /// Makes the machine's disk or root from the image, with its host
    /// name, host keys and authorized key; nothing if it exists already.
    fn create(&self, machine: &Machine) -> Result<(), ProviderError>;
    /// Boots the machine and waits until commands run in it; nothing if it runs.
    fn start(&self, machine: &Machine) -> Result<(), ProviderError>;
    /// Shuts the machine down (its disk stays); nothing if it is stopped.
    fn stop(&self, machine: &Machine) -> Result<(), ProviderError>;
    /// Stops the machine and removes everything of it; nothing if absent.
    /// Everything of a machine bess runs itself is in its directory.
    fn destroy(&self, machine: &Machine) -> Result<(), ProviderError> {
        self.stop(machine)?;
        remove_if_present(&machine.dir)
    }
    /// What the machine is now.
    fn state(&self, machine: &Machine) -> Result<MachineState, ProviderError>;
    /// Runs `script` with `sh` as root in the machine, `stdin` on its input.
    fn run(
        &self,
        machine: &Machine,
        script: &str,
        stdin: &[u8],
    ) -> Result<RunOutput, ProviderError>;
    /// Writes `data` to `dest` in the machine with `mode`, atomically,
    /// resolving `dest` inside the machine (a link there cannot send it
    /// to the host).
    fn copy(
        &self,
        machine: &Machine,
        data: &[u8],
        dest: &str,
        mode: u32,
    ) -> Result<(), ProviderError> {
        let script = format!(
            "set -e; d=\"$(dirname \"$1\")\"; mkdir -p \"$d\"; t=\"$1.bess-copy.$$\"; \
             (umask 077; cat > \"$t\"); chmod {mode:o} \"$t\"; mv -f \"$t\" \"$1\""
        );
        let script = format!("set -- {}; {script}", command::quote(dest));
        let out = self.run(machine, &script, data)?;
        out.check(&format!("copy {dest} into machine {}", machine.name))
    }
}

/// The provider named in platform.toml.
pub fn provider(name: &str) -> Result<Box<dyn Provider>, ProviderError> {
    match name {
        "nspawn" => Ok(Box::new(nspawn::Nspawn::new())),
        "qemu" => Ok(Box::new(qemu::Qemu::new())),
        "vagrant" => Ok(Box::new(vagrant::Vagrant::new())),
        other => Err(ProviderError::Unknown(other.into())),
    }
}

/// The PATH and locale commands run with in a machine, whichever runs it:
/// the same script behaves alike under every provider.
const MACHINE_ENV: &[&str] = &[
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
    "TERM=dumb",
    "DEBIAN_FRONTEND=noninteractive",
];

/// Removes a machine's file or directory; one already gone is fine (a
/// killed command may have removed it, and `destroy` runs again).
pub(crate) fn remove_if_present(path: &Path) -> Result<(), ProviderError> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ProviderError::io("remove", path)(e))
        }
        _ => Ok(()),
    }
}

/// The directory machines of `env` keep their runtime files in.
pub fn machines_dir(root: &Path, platform: &str, env: &str) -> PathBuf {
    root.join(platform).join(env)
}
