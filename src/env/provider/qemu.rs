//! The `qemu` provider: each machine is a QEMU virtual machine.
//!
//! - It boots the image's kernel and initrd directly (`root=/dev/vda`);
//!   its disk is `disk.qcow2`, an overlay over the image's read-only disk,
//!   so a new machine costs the blocks it writes.
//! - Its network card is a tap on the environment's bridge: QEMU runs in
//!   the environment's network namespace (`ip netns exec`) and opens the
//!   tap there; the host reaches the machine by the same /32 route as an
//!   nspawn machine.
//! - What makes it this machine (host name, address, the environment's
//!   key for root, its own SSH host key, made here at create) reaches it
//!   at boot as the fw_cfg file the image's `bess-seed.service` runs (see
//!   `vm_image.rs`); bess pins that host key in the machine's
//!   `known_hosts`, so every command goes over SSH with strict checking.
//! - Control goes over QMP: `system_powerdown` for a clean stop, `quit`
//!   when that takes too long.
//! - The accelerator is KVM where the processor offers real
//!   virtualisation (Intel VT-x or AMD-V through `kvm_intel`/`kvm_amd`,
//!   and a `/dev/kvm` bess may open), TCG otherwise. A `/dev/kvm` of
//!   `kvm_pvm` (some cloud hosts) cannot boot a stock Debian kernel, so it
//!   counts as none. `BESS_QEMU_ACCEL=tcg|kvm` overrides the choice.
//!
//! The runtime directory holds `disk.qcow2`, `seed.sh`, the host key,
//! `known_hosts`, `qmp.sock`, `console.log` and `qemu.run` (QEMU's
//! process id and start time, so a reused process id is never mistaken
//! for the machine).

use super::command::quote;
use super::network::machine_mac;
use super::nspawn::start_time;
use super::{Machine, MachineState, Program, Provider, ProviderError, RunOutput};
use crate::env::vm_image::{DISK, INITRD, KERNEL, SEED_NAME, VmArch};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a boot may take until SSH answers (TCG on a loaded host is slow).
const BOOT_WAIT: Duration = Duration::from_secs(300);
/// How long a clean power-off may take before QEMU is told to quit.
const STOP_WAIT: Duration = Duration::from_secs(60);

/// How QEMU runs guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// KVM when this host offers it for stock kernels, else TCG.
    pub fn detect() -> Accel {
        match std::env::var("BESS_QEMU_ACCEL").as_deref() {
            Ok("tcg") => return Accel::Tcg,
            Ok("kvm") => return Accel::Kvm,
            _ => {}
        }
        let module = |name: &str| Path::new("/sys/module").join(name).exists();
        let hardware = module("kvm_intel") || module("kvm_amd");
        let usable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if hardware && usable && !module("kvm_pvm") {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    /// `-accel` and `-cpu`.
    fn args(self) -> [&'static str; 4] {
        match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
        }
    }
}

/// The qemu provider.
pub struct Qemu {
    vm: Result<VmArch, String>,
}

impl Qemu {
    pub fn new() -> Qemu {
        Qemu {
            vm: VmArch::of(crate::env::image::host_arch()).map_err(|e| e.to_string()),
        }
    }

    fn vm(&self) -> Result<VmArch, ProviderError> {
        self.vm.clone().map_err(|problem| ProviderError::State {
            machine: "-".into(),
            problem,
        })
    }
}

impl Default for Qemu {
    fn default() -> Qemu {
        Qemu::new()
    }
}

