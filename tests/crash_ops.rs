//! kill -9 during gc, prune, backup, restore, box add and key rotation,
//! each at many instants: after every kill `bess repo check` passes, a real
//! `apt-get update` passes, and the same command run again completes.
//! (tests/crash.rs does the same for ingest and publish.)

mod common;

use common::apt::AptRoot;
use common::{DebSpec, Sandbox, have_tool};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Kills per operation, spread from the start to past the end of an
/// uninterrupted run.
const STEPS: u32 = 12;

/// A repository with `count` packages in preprod and the first half in prod.
fn repository(count: usize) -> Sandbox {
    let sb = Sandbox::new("bookworm,jammy", "amd64");
    let input = sb.path("base");
    for i in 0..count {
        DebSpec::new(&format!("base{i}"), "1.0", "amd64").build(&input);
    }
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    let half: Vec<String> = (0..count / 2).map(|i| format!("base{i}=1.0")).collect();
    let mut promote = vec!["repo", "promote"];
    promote.extend(half.iter().map(String::as_str));
    sb.ok(&promote);
    sb
}

/// `apt-get update` against both channels' trees, with the keys bess
/// exports now.
fn apt_updates(repo: &Path) {
    let key = repo.with_extension("key.gpg");
    let export = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", repo)
        .args(["key", "export"])
        .output()
        .unwrap();
    assert!(export.status.success());
    std::fs::write(&key, export.stdout).unwrap();
    let apt = AptRoot::new("amd64", "");
    for channel in ["preprod", "prod"] {
        let uri = format!("file:{}", repo.join("public").join(channel).display());
        apt.add_source(channel, &uri, "bookworm", &key);
    }
    apt.update(&[]);
}

