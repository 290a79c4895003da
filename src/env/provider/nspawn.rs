//! The `nspawn` provider: each machine is a systemd-nspawn container
//! booting the image's systemd.
//!
//! - Its root is an overlay: the unpacked image (shared, read-only) below,
//!   `upper/` of the machine above, mounted on `root/`. A new machine
//!   costs the bytes it changes.
//! - Its network namespace is its own, joined to the environment's bridge
//!   (see `network.rs`); nspawn enters it with `--network-namespace-path`.
//! - On a host whose PID 1 is systemd, nspawn registers the machine with
//!   systemd-machined as usual. Elsewhere (containers, CI) it runs with
//!   `--register=no --keep-unit` in a cgroup of bess's own per machine,
//!   in every hierarchy mounted (`systemd` and `unified` on a hybrid
//!   host): without one, two containers share `payload/` and each one's
//!   systemd manages the other's services.
//! - Commands run with `nsenter` into the container's PID 1, which works
//!   with or without machined.
//!
//! The runtime directory holds `upper/`, `work/`, `root/`, `console.log`
//! and `nspawn.pid` (the nspawn process id and start time, so a reused
//! process id is never mistaken for the machine).

use super::command::quote;
use super::{Machine, MachineState, Program, Provider, ProviderError, RunOutput};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a boot may take until commands run (a loaded CI host is slow).
const BOOT_WAIT: Duration = Duration::from_secs(180);
/// How long a clean shutdown may take before the machine is killed.
const STOP_WAIT: Duration = Duration::from_secs(90);

/// The nspawn provider.
pub struct Nspawn {
    /// Whether PID 1 is systemd (then machined registers machines).
    systemd_host: bool,
}

impl Nspawn {
    pub fn new() -> Nspawn {
        Nspawn {
            systemd_host: Path::new("/run/systemd/system").is_dir(),
        }
    }
}

impl Default for Nspawn {
    fn default() -> Nspawn {
        Nspawn::new()
    }
}

impl Provider for Nspawn {
    fn name(&self) -> &'static str {
        "nspawn"
    }

    fn check_host(&self) -> Result<(), ProviderError> {
        for program in [
            Program::NSPAWN,
            Program::NSENTER,
            Program::IP,
            Program::MOUNT,
            Program::UMOUNT,
            Program::SSH_KEYGEN,
        ] {
            program.require()?;
        }
        Ok(())
    }

    fn create(&self, m: &Machine) -> Result<(), ProviderError> {
        for dir in ["upper", "work", "root"] {
            let path = m.file(dir);
            std::fs::create_dir_all(&path).map_err(ProviderError::io("create", &path))?;
        }
        mount_root(m)?;
        if !m.file("identity").exists() {
            write_identity(m)?;
            let marker = m.file("identity");
            std::fs::write(&marker, b"").map_err(ProviderError::io("write", &marker))?;
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
        m.network.attach(&m.netns(), m.address)?;
        let cgroups = if self.systemd_host {
            Vec::new()
        } else {
            own_cgroups(m)?
        };
        let pid = self.spawn(m, &cgroups)?;
        wait_for_boot(m, pid)
    }

    fn stop(&self, m: &Machine) -> Result<(), ProviderError> {
        if let Some(pid) = running_pid(m)? {
            shut_down(m, pid)?;
        }
        kill_cgroups(m)?;
        let pid_file = m.file("nspawn.pid");
        super::remove_if_present(&pid_file)?;
        unmount_root(m)?;
        m.network.detach(&m.netns(), m.address)?;
        remove_cgroups(m)
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
        let leader = leader(m)?;
        let target = leader.to_string();
        let mut args = vec!["-t", target.as_str(), "-a", "--", "/usr/bin/env", "-i"];
        args.extend(super::MACHINE_ENV);
        args.extend(["/bin/sh", "-c", script]);
        Program::NSENTER.output(&args, stdin)
    }
}

