//! `bess repo gc` through the real binary: what it frees, what it must
//! keep (objects a served publication still links), stale staging files,
//! and gc running in a loop while other processes ingest.

mod common;

use common::server::{Server, add_user};
use common::{DebSpec, Sandbox, have_tool};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

fn skip() -> bool {
    !have_tool("dpkg-deb")
}

fn pool_object(sb: &Sandbox, sha256: &str) -> PathBuf {
    sb.repo.join("pool").join(&sha256[..2]).join(sha256)
}

/// The SHA-256 the catalog records for the only version of `package`.
fn sha_of(sb: &Sandbox, package: &str) -> String {
    let versions = sb.json(&["repo", "versions", package]);
    versions[0]["sha256"].as_str().unwrap().to_string()
}

#[test]
fn gc_keeps_objects_a_served_publication_links_and_frees_them_once_withdrawn() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    DebSpec::new("keep", "1.0-1", "amd64").build(&input);
    let gone = DebSpec::new("gone", "1.0-1", "amd64").build(&input);
    let gone_bytes = std::fs::read(&gone).unwrap();
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    let sha = sha_of(&sb, "gone");
    add_user(
        &sb.repo,
        ("web01", "reader-password-1"),
        &["--read", "preprod"],
    );
    let server = Server::start(&sb.repo);
    let url = "/preprod/pool/main/g/gone/gone_1.0-1_amd64.deb";

    sb.ok(&[
        "repo",
        "remove",
        "gone=1.0-1",
        "--channel",
        "preprod",
        "--no-publish",
    ]);
    let kept = sb.json(&["repo", "gc"]);
    assert_eq!(kept["objects_deleted"], 0, "{kept:#}");
    assert_eq!(kept["objects_still_published"], 1);
    assert_eq!(kept["bytes_still_published"], gone_bytes.len());
    assert!(pool_object(&sb, &sha).is_file());
    let served = server.request("GET", url, ("web01", "reader-password-1"), b"");
    assert_eq!(
        served,
        (200, gone_bytes.clone()),
        "the live index still lists it"
    );

    sb.ok(&["repo", "publish"]);
    let freed = sb.json(&["repo", "gc"]);
    assert_eq!(freed["objects_deleted"], 1, "{freed:#}");
    assert_eq!(freed["bytes_freed"], gone_bytes.len());
    assert!(!pool_object(&sb, &sha).exists());
    assert!(pool_object(&sb, &sha_of(&sb, "keep")).is_file());
    let served = server.request("GET", url, ("web01", "reader-password-1"), b"");
    assert_eq!(served.0, 404);
    sb.ok(&["repo", "check"]);
    let stats = sb.json(&["repo", "stats"]);
    assert_eq!(
        (
            stats["objects"].as_u64(),
            stats["objects_unreferenced"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let again = sb.json(&["repo", "gc"]);
    assert_eq!(again["objects_deleted"], 0, "nothing left to collect");

    // Ingesting the same file again stores the object again.
    sb.ok(&["repo", "ingest", gone.to_str().unwrap()]);
    assert_eq!(std::fs::read(pool_object(&sb, &sha)).unwrap(), gone_bytes);
    sb.ok(&["repo", "check"]);
}

fn age(path: &Path, by: Duration) {
    let file = std::fs::File::open(path).unwrap();
    file.set_modified(SystemTime::now() - by).unwrap();
}

#[test]
fn gc_deletes_only_stale_staging_and_scratch_files() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let deb = DebSpec::new("app", "1.0-1", "amd64").build(&sb.path("in"));
    sb.ok(&["repo", "ingest", deb.to_str().unwrap()]);
    let shard = sb.repo.join("pool").join(&sha_of(&sb, "app")[..2]);
    let (old, fresh) = (shard.join(".tmp-99999-0"), shard.join(".tmp-99999-1"));
    std::fs::write(&old, vec![0u8; 1000]).unwrap();
    std::fs::write(&fresh, b"an ingest may still commit this").unwrap();
    age(&old, Duration::from_secs(2 * 86_400));
    let upload = sb.repo.join("tmp/upload-crashed");
    std::fs::create_dir_all(&upload).unwrap();
    std::fs::write(upload.join("x.deb"), vec![0u8; 500]).unwrap();
    age(&upload, Duration::from_secs(2 * 86_400));

    let dry = sb.json(&["repo", "gc", "--dry-run"]);
    assert_eq!(dry["temp_files_deleted"], 2);
    assert!(old.exists(), "a dry run deletes nothing");
    let done = sb.json(&["repo", "gc"]);
    assert_eq!(done["temp_files_deleted"], 2, "{done:#}");
    assert_eq!(done["temp_bytes_freed"], 1500);
    assert_eq!(done["objects_deleted"], 0);
    assert!(!old.exists() && !upload.exists());
    assert!(
        fresh.exists(),
        "a fresh staging file may belong to a running ingest"
    );
    sb.ok(&["repo", "check"]);
}

/// The warnings of `bess repo check --json`, which must pass.
fn check_warnings(sb: &Sandbox) -> Vec<String> {
    let report = sb.json(&["repo", "check"]);
    let warnings = report["warnings"].as_array().cloned().unwrap_or_default();
    warnings
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn staging_files_of_a_killed_ingest_are_reported_by_check_and_deleted_by_gc_after_an_hour() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let deb = DebSpec::new("app", "1.0-1", "amd64").build(&sb.path("in"));
    sb.ok(&["repo", "ingest", deb.to_str().unwrap()]);
    assert_eq!(check_warnings(&sb), Vec::<String>::new());
    // What `kill -9` during an ingest leaves: staging files in the shards.
    let shard = sb.repo.join("pool").join(&sha_of(&sb, "app")[..2]);
    let other = sb.repo.join("pool/00");
    std::fs::create_dir_all(&other).unwrap();
    let (old, older) = (shard.join(".tmp-4242-0"), other.join(".tmp-4242-1"));
    let fresh = shard.join(".tmp-4243-0");
    std::fs::write(&old, vec![1u8; 3000]).unwrap();
    std::fs::write(&older, vec![2u8; 1096]).unwrap();
    std::fs::write(&fresh, b"a running ingest may still commit this").unwrap();
    age(&old, Duration::from_secs(2 * 3600));
    age(&older, Duration::from_secs(30 * 3600));

    let warnings = check_warnings(&sb);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    for fragment in [
        "2 staging file(s) (4096 bytes)",
        "interrupted ingest",
        "`bess repo gc` deletes them",
    ] {
        assert!(
            warnings[0].contains(fragment),
            "{fragment:?} in {warnings:?}"
        );
    }
    let text = sb.ok(&["repo", "check"]);
    assert!(text.contains("warning"), "printed without --json: {text}");

    let done = sb.json(&["repo", "gc"]);
    assert_eq!(done["temp_files_deleted"], 2, "{done:#}");
    assert_eq!(done["temp_bytes_freed"], 4096);
    assert!(!old.exists() && !older.exists());
    assert!(fresh.exists(), "a staging file younger than an hour stays");
    assert_eq!(check_warnings(&sb), Vec::<String>::new());
}

/// Runs `bess repo gc --json` until told to stop; returns (runs, objects deleted).
fn gc_loop(repo: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let (mut runs, mut deleted) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            let out = Command::new(env!("CARGO_BIN_EXE_bess"))
                .env("BESS_REPO", &repo)
                .args(["repo", "gc", "--json"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            deleted += report["objects_deleted"].as_u64().unwrap();
            runs += 1;
        }
        (runs, deleted)
    })
}

