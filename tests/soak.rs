//! Load on loopback, bounded in count and time: apt clients updating in a
//! loop while packages are ingested and published every 200 ms, and CLI
//! ingests racing API uploads. The short version runs in CI; `BESS_SOAK=1`
//! runs the long one (two minutes of publishing).

mod common;

use common::server::{Server, add_user, host_arch};
use common::{DebSpec, Sandbox, have_tool};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

const READER: (&str, &str) = ("reader", "reader-soak-password");
const UPLOADER: (&str, &str) = ("ci", "ci-soak-password");

fn soak() -> bool {
    std::env::var("BESS_SOAK").as_deref() == Ok("1")
}

#[test]
fn apt_updates_never_see_a_half_published_repository() {
    if !have_tool("dpkg-deb") || !have_tool("apt-get") {
        return;
    }
    let arch = host_arch();
    let sb = Sandbox::new("bookworm", &arch);
    let input = sb.path("base");
    for i in 0..30 {
        DebSpec::new(&format!("base{i}"), "1.0", &arch).build(&input);
    }
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    add_user(&sb.repo, READER, &["--read", "preprod"]);
    let server = Arc::new(Server::start(&sb.repo));
    let running = Duration::from_secs(if soak() { 120 } else { 12 });
    let stop = Arc::new(AtomicBool::new(false));
    let updates = Arc::new(AtomicU32::new(0));

    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (server, stop, updates) = (server.clone(), stop.clone(), updates.clone());
            let workdir = sb.path(&format!("client{i}"));
            std::fs::create_dir_all(&workdir).unwrap();
            std::thread::spawn(move || {
                let apt = server.apt("preprod", "bookworm", READER, &workdir);
                // Half of the clients fetch every index by hash only, as
                // apt does when asked to, the others by name.
                let by_hash: &[&str] = if i % 2 == 0 {
                    &[]
                } else {
                    &["-o", "Acquire::By-Hash=force"]
                };
                while !stop.load(Ordering::Relaxed) {
                    // AptRoot::update fails on any warning or error line:
                    // a hash mismatch, a missing index, a bad signature.
                    apt.update(by_hash);
                    updates.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let start = Instant::now();
    let mut publications = 0;
    while start.elapsed() < running {
        let dir = sb.path(&format!("wave{publications}"));
        DebSpec::new(
            &format!("wave{}", publications % 10),
            &format!("1.{publications}"),
            &arch,
        )
        .build(&dir);
        sb.ok(&["repo", "ingest", dir.to_str().unwrap()]);
        publications += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client
            .join()
            .expect("an apt client failed (see its panic above)");
    }
    let updates = updates.load(Ordering::Relaxed);
    eprintln!("{updates} apt-get updates, 0 failed, during {publications} publications");
    assert!(publications >= 10, "only {publications} publications");
    assert!(updates >= 8, "only {updates} updates");
    sb.ok(&["repo", "check"]);
}

#[test]
fn cli_ingests_and_api_uploads_at_once_all_land() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let arch = host_arch();
    let sb = Sandbox::new("bookworm", &arch);
    add_user(&sb.repo, UPLOADER, &["--upload", "preprod"]);
    let server = Arc::new(Server::start(&sb.repo));
    let (cli_runs, per_run, api_uploads) = (6, 5, 20);
    for run in 0..cli_runs {
        for i in 0..per_run {
            DebSpec::new(&format!("cli{run}x{i}"), "1.0", &arch)
                .build(&sb.path(&format!("cli{run}")));
        }
    }
    let api_dir = sb.path("api");
    let api_debs: Vec<_> = (0..api_uploads)
        .map(|i| DebSpec::new(&format!("api{i}"), "1.0", &arch).build(&api_dir))
        .collect();

    // Every CLI ingest and every upload starts at the same instant.
    let barrier = Arc::new(std::sync::Barrier::new(cli_runs + api_uploads));
    let mut workers = Vec::new();
    for run in 0..cli_runs {
        let (barrier, repo, dir) = (
            barrier.clone(),
            sb.repo.clone(),
            sb.path(&format!("cli{run}")),
        );
        workers.push(std::thread::spawn(move || {
            barrier.wait();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_bess"))
                .env("BESS_REPO", &repo)
                .args(["repo", "ingest"])
                .arg(&dir)
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }));
    }
    for deb in api_debs {
        let (barrier, server) = (barrier.clone(), server.clone());
        workers.push(std::thread::spawn(move || {
            let body = std::fs::read(&deb).unwrap();
            barrier.wait();
            let (status, reply) = server.request("POST", "/api/v1/packages", UPLOADER, &body);
            (status == 200, String::from_utf8_lossy(&reply).into_owned())
        }));
    }
    for worker in workers {
        let (ok, said) = worker.join().unwrap();
        assert!(ok, "{said}");
        assert!(!said.contains("database is locked"), "{said}");
    }
    let listed = sb.json(&["repo", "list", "--channel", "preprod"]);
    let names = common::rows(&listed);
    assert_eq!(
        names.len(),
        cli_runs * per_run + api_uploads,
        "every package is present: {listed}"
    );
    let log = sb.json(&["log", "--limit", "1000"]);
    let ingests = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "ingest")
        .count();
    assert_eq!(
        ingests,
        cli_runs * per_run + api_uploads,
        "one audit entry per uploaded package: {log}"
    );
    sb.ok(&["repo", "check"]);
}

#[test]
fn ten_thousand_wrong_passwords_from_one_address_leave_no_trace_in_memory() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let arch = host_arch();
    let sb = Sandbox::new("bookworm", &arch);
    DebSpec::new("app", "1.0", &arch).build(&sb.path("in"));
    sb.ok(&["repo", "ingest", sb.path("in").to_str().unwrap()]);
    add_user(&sb.repo, READER, &["--read", "preprod"]);
    let server = Server::start(&sb.repo);
    let path = "/preprod/dists/bookworm/InRelease";
    assert_eq!(server.get(path, Some(READER)).0, 200);
    // The baseline is taken after a first, smaller flood from another
    // address: each password-checking thread keeps its argon2 memory
    // (19 MiB) once it has checked a password, a fixed cost, not growth.
    let warm_up = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic {}\r\n\r\n",
        common::server::basic(READER.0, "wrong-warm-up")
    );
    for _ in 0..50 {
        server.exchange("127.0.0.2", warm_up.as_bytes());
    }
    std::thread::sleep(Duration::from_secs(3));
    let (baseline, _) = server.memory_kib();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..16)
            .map(|worker| {
                let server = &server;
                scope.spawn(move || {
                    (0..625)
                        .map(|i| {
                            let wrong = format!("wrong-{worker}-{i}");
                            server.get(path, Some((READER.0, &wrong))).0
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(statuses.len(), 10_000);
    let unexpected: Vec<_> = statuses
        .iter()
        .filter(|s| ![401, 429, 503].contains(*s))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let braked = statuses.iter().filter(|s| **s == 429).count();
    assert!(braked >= 9_900, "only {braked} of 10,000 were braked");
    let (after, peak) = server.memory_kib();
    eprintln!("RSS {baseline} KiB before, {after} KiB after, {peak} KiB at the peak");
    assert!(
        after < baseline + 8 * 1024,
        "RSS grew from {baseline} to {after} KiB"
    );
    // The brake is per address and user: another address is not slowed.
    let sent = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic {}\r\n\r\n",
        common::server::basic(READER.0, READER.1)
    );
    assert_eq!(server.exchange("127.0.0.77", sent.as_bytes()).status, 200);
}
