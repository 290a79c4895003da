//! What `bess repo ingest` does with files that are not packages before it
//! reads them: garbage is refused after a few bytes, not after reading a
//! gigabyte; devices, FIFOs and oversized files are refused without being
//! read (or, for a FIFO, without waiting for a writer).
//!
//! Each ingest runs with its data segment limited, so that a regression
//! fails the test instead of exhausting the machine, and a deadline, so that
//! a hang fails it too; its peak RSS comes from `wait4(2)`.

mod common;

use common::{DebSpec, Sandbox, have_tool};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a bounded run of bess ended.
struct Run {
    /// Exit code; `None` when killed (the deadline passed, or a signal).
    code: Option<i32>,
    stderr: String,
    /// Peak resident set size of the process, in KiB.
    max_rss_kib: i64,
    timed_out: bool,
}

/// Most heap a bounded run may have: far more than an ingest needs, far
/// less than reading a gigabyte into memory.
const DATA_LIMIT_KIB: u64 = 1 << 20;
/// How long a bounded run may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// Runs `bess ARGS` on the sandbox's repository under [`DATA_LIMIT_KIB`]
/// and [`DEADLINE`], killing it when the deadline passes.
fn bounded(sb: &Sandbox, args: &[&str]) -> Run {
    let stderr_path = sb.path(&format!("stderr-{}", std::process::id()));
    let script = format!("ulimit -d {DATA_LIMIT_KIB} && exec \"$0\" \"$@\"");
    // Reaped by `reap` (wait4), which also gives its resource usage.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_bess")])
        .args(args)
        .env("BESS_REPO", &sb.repo)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let mut timed_out = false;
    let (status, usage) = loop {
        if let Some(done) = reap(pid, libc::WNOHANG) {
            break done;
        }
        if started.elapsed() > DEADLINE {
            timed_out = true;
            child.kill().unwrap();
            break reap(pid, 0).expect("a killed child can be reaped");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Run {
        code,
        stderr: fs::read_to_string(&stderr_path).unwrap(),
        max_rss_kib: usage.ru_maxrss,
        timed_out,
    }
}

/// `wait4(2)`: the status and resource usage of `pid` once it has ended.
/// (`std::process::Child` reaps without giving the usage, and neither
/// rustix nor nix wraps wait4; getrusage(RUSAGE_CHILDREN) would mix in
/// every other child of this test process.)
fn reap(pid: libc::pid_t, flags: libc::c_int) -> Option<(libc::c_int, libc::rusage)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both out-pointers are valid for the call; `pid` is our child.
    let reaped = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
    assert!(reaped >= 0, "wait4: {}", std::io::Error::last_os_error());
    (reaped == pid).then_some((status, usage))
}

/// Checks that `run` was a prompt refusal saying `expected` and using
/// little memory.
fn refused_cheaply(what: &str, run: &Run, expected: &[&str]) {
    assert!(!run.timed_out, "{what}: still running after {DEADLINE:?}");
    assert_eq!(run.code, Some(1), "{what}: {}", run.stderr);
    for fragment in expected {
        assert!(
            run.stderr.contains(fragment),
            "{what}: {fragment:?} in: {}",
            run.stderr
        );
    }
    assert!(
        run.max_rss_kib < 100 << 10,
        "{what}: peak RSS {} MiB",
        run.max_rss_kib >> 10
    );
}

/// A sparse file of `len` bytes that starts with `head`.
fn sparse(path: &Path, head: &[u8], len: u64) {
    use std::io::Write;
    let mut file = fs::File::create(path).unwrap();
    file.write_all(head).unwrap();
    file.set_len(len).unwrap();
}

#[test]
fn a_gigabyte_of_garbage_is_refused_after_reading_a_few_bytes() {
    let sb = Sandbox::new("bookworm", "amd64");
    let garbage = sb.path("garbage.deb");
    sparse(&garbage, b"", 1 << 30);
    let run = bounded(&sb, &["repo", "ingest", garbage.to_str().unwrap()]);
    let expected = [
        garbage.to_str().unwrap(),
        "does not start with the ar archive header `!<arch>`",
    ];
    refused_cheaply("zeros", &run, &expected);

    // The right magic, then a member header that is all zeros.
    let broken = sb.path("broken-header.deb");
    sparse(&broken, b"!<arch>\n", 1 << 30);
    let run = bounded(&sb, &["repo", "ingest", broken.to_str().unwrap()]);
    let expected = ["ar member 0 at byte 8: the header does not end with the ar terminator"];
    refused_cheaply("zero header", &run, &expected);

    // A well-formed first member that claims more bytes than the file has.
    let mut head = b"!<arch>\n".to_vec();
    head.extend(
        format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            "debian-binary", 0, 0, 0, 100644, 9_999_999_999u64
        )
        .bytes(),
    );
    let past_end = sb.path("past-end.deb");
    sparse(&past_end, &head, 1 << 30);
    let run = bounded(&sb, &["repo", "ingest", past_end.to_str().unwrap()]);
    let expected = ["ar member 0 `debian-binary` claims 9999999999 bytes but only"];
    refused_cheaply("past end", &run, &expected);
    assert_eq!(sb.json(&["repo", "list"]).as_array().map(Vec::len), Some(0));
}

#[test]
fn a_device_is_refused_without_being_read() {
    let sb = Sandbox::new("bookworm", "amd64");
    let run = bounded(&sb, &["repo", "ingest", "/dev/zero"]);
    let expected = [
        "/dev/zero: is a character device, not a regular file",
        "name a .deb file",
    ];
    refused_cheaply("/dev/zero", &run, &expected);
}

#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    if !have_tool("mkfifo") {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let fifo = sb.path("fifo.deb");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let run = bounded(&sb, &["repo", "ingest", fifo.to_str().unwrap()]);
    let expected = [&format!(
        "{}: is a named pipe (FIFO), not a regular file",
        fifo.display()
    )[..]];
    refused_cheaply("FIFO", &run, &expected);
}

#[test]
fn packages_over_the_configured_size_are_refused_before_reading() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let settings = sb.repo.join("bess.toml");
    let text = fs::read_to_string(&settings).unwrap();
    assert!(
        text.contains("max-package-mib = 2048"),
        "the default is written out"
    );
    fs::write(
        &settings,
        text.replace("max-package-mib = 2048", "max-package-mib = 1"),
    )
    .unwrap();
    let big = sb.path("big.deb");
    sparse(&big, b"!<arch>\n", 3 << 20);
    let run = bounded(&sb, &["repo", "ingest", big.to_str().unwrap()]);
    let expected = [
        &format!(
            "{}: the file is 3145728 bytes (3.0 MiB), more than the 1 MiB a package may have",
            big.display()
        )[..],
        "[ingest] max-package-mib",
    ];
    refused_cheaply("over the limit", &run, &expected);

    // A real package under the limit is still read and ingested.
    let deb = DebSpec::new("small", "1.0-1", "amd64").build(&sb.path("in"));
    let run = bounded(&sb, &["repo", "ingest", deb.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(sb.json(&["repo", "list"]).as_array().map(Vec::len), Some(1));
}