impl Provider for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn check_host(&self) -> Result<(), ProviderError> {
        let vm = self.vm()?;
        for program in [
            vm.qemu,
            Program::QEMU_IMG,
            Program::IP,
            Program::SSH,
            Program::SSH_KEYGEN,
        ] {
            program.require()?;
        }
        Ok(())
    }

    fn create(&self, m: &Machine) -> Result<(), ProviderError> {
        std::fs::create_dir_all(&m.dir).map_err(ProviderError::io("create", &m.dir))?;
        let disk = m.file(DISK);
        if !disk.exists() {
            make_overlay(m, &disk)?;
        }
        let key = m.file("ssh_host_ed25519_key");
        if !key.exists() {
            make_host_key(m, &key)?;
        }
        Ok(())
    }

    fn start(&self, m: &Machine) -> Result<(), ProviderError> {
        self.check_host()?;
        if self.state(m)? == MachineState::Running {
            return Ok(());
        }
        self.create(m)?;
        m.network.ensure()?;
        let tap = m.network.attach_tap(&m.netns(), m.address)?;
        write_seed(m)?;
        let pid = self.spawn(m, &tap)?;
        wait_for_ssh(self, m, pid)
    }

    fn stop(&self, m: &Machine) -> Result<(), ProviderError> {
        if let Some(pid) = running_pid(m)? {
            shut_down(m, pid);
        }
        for file in ["qemu.run", "qemu.pid", "qmp.sock"] {
            super::remove_if_present(&m.file(file))?;
        }
        m.network.detach(&m.netns(), m.address)
    }

    fn state(&self, m: &Machine) -> Result<MachineState, ProviderError> {
        if running_pid(m)?.is_some() {
            Ok(MachineState::Running)
        } else if m.dir.exists() {
            Ok(MachineState::Stopped)
        } else {
            Ok(MachineState::Absent)
        }
    }

    fn run(&self, m: &Machine, script: &str, stdin: &[u8]) -> Result<RunOutput, ProviderError> {
        if running_pid(m)?.is_none() {
            return Err(ProviderError::State {
                machine: m.name.clone(),
                problem: "is not running; start it with `bess env up`".into(),
            });
        }
        ssh(m, script, stdin, 10)
    }
}

impl Qemu {
    /// Starts QEMU daemonized in the environment's namespace and records
    /// its process.
    fn spawn(&self, m: &Machine, tap: &str) -> Result<u32, ProviderError> {
        let vm = self.vm()?;
        let path = |name: &str| m.file(name).to_string_lossy().into_owned();
        let image = |name: &str| m.image.join(name).to_string_lossy().into_owned();
        let append = format!(
            "root=/dev/vda rw console={} systemd.hostname={} net.ifnames=0",
            vm.console, m.name
        );
        let memory = m.memory.to_string();
        let cpus = m.cpus.to_string();
        let netdev = format!("tap,id=net0,ifname={tap},script=no,downscript=no");
        let nic = format!("virtio-net-pci,netdev=net0,mac={}", machine_mac(m.address));
        let drive = format!("file={},if=virtio,format=qcow2", path(DISK));
        let serial = format!("file:{}", path("console.log"));
        let qmp = format!("unix:{},server=on,wait=off", path("qmp.sock"));
        let seed = format!("name={SEED_NAME},file={}", path("seed.sh"));
        let (kernel, initrd) = (image(KERNEL), image(INITRD));
        let pid_file = path("qemu.pid");
        super::remove_if_present(&m.file("qemu.pid"))?;
        let mut args = vec!["netns", "exec", m.network.netns.as_str(), vm.qemu.name];
        args.extend(["-name", &m.id, "-machine", vm.machine]);
        args.extend(Accel::detect().args());
        args.extend([
            "-m",
            &memory,
            "-smp",
            &cpus,
            "-nodefaults",
            "-display",
            "none",
        ]);
        args.extend(["-serial", &serial, "-qmp", &qmp]);
        args.extend(["-kernel", &kernel, "-initrd", &initrd]);
        args.extend(["-append", &append, "-drive", &drive]);
        args.extend(["-netdev", &netdev, "-device", &nic, "-fw_cfg", &seed]);
        args.extend(["-daemonize", "-pidfile", &pid_file]);
        let out = Program::IP.output(&args, &[])?;
        out.check(&format!("{} for machine {}", vm.qemu.name, m.name))?;
        let text =
            std::fs::read_to_string(&pid_file).map_err(ProviderError::io("read", &pid_file))?;
        let pid: u32 = text.trim().parse().map_err(|_| ProviderError::State {
            machine: m.name.clone(),
            problem: format!("QEMU wrote {text:?} to {pid_file}, not a process id"),
        })?;
        let run = m.file("qemu.run");
        let record = format!("{pid} {}\n", start_time(pid).unwrap_or_default());
        std::fs::write(&run, record).map_err(ProviderError::io("write", &run))?;
        Ok(pid)
    }
}