impl Nspawn {
    /// Starts nspawn in the background, in its cgroups, and records its pid.
    fn spawn(&self, m: &Machine, cgroups: &[PathBuf]) -> Result<u32, ProviderError> {
        use std::os::unix::process::CommandExt;
        let mut args = vec![
            "--quiet".to_string(),
            "--boot".into(),
            "--console=passive".into(),
            format!("--directory={}", m.file("root").display()),
            format!("--hostname={}", m.name),
            format!("--network-namespace-path=/run/netns/{}", m.netns()),
        ];
        if self.systemd_host {
            args.push(format!("--machine={}", machined_name(m)));
            args.push(format!("--property=MemoryMax={}M", m.memory));
        } else {
            args.push(format!("--machine={}", m.name));
            args.extend(["--register=no".into(), "--keep-unit".into()]);
        }
        // The shell joins the cgroups, then becomes nspawn: nspawn and
        // everything it starts are in them from the first instruction.
        let mut script = String::new();
        for cgroup in cgroups {
            let procs = cgroup.join("cgroup.procs");
            script.push_str(&format!(
                "echo $$ > {} && ",
                quote(&procs.to_string_lossy())
            ));
        }
        script.push_str("exec systemd-nspawn \"$@\"");
        let log_path = m.file("console.log");
        let log =
            std::fs::File::create(&log_path).map_err(ProviderError::io("create", &log_path))?;
        let err = log
            .try_clone()
            .map_err(ProviderError::io("open", &log_path))?;
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .arg("sh")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(ProviderError::io("run", "systemd-nspawn"))?;
        let pid = child.id();
        // Not waited for: the container outlives this command. The kernel
        // reparents it to init when bess exits.
        std::mem::forget(child);
        let pid_file = m.file("nspawn.pid");
        let record = format!("{pid} {}\n", start_time(pid).unwrap_or_default());
        std::fs::write(&pid_file, record).map_err(ProviderError::io("write", &pid_file))?;
        Ok(pid)
    }
}

/// The name machined knows the machine by: its id when short enough.
fn machined_name(m: &Machine) -> String {
    if m.id.len() <= 64 {
        m.id.clone()
    } else {
        m.id[m.id.len() - 64..].trim_start_matches('.').to_string()
    }
}

/// Mounts the overlay on `root/` unless it is mounted.
fn mount_root(m: &Machine) -> Result<(), ProviderError> {
    let root = m.file("root");
    if is_mounted(&root)? {
        return Ok(());
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        m.image.display(),
        m.file("upper").display(),
        m.file("work").display()
    );
    let root_arg = root.to_string_lossy();
    Program::MOUNT.run(&["-t", "overlay", "overlay", "-o", &options, &root_arg])?;
    Ok(())
}

fn unmount_root(m: &Machine) -> Result<(), ProviderError> {
    let root = m.file("root");
    if is_mounted(&root)? {
        Program::UMOUNT.run(&[&root.to_string_lossy()])?;
    }
    Ok(())
}

/// Whether `path` is a mount point, from /proc/self/mountinfo.
pub fn is_mounted(path: &Path) -> Result<bool, ProviderError> {
    let info = "/proc/self/mountinfo";
    let text = std::fs::read_to_string(info).map_err(ProviderError::io("read", info))?;
    let wanted = path.to_string_lossy().replace(' ', "\\040");
    Ok(text
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_str())))
}

/// The host name, fresh SSH host keys and the environment's key for root,
/// written before the first boot, when the root holds only the image.
fn write_identity(m: &Machine) -> Result<(), ProviderError> {
    let root = m.file("root");
    let write = |rel: &str, text: &str, mode: u32| -> Result<(), ProviderError> {
        use std::os::unix::fs::PermissionsExt;
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(ProviderError::io("create", parent))?;
        }
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, text).map_err(ProviderError::io("write", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(ProviderError::io("set the mode of", &path))
    };
    write("etc/hostname", &format!("{}\n", m.name), 0o644)?;
    let hosts = format!(
        "127.0.0.1\tlocalhost\n127.0.1.1\t{}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        m.name
    );
    write("etc/hosts", &hosts, 0o644)?;
    write(
        "root/.ssh/authorized_keys",
        &format!("{}\n", m.ssh_public_key.trim()),
        0o600,
    )?;
    let ssh_dir = root.join("etc/ssh");
    if let Ok(entries) = std::fs::read_dir(&ssh_dir) {
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    if ssh_dir.is_dir() {
        Program::SSH_KEYGEN.run(&["-A", "-f", &root.to_string_lossy()])?;
    }
    Ok(())
}

/// The nspawn process, if the pid file names one that is still it.
fn running_pid(m: &Machine) -> Result<Option<u32>, ProviderError> {
    let pid_file = m.file("nspawn.pid");
    let text = match std::fs::read_to_string(&pid_file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ProviderError::io("read", &pid_file)(e)),
    };
    let mut words = text.split_whitespace();
    let pid: Option<u32> = words.next().and_then(|w| w.parse().ok());
    let recorded = words.next().unwrap_or("");
    Ok(pid.filter(|&pid| start_time(pid).is_some_and(|t| t == recorded)))
}

/// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks.
pub(super) fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields resume after `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let state = rest.split(' ').next()?;
    if state == "Z" {
        return None;
    }
    rest.split(' ').nth(19).map(str::to_string)
}

/// The container's PID 1, nspawn's child.
fn leader(m: &Machine) -> Result<u32, ProviderError> {
    let not_running = || ProviderError::State {
        machine: m.name.clone(),
        problem: "is not running; start it with `bess env up`".into(),
    };
    let pid = running_pid(m)?.ok_or_else(not_running)?;
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map_err(|_| not_running())?;
    children
        .split_whitespace()
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(not_running)
}

/// Waits until the container's systemd has finished booting.
fn wait_for_boot(m: &Machine, pid: u32) -> Result<(), ProviderError> {
    let started = Instant::now();
    let failed = |problem: String| {
        let log = std::fs::read_to_string(m.file("console.log")).unwrap_or_default();
        ProviderError::State {
            machine: m.name.clone(),
            problem: format!(
                "{problem}; systemd-nspawn said:\n{}",
                super::command::last_lines(&log, 20)
            ),
        }
    };
    loop {
        if start_time(pid).is_none() {
            return Err(failed("the container stopped while booting".into()));
        }
        if started.elapsed() > BOOT_WAIT {
            return Err(failed(format!(
                "did not finish booting in {} s",
                BOOT_WAIT.as_secs()
            )));
        }
        if leader(m).is_ok() {
            let out = Nspawn::new().run(m, "systemctl is-system-running --wait", &[]);
            // `degraded` (a unit failed) still runs commands.
            if let Ok(out) = out
                && (out.stdout.contains("running") || out.stdout.contains("degraded"))
            {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM to nspawn (it asks the container's systemd to power off),
/// then SIGKILL to everything of the machine if that takes too long.
fn shut_down(m: &Machine, pid: u32) -> Result<(), ProviderError> {
    let recorded = start_time(pid);
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("a pid is positive"),
        rustix::process::Signal::TERM,
    );
    let started = Instant::now();
    while start_time(pid).is_some() && start_time(pid) == recorded {
        if started.elapsed() > STOP_WAIT {
            kill_cgroups(m)?;
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid as i32).expect("a pid is positive"),
                rustix::process::Signal::KILL,
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The cgroup hierarchies mounted on this host that a machine joins.
fn hierarchies() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        // Unified only.
        return vec![base.to_path_buf()];
    }
    ["systemd", "unified"]
        .iter()
        .map(|h| base.join(h))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

/// `bess/<machine id>` in each hierarchy.
fn cgroup_dirs(m: &Machine) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .map(|h| h.join("bess").join(&m.id))
        .collect()
}

/// Makes the machine's own cgroups.
fn own_cgroups(m: &Machine) -> Result<Vec<PathBuf>, ProviderError> {
    let dirs = cgroup_dirs(m);
    for dir in &dirs {
        std::fs::create_dir_all(dir).map_err(ProviderError::io("create the cgroup", dir))?;
    }
    Ok(dirs)
}

/// Every process id in a cgroup tree.
fn cgroup_pids(dir: &Path) -> Vec<i32> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() == "cgroup.procs")
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// SIGKILL to every process left in the machine's cgroups, until none is.
fn kill_cgroups(m: &Machine) -> Result<(), ProviderError> {
    for dir in cgroup_dirs(m) {
        for _ in 0..100 {
            let pids = cgroup_pids(&dir);
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// Removes the machine's cgroups, deepest first.
fn remove_cgroups(m: &Machine) -> Result<(), ProviderError> {
    for dir in cgroup_dirs(m) {
        if !dir.exists() {
            continue;
        }
        let mut dirs: Vec<PathBuf> = walkdir::WalkDir::new(&dir)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_dir())
            .map(|e| e.into_path())
            .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            std::fs::remove_dir(&d).map_err(ProviderError::io("remove the cgroup", &d))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time() {
        let me = std::process::id();
        assert!(start_time(me).is_some());
        assert!(start_time(u32::MAX - 1).is_none());
    }
}
