//! `bess backup` while `bess serve` runs and uploads land, `bess restore`,
//! `bess repo check` on the result, and apt-get reading the restored
//! repository through a new server: the same packages, the same indices.

mod common;

use common::server::{Server, add_user, host_arch};
use common::{DebSpec, Sandbox, have_tool};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const READER: (&str, &str) = ("web01", "reader-secret-1");
const UPLOADER: (&str, &str) = ("ci", "uploader-secret-1");

/// Runs bess on `repo` with --json; requires success.
fn bess_json(repo: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", repo)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bess {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Runs bess on `repo`; returns (success, stdout + stderr).
fn bess(repo: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", repo)
        .env("BESS_PASSWORD", UPLOADER.1)
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// (package, version, channel, dist) of every placement.
fn placements(repo: &Path) -> BTreeSet<(String, String, String, String)> {
    let listing = bess_json(repo, &["repo", "list"]);
    common::rows(&listing)
        .into_iter()
        .map(|(p, v, _, c, d)| (p, v, c, d))
        .collect()
}

/// Release without the fields a new publication changes.
fn release_body(repo: &Path, channel: &str) -> String {
    let path = repo.join(format!("public/{channel}/dists/bookworm/Release"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.starts_with("Date:") && !l.starts_with("Valid-Until:"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn check_passes(repo: &Path) {
    let report = bess_json(repo, &["repo", "check"]);
    assert_eq!(report["problems"], serde_json::json!([]), "{report:#}");
}

fn object_count(report: &serde_json::Value) -> u64 {
    report["objects"]["count"].as_u64().unwrap()
}

#[test]
fn backup_during_serve_and_uploads_restores_to_the_same_repository() {
    if !have_tool("dpkg-deb") || !have_tool("apt-get") {
        return;
    }
    let arch = host_arch();
    let sb = Sandbox::new("bookworm", &arch);
    let first = sb.path("first");
    for i in 0..4 {
        DebSpec::new(&format!("app{i}"), "1.0-1", &arch).build(&first);
    }
    sb.ok(&["repo", "ingest", first.to_str().unwrap()]);
    sb.ok(&["repo", "promote", "app0=1.0-1", "app1=1.0-1"]);
    add_user(&sb.repo, READER, &["--read", "prod"]);
    add_user(&sb.repo, UPLOADER, &["--upload", "preprod"]);
    let before = placements(&sb.repo);
    let server = Server::start(&sb.repo);

    // Uploads land one by one while the backup runs.
    let later = sb.path("later");
    let debs: Vec<_> = (0..6)
        .map(|i| DebSpec::new(&format!("late{i}"), "2.0-1", &arch).build(&later))
        .collect();
    let repo = sb.repo.clone();
    let url = server.url();
    let uploads = std::thread::spawn(move || {
        for (i, deb) in debs.iter().enumerate() {
            // Half through the server's API, half through the CLI.
            let (ok, text) = if i % 2 == 0 {
                let remote = ["--remote", &url, "--user", UPLOADER.0];
                let args = [&["repo", "ingest"][..], &remote, &[deb.to_str().unwrap()]];
                bess(&repo, &args.concat())
            } else {
                bess(&repo, &["repo", "ingest", deb.to_str().unwrap()])
            };
            assert!(ok, "{text}");
            let name = deb.file_name().unwrap().to_str().unwrap();
            let package = name.split('_').next().unwrap().to_string();
            let (ok, text) = bess(&repo, &["repo", "promote", &format!("{package}=2.0-1")]);
            assert!(ok, "{text}");
        }
    });
    // Backups one after another for as long as the uploads run (at most
    // eight): each must restore to one consistent state between the two.
    let mut backups = Vec::new();
    while backups.is_empty() || (!uploads.is_finished() && backups.len() < 8) {
        let dest = sb.path(&format!("backup{}", backups.len()));
        let report = bess_json(&sb.repo, &["backup", dest.to_str().unwrap()]);
        backups.push((dest, report));
    }
    uploads.join().unwrap();
    let after = placements(&sb.repo);
    for (dest, report) in &backups {
        let restored = dest.with_extension("restored");
        let args = [
            "restore",
            dest.to_str().unwrap(),
            restored.to_str().unwrap(),
        ];
        bess_json(&sb.repo, &args);
        check_passes(&restored);
        let seen = placements(&restored);
        assert!(seen.is_superset(&before), "{seen:?}");
        assert!(seen.is_subset(&after), "{seen:?}");
        let packages: BTreeSet<_> = seen.iter().map(|(p, ..)| p).collect();
        assert_eq!(object_count(report), packages.len() as u64);
        assert_eq!(report["keys"][0]["secret"], true, "{report:#}");
        eprintln!("a backup saw {} of {} packages", packages.len(), 10);
    }
    let (dest, report) = &backups[0];
    let dest_arg = dest.to_str().unwrap().to_string();
    drop(server);

    // A second backup copies only the objects uploaded since.
    let again = bess_json(&sb.repo, &["backup", &dest_arg]);
    let new = object_count(&again) - object_count(report);
    assert_eq!(again["copied"].as_u64(), Some(new), "{again:#}");
    assert_eq!(again["reused"].as_u64(), Some(object_count(report)));
    assert_eq!(object_count(&again), 10);

    let final_copy = sb.path("final");
    bess_json(
        &sb.repo,
        &["restore", &dest_arg, final_copy.to_str().unwrap()],
    );
    check_passes(&final_copy);
    assert_eq!(placements(&final_copy), after);
    for channel in ["preprod", "prod"] {
        assert_eq!(
            release_body(&final_copy, channel),
            release_body(&sb.repo, channel),
            "{channel}: the restored Release lists other indices or checksums"
        );
    }
    apt_sees_the_same(&sb, &final_copy);
}

/// apt-get through a server on the original and one on the restored copy:
/// the same versions, the same bytes.
fn apt_sees_the_same(sb: &Sandbox, restored: &Path) {
    let original = Server::start(&sb.repo);
    let copy = Server::start(restored);
    let work = sb.path("apt");
    std::fs::create_dir_all(&work).unwrap();
    let apt_original = original.apt("prod", "bookworm", READER, &work);
    let apt_copy = copy.apt("prod", "bookworm", READER, &work);
    apt_original.update(&[]);
    apt_copy.update(&[]);
    for package in ["app0", "late5"] {
        assert_eq!(apt_copy.versions(package), apt_original.versions(package));
    }
    assert_eq!(
        apt_copy.download("late5=2.0-1"),
        apt_original.download("late5=2.0-1")
    );
    let keys = (original.get("/key.gpg", None), copy.get("/key.gpg", None));
    assert_eq!(
        keys.0, keys.1,
        "the restored repository signs with the same key"
    );
}

#[test]
fn damaged_backup_object_fails_restore_and_verify_repairs_it() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let arch = host_arch();
    let sb = Sandbox::new("bookworm", &arch);
    let input = sb.path("in");
    DebSpec::new("tool", "1.0-1", &arch).build(&input);
    DebSpec::new("other", "1.0-1", &arch).build(&input);
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    let dest = sb.path("backup");
    let dest_arg = dest.to_str().unwrap().to_string();
    sb.ok(&["backup", &dest_arg]);

    let key_dir = dest.join("snapshots");
    let key = walkdir::WalkDir::new(&key_dir)
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "key"))
        .expect("a key file in the backup");
    use std::os::unix::fs::PermissionsExt;
    let mode = key.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "secret keys stay owner-only");

    let object = walkdir::WalkDir::new(dest.join("pool"))
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_type().is_file())
        .unwrap()
        .into_path();
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&object, &bytes).unwrap();

    let target = sb.path("restored");
    let message = sb.fails(&["restore", &dest_arg, target.to_str().unwrap()]);
    assert!(message.contains("is damaged"), "{message}");
    assert!(message.contains(&object.display().to_string()), "{message}");
    assert!(!target.exists(), "a failed restore leaves nothing behind");

    let catalog = key
        .path()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("catalog.db");
    let original = std::fs::read(&catalog).unwrap();
    let mut damaged = original.clone();
    damaged[2000] ^= 0xff;
    std::fs::write(&catalog, &damaged).unwrap();
    let message = sb.fails(&["restore", &dest_arg, target.to_str().unwrap()]);
    assert!(message.contains("catalog.db is damaged"), "{message}");
    std::fs::write(&catalog, &original).unwrap();

    // Sizes match, so a plain incremental backup keeps the damaged copy;
    // --verify hashes it and copies it again.
    let plain = sb.json(&["backup", &dest_arg]);
    assert_eq!(plain["copied"], 0, "{plain:#}");
    let verified = sb.json(&["backup", "--verify", &dest_arg]);
    assert_eq!(verified["copied"], 1, "{verified:#}");
    sb.ok(&["restore", &dest_arg, target.to_str().unwrap()]);
    check_passes(&target);
}

#[test]
fn backup_refuses_overlapping_or_foreign_directories() {
    let sb = Sandbox::new("bookworm", "amd64");
    let inside = sb.repo.join("public/backup");
    let message = sb.fails(&["backup", inside.to_str().unwrap()]);
    assert!(message.contains("overlaps the repository"), "{message}");
    assert!(!inside.exists());

    let foreign = sb.path("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let message = sb.fails(&["backup", foreign.to_str().unwrap()]);
    assert!(
        message.contains("neither empty nor a bess backup"),
        "{message}"
    );

    let message = sb.fails(&["restore", foreign.to_str().unwrap(), "/nonexistent/x"]);
    assert!(message.contains("not a bess backup"), "{message}");
    let busy = sb.path("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("x"), "x").unwrap();
    let dest = sb.path("backup");
    sb.ok(&["backup", dest.to_str().unwrap()]);
    let message = sb.fails(&["restore", dest.to_str().unwrap(), busy.to_str().unwrap()]);
    assert!(message.contains("not empty"), "{message}");
    assert_eq!(std::fs::read(busy.join("x")).unwrap(), b"x");
}