/// `disk.qcow2` over the image's disk, made beside and renamed, so a
/// killed create leaves no half-made overlay under the real name.
fn make_overlay(m: &Machine, disk: &Path) -> Result<(), ProviderError> {
    let base = m.image.join(DISK);
    if !base.is_file() {
        return Err(ProviderError::State {
            machine: m.name.clone(),
            problem: format!(
                "the image at {} has no {DISK}; is the box a qemu box?",
                m.image.display()
            ),
        });
    }
    let temp = disk.with_extension("qcow2.new");
    let (base_arg, temp_arg) = (base.to_string_lossy(), temp.to_string_lossy());
    let create = [
        "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", &base_arg, &temp_arg,
    ];
    Program::QEMU_IMG.run(&create)?;
    std::fs::rename(&temp, disk).map_err(ProviderError::io("rename into place", disk))
}

/// The machine's own SSH host key, and the `known_hosts` line pinning it.
fn make_host_key(m: &Machine, key: &Path) -> Result<(), ProviderError> {
    let _ = std::fs::remove_file(key);
    let _ = std::fs::remove_file(key.with_extension("pub"));
    let key_arg = key.to_string_lossy();
    Program::SSH_KEYGEN.run(&["-q", "-t", "ed25519", "-N", "", "-C", &m.id, "-f", &key_arg])?;
    let public = key.with_extension("pub");
    let line = std::fs::read_to_string(&public).map_err(ProviderError::io("read", &public))?;
    let mut words = line.split_whitespace();
    let (kind, body) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let known = m.file("known_hosts");
    let text = format!("{} {kind} {body}\n", m.address);
    std::fs::write(&known, text).map_err(ProviderError::io("write", &known))
}

/// The script the machine runs at each boot (see `vm_image.rs`).
fn seed_script(m: &Machine, host_key: &str, host_key_pub: &str) -> String {
    let heredoc = |path: &str, text: &str, mode: &str| {
        format!(
            "cat > {path} <<'BESS_SEED_EOF'\n{}\nBESS_SEED_EOF\nchmod {mode} {path}\n",
            text.trim_end()
        )
    };
    let hosts = format!(
        "127.0.0.1\tlocalhost\n127.0.1.1\t{}\n::1\tlocalhost ip6-localhost ip6-loopback",
        m.name
    );
    let network = format!(
        "[Match]\nMACAddress={}\n\n[Network]\nAddress={}/{}\nLinkLocalAddressing=no\nIPv6AcceptRA=no",
        machine_mac(m.address),
        m.address,
        m.network.prefix
    );
    let mut script =
        String::from("# Written by bess for this machine; run at each boot.\nset -e\n");
    script.push_str(&format!("echo {} > /etc/hostname\n", quote(&m.name)));
    script.push_str(&format!("hostname {}\n", quote(&m.name)));
    script.push_str(&heredoc("/etc/hosts", &hosts, "0644"));
    script.push_str("mkdir -p /etc/systemd/network /root/.ssh\nchmod 0700 /root/.ssh\n");
    script.push_str(&heredoc(
        "/etc/systemd/network/10-bess.network",
        &network,
        "0644",
    ));
    script.push_str(&heredoc(
        "/root/.ssh/authorized_keys",
        &m.ssh_public_key,
        "0600",
    ));
    script.push_str("rm -f /etc/ssh/ssh_host_*\n");
    script.push_str(&heredoc("/etc/ssh/ssh_host_ed25519_key", host_key, "0600"));
    script.push_str(&heredoc(
        "/etc/ssh/ssh_host_ed25519_key.pub",
        host_key_pub,
        "0644",
    ));
    script
}

/// Writes `seed.sh` (owner-only: it holds the host's private key).
fn write_seed(m: &Machine) -> Result<(), ProviderError> {
    let read = |name: &str| {
        let path = m.file(name);
        std::fs::read_to_string(&path).map_err(ProviderError::io("read", &path))
    };
    let key = read("ssh_host_ed25519_key")?;
    let public = read("ssh_host_ed25519_key.pub")?;
    let text = seed_script(m, &key, &public);
    crate::env::files::replace(&m.file("seed.sh"), text.as_bytes(), 0o600).map_err(|e| {
        ProviderError::State {
            machine: m.name.clone(),
            problem: e.to_string(),
        }
    })
}