#[test]
fn gc_racing_ingests_in_other_processes_never_loses_an_object() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let bulk = sb.path("bulk");
    for i in 0..40 {
        DebSpec::new(&format!("bulk{i}"), "1.0-1", "amd64").build(&bulk);
    }
    const CHURN: usize = 24;
    let churn: Vec<PathBuf> = (0..CHURN)
        .map(|i| DebSpec::new(&format!("churn{i}"), "1.0-1", "amd64").build(&sb.path("churn")))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let collector = gc_loop(sb.repo.clone(), stop.clone());

    sb.ok(&["repo", "ingest", bulk.to_str().unwrap()]);
    // Each churn package becomes garbage once its removal is published; the
    // even ones are then ingested again, racing gc for the same object.
    for (i, deb) in churn.iter().enumerate() {
        sb.ok(&["repo", "ingest", deb.to_str().unwrap()]);
        sb.ok(&[
            "repo",
            "remove",
            &format!("churn{i}=1.0-1"),
            "--channel",
            "preprod",
        ]);
        if i % 2 == 0 {
            sb.ok(&["repo", "ingest", deb.to_str().unwrap()]);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (runs, during) = collector.join().unwrap();
    let last = sb.json(&["repo", "gc"])["objects_deleted"]
        .as_u64()
        .unwrap();
    eprintln!("gc ran {runs} times during the ingests and deleted {during} object(s); then {last}");
    let deleted = during + last;
    assert!(
        (CHURN as u64 / 2..=CHURN as u64).contains(&deleted),
        "every odd churn object is collected, even ones at most once each: {deleted}"
    );

    let check = sb.bess(&["repo", "check", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert!(check.status.success(), "{report:#}");
    let listed = sb.json(&["repo", "list", "--channel", "preprod"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 40 + CHURN / 2);
    for entry in listed {
        let name = entry["package"].as_str().unwrap();
        let input = if name.starts_with("bulk") {
            &bulk
        } else {
            &sb.path("churn")
        };
        let original = std::fs::read(input.join(format!("{name}_1.0-1_amd64.deb"))).unwrap();
        let sha = entry["sha256"].as_str().unwrap();
        assert_eq!(
            std::fs::read(pool_object(&sb, sha)).unwrap(),
            original,
            "{name}"
        );
        let published = sb.published(
            "preprod",
            &format!("main/{}/{name}/{name}_1.0-1_amd64.deb", &name[..1]),
        );
        assert_eq!(
            std::fs::read(published).unwrap(),
            original,
            "{name} is served"
        );
    }
    for i in (1..CHURN).step_by(2) {
        let sha = sha_of(&sb, &format!("churn{i}"));
        assert!(!pool_object(&sb, &sha).exists(), "churn{i} was collected");
    }
}

#[test]
fn backups_after_a_gc_leave_out_collected_versions_and_restore_cleanly() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    DebSpec::new("keep", "1.0-1", "amd64").build(&input);
    DebSpec::new("gone", "1.0-1", "amd64").build(&input);
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    sb.ok(&["repo", "remove", "gone=1.0-1", "--channel", "preprod"]);
    let collected = sb.json(&["repo", "gc"]);
    assert_eq!(collected["objects_deleted"], 1, "{collected:#}");

    let dest = sb.path("backup");
    let backup = sb.json(&["backup", dest.to_str().unwrap()]);
    assert_eq!(
        backup["objects"]["count"], 1,
        "only the placed object: {backup:#}"
    );
    let restored = sb.path("restored");
    sb.ok(&[
        "restore",
        dest.to_str().unwrap(),
        restored.to_str().unwrap(),
    ]);
    let check = Command::new(env!("CARGO_BIN_EXE_bess"))
        .args(["--repo", restored.to_str().unwrap(), "repo", "check"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
