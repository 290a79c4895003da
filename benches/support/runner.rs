//! Runs the commands a benchmark measures: output to a log file, exit status checked, wall
//! clock timed, peak RSS measured, and argv batching under ARG_MAX.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// GNU time forks the measured command from its own small process. Our children cannot be
/// measured directly: Rust spawns with vfork semantics, and exec records the parent's
/// high-water RSS as the child's starting ru_maxrss, so a tool would appear at least as big
/// as this benchmark process.
const GNU_TIME: &str = "/usr/bin/time";

/// How peak memory is measured, for the report.
pub fn rss_method() -> &'static str {
    if Path::new(GNU_TIME).is_file() {
        "`/usr/bin/time -f %M` (ru_maxrss of the command itself), max over its invocations"
    } else {
        "ru_maxrss from wait4(2); /usr/bin/time is missing, so values include this benchmark's own peak as a floor"
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Measurement {
    pub wall: Duration,
    /// User plus system time of the command and its descendants: less sensitive than the
    /// wall clock to other load on a shared machine.
    pub cpu: Duration,
    pub peak_rss_kib: u64,
    /// The command ran past its [`cap`] and was stopped: the figures are
    /// what it had used by then, a lower bound.
    pub stopped: bool,
}

/// What wait4 tells about a finished child.
struct Reaped {
    status: ExitStatus,
    cpu: Duration,
    max_rss_kib: u64,
}

/// Flushes dirty pages, so writeback left by one tool is not charged to the next one.
pub fn settle_filesystem() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// Runs an untimed step (setup, verification) with its output appended to `log`.
pub fn run_logged(command: &mut Command, log: &Path) -> Result<()> {
    let reaped = spawn_and_reap(command, log)?;
    check_status(command, reaped.status, log)
}

/// Runs `commands` one after another, timing the whole sequence: a tool that needs several
/// invocations pays for all of them. Stops at the first failure.
pub fn time_commands(commands: &mut [Command], log: &Path) -> Result<Measurement> {
    let started = Instant::now();
    let (mut cpu, mut peak_rss_kib, mut stopped) = (Duration::ZERO, 0, false);
    for command in commands.iter_mut() {
        let reaped = measure(command, log)?;
        cpu += reaped.cpu;
        peak_rss_kib = peak_rss_kib.max(reaped.max_rss_kib);
        stopped = was_capped(command, reaped.status);
        if stopped {
            break;
        }
        check_status(command, reaped.status, log)?;
    }
    let wall = started.elapsed();
    Ok(Measurement {
        wall,
        cpu,
        peak_rss_kib,
        stopped,
    })
}

/// `command` run by coreutils' `timeout`, which stops it (TERM, then KILL
/// 30 s later) once `limit` has passed: a peer that takes hours at some
/// size is measured up to the limit instead of holding up the whole run.
pub fn cap(command: &Command, limit: Duration) -> Command {
    let mut timeout = Command::new("timeout");
    timeout.args(["--kill-after=30", &format!("{}s", limit.as_secs())]);
    wrap(timeout, command)
}

/// Whether `timeout` (from [`cap`]) stopped the command: it exits 124
/// when the limit passed, 137 when the command then needed a KILL.
fn was_capped(command: &Command, status: ExitStatus) -> bool {
    command.get_program() == "timeout" && matches!(status.code(), Some(124 | 137))
}

/// Runs through GNU time when installed, for a peak RSS of the command alone. CPU time still
/// comes from wait4: it includes the reaped command, and GNU time's own share is negligible.
fn measure(command: &mut Command, log: &Path) -> Result<Reaped> {
    if !Path::new(GNU_TIME).is_file() {
        return spawn_and_reap(command, log);
    }
    let rss_file = log.with_extension("maxrss");
    let mut reaped = spawn_and_reap(&mut wrap_in_gnu_time(command, &rss_file), log)?;
    // On failure GNU time writes a status line first; the number is always the last line.
    let report = std::fs::read_to_string(&rss_file).unwrap_or_default();
    std::fs::remove_file(&rss_file).ok();
    let rss_kib = report
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or(0);
    reaped.max_rss_kib = rss_kib;
    Ok(reaped)
}

fn wrap_in_gnu_time(command: &Command, rss_file: &Path) -> Command {
    let mut time = Command::new(GNU_TIME);
    time.args(["-f", "%M", "-o"]).arg(rss_file);
    wrap(time, command)
}

/// `wrapper` (a program and its own arguments) running `command`, in
/// `command`'s directory and environment.
fn wrap(mut wrapper: Command, command: &Command) -> Command {
    wrapper.arg(command.get_program()).args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        wrapper.current_dir(dir);
    }
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapper.env(key, value),
            None => wrapper.env_remove(key),
        };
    }
    wrapper
}

/// Spawns and reaps with wait4 directly, which, unlike `Child::wait`, also returns the
/// child's resource usage.
fn spawn_and_reap(command: &mut Command, log: &Path) -> Result<Reaped> {
    let stdout = append_to(log)?;
    let stderr = stdout.try_clone()?;
    let child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {}", describe(command)))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain old data; an all-zero value is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers refer to live locals; pid is our own unreaped child.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err).context("wait4");
        }
    }
    Ok(Reaped {
        status: ExitStatus::from_raw(status),
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
    })
}

fn timeval(time: libc::timeval) -> Duration {
    Duration::from_secs(time.tv_sec.max(0) as u64)
        + Duration::from_micros(time.tv_usec.max(0) as u64)
}

fn append_to(log: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening log {}", log.display()))
}

fn check_status(command: &Command, status: ExitStatus, log: &Path) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    bail!(
        "{} exited with {status} (log {}):\n{}",
        describe(command),
        log.display(),
        log_tail(log, 8)
    )
}

/// The last `lines` lines of a log, to show why a command failed.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Program and first arguments, enough to recognise a command in an error message.
fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(
        command
            .get_args()
            .take(6)
            .map(|a| a.to_string_lossy().into_owned()),
    );
    if command.get_args().len() > 6 {
        words.push(format!(
            "... ({} more arguments)",
            command.get_args().len() - 6
        ));
    }
    words.join(" ")
}

/// Splits `args` into as few batches as fit in one exec each, next to `fixed` arguments.
/// The kernel counts every argument and environment string plus its pointer against ARG_MAX.
pub fn argv_batches<'a, T: AsRef<OsStr>>(fixed: &[&str], args: &'a [T]) -> Vec<&'a [T]> {
    let cost = |s: &OsStr| s.len() + 1 + size_of::<usize>();
    let environment: usize = std::env::vars_os().map(|(k, v)| cost(&k) + cost(&v)).sum();
    let fixed_cost: usize = fixed.iter().map(|a| cost(OsStr::new(a))).sum();
    // SAFETY: sysconf has no memory-safety preconditions.
    let arg_max =
        usize::try_from(unsafe { libc::sysconf(libc::_SC_ARG_MAX) }).unwrap_or(128 * 1024);
    // Headroom for what the count above misses (auxv, alignment, the program path).
    let budget = arg_max
        .saturating_sub(environment + fixed_cost + 32 * 1024)
        .max(4096);
    let mut batches = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (index, arg) in args.iter().enumerate() {
        let arg_cost = cost(arg.as_ref());
        if used + arg_cost > budget && index > start {
            batches.push(&args[start..index]);
            (start, used) = (index, 0);
        }
        used += arg_cost;
    }
    if start < args.len() {
        batches.push(&args[start..]);
    }
    batches
}