/// `script` run by `sh` as root in the machine over SSH.
fn ssh(m: &Machine, script: &str, stdin: &[u8], timeout: u32) -> Result<RunOutput, ProviderError> {
    let key = m.ssh_key.to_string_lossy().into_owned();
    let known = format!("UserKnownHostsFile={}", m.file("known_hosts").display());
    let connect = format!("ConnectTimeout={timeout}");
    let target = format!("root@{}", m.address);
    let remote = format!(
        "env {} /bin/sh -c {}",
        super::MACHINE_ENV.join(" "),
        quote(script)
    );
    let args = [
        "-i",
        &key,
        "-o",
        &known,
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        &connect,
        "-o",
        "LogLevel=ERROR",
        &target,
        &remote,
    ];
    Program::SSH.output(&args, stdin)
}

/// The QEMU process, if `qemu.run` names one that is still it.
fn running_pid(m: &Machine) -> Result<Option<u32>, ProviderError> {
    let run = m.file("qemu.run");
    let text = match std::fs::read_to_string(&run) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return adopt_orphan(m),
        Err(e) => return Err(ProviderError::io("read", &run)(e)),
    };
    let mut words = text.split_whitespace();
    let pid: Option<u32> = words.next().and_then(|w| w.parse().ok());
    let recorded = words.next().unwrap_or("");
    Ok(pid.filter(|&pid| start_time(pid).is_some_and(|t| t == recorded)))
}

/// The QEMU of a bess killed between starting it and recording it: QEMU
/// wrote its own pid file, and its command line names the machine. It is
/// recorded now, so the next command stops or uses it rather than start a
/// second QEMU on the same disk and tap.
fn adopt_orphan(m: &Machine) -> Result<Option<u32>, ProviderError> {
    let Ok(text) = std::fs::read_to_string(m.file("qemu.pid")) else {
        return Ok(None);
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return Ok(None);
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let ours = cmdline
        .split(|&b| b == 0)
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w[0] == b"-name" && w[1] == m.id.as_bytes());
    let Some(started) = start_time(pid).filter(|_| ours) else {
        return Ok(None);
    };
    let run = m.file("qemu.run");
    std::fs::write(&run, format!("{pid} {started}\n")).map_err(ProviderError::io("write", &run))?;
    Ok(Some(pid))
}