fn check(repo: &Path, after: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", repo)
        .args(["repo", "check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bess repo check after {after}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bess(repo: &Path, args: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bess"));
    command
        .env("BESS_REPO", repo)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn run_ok(repo: &Path, args: &[String]) {
    let out = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", repo)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bess {args:?} after a kill:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One operation to kill: `prepare` sets up its work for run `n` and
/// returns its arguments; `repo` is the repository it leaves to check.
struct Victim<'a> {
    what: &'a str,
    prepare: &'a dyn Fn(u32) -> Vec<String>,
    repo: &'a dyn Fn(u32) -> PathBuf,
    /// Whether run `n` completed before the kill, so that running it
    /// again is rightly refused (a restore into a repository).
    completed: &'a dyn Fn(u32) -> bool,
}

/// Times three uninterrupted runs, then kills `STEPS` runs at instants
/// spread over the quickest; after each, checks and runs the command again.
fn kill_at_many_instants(victim: &Victim<'_>) {
    let full = (0..3)
        .map(|n| {
            let args = (victim.prepare)(1000 + n);
            let start = Instant::now();
            run_ok(&(victim.repo)(1000 + n), &args);
            start.elapsed()
        })
        .min()
        .unwrap();
    let mut interrupted = 0;
    for step in 0..STEPS {
        let args = (victim.prepare)(step);
        let repo = (victim.repo)(step);
        let delay = full.mul_f64(1.2 * f64::from(step) / f64::from(STEPS));
        let mut child = bess(&repo, &args).spawn().unwrap();
        std::thread::sleep(delay);
        interrupted += u32::from(child.try_wait().unwrap().is_none());
        let _ = child.kill();
        let _ = child.wait();
        let when = format!("{} killed at {delay:?}", victim.what);
        if repo.join(".bess-restore-unfinished").exists() {
            // A half-restored directory is refused, never taken for a
            // repository.
            let out = bess(&repo, &owned(&["repo", "check"]))
                .stderr(Stdio::piped())
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && said.contains("restore that did not finish"),
                "{when}: {said}"
            );
        } else if repo.join("bess.toml").exists() {
            check(&repo, &when);
            apt_updates(&repo);
        }
        if !(victim.completed)(step) {
            run_ok(&repo, &args);
        }
        check(&repo, &format!("{when}, then run again"));
        apt_updates(&repo);
    }
    eprintln!(
        "{}: {interrupted} of {STEPS} runs killed mid-way (an uninterrupted run takes {full:?})",
        victim.what
    );
    assert!(
        interrupted >= 2,
        "{}: only {interrupted} of {STEPS} runs were killed mid-way",
        victim.what
    );
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

#[test]
fn sigkill_during_gc_and_prune() {
    if !have_tool("dpkg-deb") || !have_tool("apt-get") {
        return;
    }
    let sb = repository(40);
    let input = sb.path("versions");
    // gc: each run has the objects of twenty removed versions to delete.
    let gc_prepare = |n: u32| {
        let dir = input.join(format!("gc{n}"));
        let mut remove = vec![
            "repo".to_string(),
            "remove".into(),
            "--channel".into(),
            "preprod".into(),
        ];
        for i in 0..20 {
            let version = format!("2.{n}.{i}");
            DebSpec::new(&format!("base{i}"), &version, "amd64").build(&dir);
            remove.push(format!("base{i}={version}"));
        }
        sb.ok(&["repo", "ingest", dir.to_str().unwrap()]);
        let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
        sb.ok(&remove);
        owned(&["repo", "gc"])
    };
    kill_at_many_instants(&Victim {
        what: "gc",
        prepare: &gc_prepare,
        repo: &|_| sb.repo.clone(),
        completed: &|_| false,
    });
    // prune: each run withdraws the older of two new versions of twenty
    // packages from preprod.
    let prune_prepare = |n: u32| {
        let dir = input.join(format!("prune{n}"));
        for i in 0..20 {
            for minor in 0..2 {
                DebSpec::new(&format!("base{i}"), &format!("3.{n}.{minor}"), "amd64").build(&dir);
            }
        }
        sb.ok(&["repo", "ingest", dir.to_str().unwrap()]);
        owned(&["repo", "prune", "--channel", "preprod", "--keep", "1"])
    };
    kill_at_many_instants(&Victim {
        what: "prune",
        prepare: &prune_prepare,
        repo: &|_| sb.repo.clone(),
        completed: &|_| false,
    });
}

#[test]
fn sigkill_during_box_add_and_key_rotation() {
    if !have_tool("dpkg-deb") || !have_tool("apt-get") || !have_tool("tar") {
        return;
    }
    let sb = repository(20);
    let boxes = sb.path("boxes");
    std::fs::create_dir_all(&boxes).unwrap();
    let box_prepare = |n: u32| {
        let dir = boxes.join(format!("b{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("metadata.json"),
            r#"{"provider": "libvirt", "format": "qcow2", "virtual_size": 1}"#,
        )
        .unwrap();
        // Eight MiB, distinct per run, so that the copy takes a while.
        let image = format!("disk image {n}\n").repeat(8 << 16);
        std::fs::write(dir.join("box.img"), image).unwrap();
        let file = boxes.join(format!("b{n}.box"));
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-cf")
            .arg(&file)
            .args(["metadata.json", "box.img"])
            .status()
            .unwrap();
        assert!(tar.success());
        owned(&[
            "box",
            "add",
            "acme/base",
            &format!("1.{n}.0"),
            file.to_str().unwrap(),
            "--provider",
            "libvirt",
        ])
    };
    kill_at_many_instants(&Victim {
        what: "box add",
        prepare: &box_prepare,
        repo: &|_| sb.repo.clone(),
        completed: &|_| false,
    });
    // Key rotation: even runs generate a key, odd runs retire the oldest
    // signing key (re-signing every dist either way).
    let key_prepare = |n: u32| {
        if n.is_multiple_of(2) || signing_keys(&sb).len() < 2 {
            return owned(&["key", "generate"]);
        }
        owned(&["key", "retire", &signing_keys(&sb)[0]])
    };
    kill_at_many_instants(&Victim {
        what: "key rotation",
        prepare: &key_prepare,
        repo: &|_| sb.repo.clone(),
        completed: &|_| false,
    });
}

/// The fingerprints of the signing keys, oldest first.
fn signing_keys(sb: &Sandbox) -> Vec<String> {
    let shown = sb.json(&["key", "show"]);
    shown["signing"]
        .as_array()
        .unwrap_or_else(|| panic!("key show --json: {shown}"))
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sigkill_during_backup_and_restore() {
    if !have_tool("dpkg-deb") || !have_tool("apt-get") {
        return;
    }
    let sb = repository(60);
    let backups = sb.path("backups");
    // Backup: each run backs up into a new directory (a first backup, the
    // longest kind), which the run after the kill completes.
    let backup_prepare =
        |n: u32| owned(&["backup", backups.join(format!("b{n}")).to_str().unwrap()]);
    kill_at_many_instants(&Victim {
        what: "backup",
        prepare: &backup_prepare,
        repo: &|_| sb.repo.clone(),
        completed: &|_| false,
    });
    // Restore: each run restores the last complete backup into a new
    // directory; the run after the kill restores into the same one.
    let source = backups.join("b0");
    let targets = sb.path("restored");
    std::fs::create_dir_all(&targets).unwrap();
    let restore_prepare = |n: u32| {
        owned(&[
            "restore",
            source.to_str().unwrap(),
            targets.join(format!("r{n}")).to_str().unwrap(),
        ])
    };
    kill_at_many_instants(&Victim {
        what: "restore",
        prepare: &restore_prepare,
        repo: &|n| targets.join(format!("r{n}")),
        completed: &|n| {
            let dir = targets.join(format!("r{n}"));
            dir.join("bess.toml").exists() && !dir.join(".bess-restore-unfinished").exists()
        },
    });
}
