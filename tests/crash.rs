//! Crash safety: bess is killed with SIGKILL at many instants of an
//! ingest + publish; every time, `bess repo check` and a real
//! `apt-get update` must still pass.

mod common;

use common::apt::AptRoot;
use common::{DebSpec, Sandbox, have_tool};
use std::time::{Duration, Instant};

#[test]
fn sigkill_at_any_instant_leaves_a_consistent_repository() {
    if !have_tool("dpkg-deb") || !have_tool("apt-get") {
        return;
    }
    let sb = Sandbox::new("bookworm,jammy", "amd64");
    // Enough packages that publishing takes a while to interrupt.
    let base = sb.path("base");
    for i in 0..40 {
        DebSpec::new(
            &format!("base{i}"),
            "1.0",
            if i % 4 == 0 { "all" } else { "amd64" },
        )
        .build(&base);
    }
    sb.ok(&["repo", "ingest", base.to_str().unwrap()]);
    let key = sb.path("key.gpg");
    std::fs::write(&key, sb.bess(&["key", "export"]).stdout).unwrap();
    let apt = AptRoot::new("amd64", "");
    let uri = format!("file:{}", sb.repo.join("public/preprod").display());
    apt.add_source("bess", &uri, "bookworm", &key);
    apt.update(&[]);

    // The quickest of three: one slow first run (cold caches, a busy
    // machine) stretched the kill schedule past the work it must cover.
    let full = (0..3)
        .map(|i| time_one_ingest(&sb, &format!("timing{i}")))
        .min()
        .expect("three timings");
    let steps = 30u32;
    let mut interrupted = 0;
    for step in 0..steps {
        let delay = full.mul_f64(1.2 * f64::from(step) / f64::from(steps));
        interrupted += u32::from(ingest_and_kill(&sb, &format!("victim{step}"), delay));
        let check = sb.bess(&["repo", "check"]);
        assert!(
            check.status.success(),
            "after SIGKILL at {delay:?}:\n{}",
            String::from_utf8_lossy(&check.stdout)
        );
        apt.update(&[]);
    }
    assert!(
        interrupted >= steps / 2,
        "only {interrupted} of {steps} runs were killed mid-way"
    );
    // Whatever was interrupted is published by the next publish.
    sb.ok(&["repo", "publish"]);
    let check = sb.ok(&["repo", "check"]);
    assert!(!check.contains("waiting"), "{check}");
}

/// How long one ingest + publish takes, uninterrupted.
fn time_one_ingest(sb: &Sandbox, name: &str) -> Duration {
    let deb = DebSpec::new(name, "1.0", "amd64").build(&sb.path(name));
    let start = Instant::now();
    sb.ok(&["repo", "ingest", deb.to_str().unwrap()]);
    start.elapsed()
}

/// Starts an ingest, kills it after `delay`; returns whether it was still running.
fn ingest_and_kill(sb: &Sandbox, name: &str, delay: Duration) -> bool {
    let deb = DebSpec::new(name, "1.0", "amd64").build(&sb.path(name));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", &sb.repo)
        .args(["repo", "ingest", deb.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}