/// Waits until the machine answers over SSH with its systemd booted.
fn wait_for_ssh(qemu: &Qemu, m: &Machine, pid: u32) -> Result<(), ProviderError> {
    let started = Instant::now();
    let failed = |problem: String| {
        let log = std::fs::read_to_string(m.file("console.log")).unwrap_or_default();
        ProviderError::State {
            machine: m.name.clone(),
            problem: format!(
                "{problem}; its console said:\n{}",
                super::command::last_lines(&log, 20)
            ),
        }
    };
    loop {
        if start_time(pid).is_none() {
            return Err(failed("QEMU stopped while the machine booted".into()));
        }
        if started.elapsed() > BOOT_WAIT {
            let _ = qemu.stop(m);
            return Err(failed(format!(
                "did not answer over SSH in {} s",
                BOOT_WAIT.as_secs()
            )));
        }
        // `degraded` (a unit failed) still runs commands.
        if let Ok(out) = ssh(m, "systemctl is-system-running --wait", &[], 2)
            && (out.stdout.contains("running") || out.stdout.contains("degraded"))
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Asks the machine to power off over QMP, then QEMU to quit, then kills it.
fn shut_down(m: &Machine, pid: u32) {
    let socket = m.file("qmp.sock");
    let _ = qmp(&socket, "system_powerdown");
    if wait_gone(pid, STOP_WAIT) {
        return;
    }
    let _ = qmp(&socket, "quit");
    if wait_gone(pid, Duration::from_secs(10)) {
        return;
    }
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    wait_gone(pid, Duration::from_secs(10));
}

/// Whether process `pid` (as it was) ended within `limit`.
fn wait_gone(pid: u32, limit: Duration) -> bool {
    let recorded = start_time(pid);
    let started = Instant::now();
    while recorded.is_some() && start_time(pid) == recorded {
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Sends one QMP command (after the capabilities handshake) and waits for its answer.
fn qmp(socket: &Path, command: &str) -> std::io::Result<serde_json::Value> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut greeting = String::new();
    reader.read_line(&mut greeting)?;
    for execute in ["qmp_capabilities", command] {
        let line = serde_json::json!({ "execute": execute }).to_string();
        writer.write_all(format!("{line}\n").as_bytes())?;
        let answer = qmp_answer(&mut reader)?;
        if execute == command {
            return Ok(answer);
        }
    }
    unreachable!("the loop returns on the command's answer")
}

/// The next line that answers a command (events are skipped).
fn qmp_answer(reader: &mut impl BufRead) -> std::io::Result<serde_json::Value> {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if value.get("return").is_some() || value.get("error").is_some() {
            return Ok(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::provider::EnvNetwork;
    use std::net::Ipv4Addr;

    fn machine(dir: &Path) -> Machine {
        Machine {
            id: "bess-1.paas.1161.web".into(),
            name: "web".into(),
            dir: dir.to_path_buf(),
            image: dir.join("image"),
            address: Ipv4Addr::new(10, 231, 7, 2),
            network: EnvNetwork::new("bess-1.paas.1161", Ipv4Addr::new(10, 231, 7, 1), 24),
            memory: 512,
            cpus: 1,
            ssh_public_key: "ssh-ed25519 AAAA env".into(),
            ssh_key: dir.join("id_ed25519"),
            workspace: dir.join("workspace"),
        }
    }

    #[test]
    fn the_seed_gives_the_machine_its_name_address_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let m = machine(dir.path());
        let seed = seed_script(&m, "-----PRIVATE-----", "ssh-ed25519 BBBB web");
        assert!(seed.contains("echo 'web' > /etc/hostname"), "{seed}");
        assert!(seed.contains("MACAddress=02:b5:0a:e7:07:02"), "{seed}");
        assert!(seed.contains("Address=10.231.7.2/24"), "{seed}");
        assert!(
            seed.contains("ssh-ed25519 AAAA env\nBESS_SEED_EOF"),
            "{seed}"
        );
        assert!(seed.contains("-----PRIVATE-----\nBESS_SEED_EOF\nchmod 0600"));
        // The script runs whole under `sh -n`: every here-document is closed.
        let out = Program::new("sh", "dash")
            .output(&["-n"], seed.as_bytes())
            .unwrap();
        assert!(out.success, "{}", out.output);
    }

    /// `sh -c 'sleep 30; exit' -name NAME`, once the kernel shows its
    /// command line: right after spawning, the exec may not have set it up.
    fn named_process(name: &str) -> std::process::Child {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; exit", "-name", name])
            .spawn()
            .unwrap();
        let cmdline = format!("/proc/{}/cmdline", child.id());
        for _ in 0..500 {
            if std::fs::read(&cmdline).is_ok_and(|c| c.windows(5).any(|w| w == b"-name")) {
                return child;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("{cmdline} never showed -name");
    }

    #[test]
    fn a_qemu_left_unrecorded_by_a_killed_bess_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let m = machine(dir.path());
        assert_eq!(running_pid(&m).unwrap(), None);
        // A process whose command line names the machine as QEMU's does
        // (`; exit` keeps the shell from exec'ing sleep, which would
        // replace that command line).
        let mut child = named_process(&m.id);
        std::fs::write(m.file("qemu.pid"), format!("{}\n", child.id())).unwrap();
        assert_eq!(running_pid(&m).unwrap(), Some(child.id()));
        assert!(m.file("qemu.run").exists(), "recorded now");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(running_pid(&m).unwrap(), None);
        // Another machine's process is not adopted.
        let mut other = named_process("bess-1.paas.1161.db");
        std::fs::remove_file(m.file("qemu.run")).unwrap();
        std::fs::write(m.file("qemu.pid"), format!("{}\n", other.id())).unwrap();
        assert_eq!(running_pid(&m).unwrap(), None);
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn qmp_answers_skip_events() {
        let lines = "{\"timestamp\": {}, \"event\": \"POWERDOWN\"}\n{\"return\": {}}\n";
        let answer = qmp_answer(&mut lines.as_bytes()).unwrap();
        assert_eq!(answer["return"], serde_json::json!({}));
        assert!(qmp_answer(&mut "".as_bytes()).is_err());
    }

    #[test]
    fn a_pvm_kvm_counts_as_no_kvm() {
        if std::env::var_os("BESS_QEMU_ACCEL").is_some() {
            return;
        }
        if Path::new("/sys/module/kvm_pvm").exists() || !Path::new("/dev/kvm").exists() {
            assert_eq!(Accel::detect(), Accel::Tcg);
        }
        assert_eq!(Accel::Tcg.args(), ["-accel", "tcg", "-cpu", "max"]);
        assert_eq!(Accel::Kvm.args(), ["-accel", "kvm", "-cpu", "host"]);
    }
}
