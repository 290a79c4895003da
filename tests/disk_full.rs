//! A full disk, for real: the repository (or its catalog, a backup's
//! destination, a restore's target) on a small tmpfs the test mounts and
//! fills. Ingest, publish, box add, backup and restore each run out of
//! space part-way and must say so and where; the catalog is unchanged, the
//! served publication still passes `apt-get update`, no temp file stays,
//! and once space is freed the same command succeeds and `bess repo check`
//! passes.

mod common;

use common::apt::AptRoot;
use common::{DebSpec, Sandbox, have_tool};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `kib` KiB mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(kib: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {}", dir.path().display());
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn available_kib(&self) -> u64 {
        let out = Command::new("df")
            .args(["-k", "--output=avail"])
            .arg(self.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap()
    }

    /// Fills the disk until `leave_kib` KiB stay free.
    fn fill(&self, leave_kib: u64) {
        let want = self.available_kib().saturating_sub(leave_kib) * 1024;
        let mut file = std::fs::File::create(self.filler()).unwrap();
        let block = vec![0u8; 64 * 1024];
        let mut written = 0;
        while written < want {
            let n = block.len().min((want - written) as usize);
            if file.write_all(&block[..n]).is_err() {
                break;
            }
            written += n as u64;
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }

    fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// Whether this test can mount filesystems: root with mount(8). Under CI
/// it must.
fn can_mount() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the full-disk tests mount tmpfs and must run as root under CI");
        }
        eprintln!("skipping: mounting a tmpfs needs root");
        return false;
    }
    have_tool("mount") && have_tool("dpkg-deb") && have_tool("apt-get")
}

/// A repository at `repo` with `app` 1.0 published in both channels.
fn repository(repo: &Path) -> Sandbox {
    let sb = Sandbox {
        dir: tempfile::tempdir().unwrap(),
        repo: repo.to_path_buf(),
        env: Vec::new(),
    };
    sb.ok(&[
        "init",
        repo.to_str().unwrap(),
        "--dists",
        "bookworm",
        "--archs",
        "amd64",
    ]);
    let input = sb.path("in");
    DebSpec::new("app", "1.0-1", "amd64").build(&input);
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    sb.ok(&["repo", "promote", "app=1.0-1"]);
    sb
}

/// A package of `kib` KiB that no compression shrinks.
fn big_deb(sb: &Sandbox, name: &str, kib: usize) -> PathBuf {
    let root = sb.path(&format!("{name}.root"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/share")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: QA <qa@example.com>\nDescription: a large package\n It fills a disk.\n"
        ),
    )
    .unwrap();
    let mut noise = vec![0u8; kib * 1024];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for byte in noise.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    std::fs::write(root.join("usr/share/noise"), noise).unwrap();
    let deb = sb.path(&format!("{name}.deb"));
    let out = Command::new("dpkg-deb")
        .args(["-Znone", "--root-owner-group", "--build"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    deb
}

/// What the catalog holds, as `bess repo list` and `bess box list` say.
fn catalog_view(sb: &Sandbox) -> String {
    let packages = sb.json(&["repo", "list"]);
    let boxes = sb.json(&["box", "list"]);
    format!("{packages}\n{boxes}")
}

/// Files a writer left behind: staging files, streamed uploads,
/// half-built generations and temp copies.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy();
            name.starts_with(".tmp-")
                || name.starts_with(".stream-")
                || name.contains(".tmp")
                || name.ends_with(".new")
                || name.ends_with(".partial")
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// `apt-get update` from the prod tree, as a client of the served files.
fn apt_still_updates(sb: &Sandbox) {
    let key = sb.path("key.gpg");
    std::fs::write(&key, sb.bess(&["key", "export"]).stdout).unwrap();
    let apt = AptRoot::new("amd64", "");
    let tree = sb.repo.join("public/prod");
    apt.add_source(
        "bess",
        &format!("file:{}", tree.display()),
        "bookworm",
        &key,
    );
    apt.update(&[]);
    assert_eq!(apt.versions("app"), ["1.0-1"]);
}

/// Runs `args`, which must fail saying the disk is full and naming a path
/// under `place`.
fn fails_full(sb: &Sandbox, args: &[&str], place: &Path) {
    let said = sb.fails(args);
    assert!(said.contains("disk is full"), "bess {args:?}: {said}");
    assert!(
        said.contains(place.to_str().unwrap()),
        "bess {args:?} must say where ({}): {said}",
        place.display()
    );
}

#[test]
fn ingest_publish_and_box_add_on_a_full_disk() {
    if !can_mount() {
        return;
    }
    let disk = SmallDisk::mount(12 * 1024);
    let repo = disk.path().join("repo");
    let sb = repository(&repo);
    let big = big_deb(&sb, "bulky", 2048);
    let catalog = catalog_view(&sb);

    // Ingest: the package's bytes do not fit.
    disk.fill(1024);
    fails_full(&sb, &["repo", "ingest", big.to_str().unwrap()], &repo);
    assert_eq!(leftovers(&repo), Vec::<PathBuf>::new());
    apt_still_updates(&sb);
    // Opening the catalog needs a few blocks for SQLite's shared memory.
    disk.free();
    assert_eq!(
        catalog_view(&sb),
        catalog,
        "a failed ingest changes nothing"
    );
    sb.ok(&["repo", "ingest", "--no-publish", big.to_str().unwrap()]);
    let catalog = catalog_view(&sb);

    // Publish: the disk is filled to a little less each time, so that
    // the publish runs out at different points of its work.
    let mut failures = 0;
    for leave_kib in [0, 4, 8, 16, 32, 64, 128] {
        disk.fill(leave_kib);
        let out = sb.bess(&["repo", "publish"]);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        disk.free();
        if out.status.success() {
            break;
        }
        failures += 1;
        assert!(
            said.contains("disk is full"),
            "{leave_kib} KiB left: {said}"
        );
        assert!(said.contains(repo.to_str().unwrap()), "{said}");
        assert_eq!(
            leftovers(&repo),
            Vec::<PathBuf>::new(),
            "{leave_kib} KiB left"
        );
        apt_still_updates(&sb);
        assert_eq!(catalog_view(&sb), catalog);
    }
    assert!(failures > 0, "the publish never ran out of space");
    sb.ok(&["repo", "publish"]);
    sb.ok(&["repo", "check"]);

    // Box add: a streamed upload runs out part-way.
    let box_dir = sb.path("box.d");
    std::fs::create_dir_all(&box_dir).unwrap();
    std::fs::write(
        box_dir.join("metadata.json"),
        r#"{"provider": "libvirt", "format": "qcow2", "virtual_size": 1}"#,
    )
    .unwrap();
    std::fs::copy(&big, box_dir.join("box.img")).unwrap();
    let box_file = sb.path("full.box");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&box_dir)
        .arg("-cf")
        .arg(&box_file)
        .args(["metadata.json", "box.img"])
        .status()
        .unwrap();
    assert!(tar.success());
    let catalog = catalog_view(&sb);
    disk.fill(1024);
    let add = [
        "box",
        "add",
        "acme/base",
        "1.0.0",
        box_file.to_str().unwrap(),
        "--provider",
        "libvirt",
    ];
    fails_full(&sb, &add, &repo);
    assert_eq!(leftovers(&repo), Vec::<PathBuf>::new());
    apt_still_updates(&sb);
    disk.free();
    assert_eq!(catalog_view(&sb), catalog);
    sb.ok(&add);
    sb.ok(&["repo", "check"]);
}

#[test]
fn backup_and_restore_on_a_full_disk() {
    if !can_mount() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let sb = repository(&home.path().join("repo"));
    let big = big_deb(&sb, "bulky", 2048);
    sb.ok(&["repo", "ingest", big.to_str().unwrap()]);

    // Backup: the destination's disk fills part-way; the backup there
    // stays absent (no backup.json), and the same command then succeeds.
    let disk = SmallDisk::mount(8 * 1024);
    let dest = disk.path().join("backup");
    disk.fill(1024);
    fails_full(&sb, &["backup", dest.to_str().unwrap()], &dest);
    assert!(!dest.join("backup.json").exists());
    assert_eq!(leftovers(disk.path()), Vec::<PathBuf>::new());
    disk.free();
    sb.ok(&["backup", dest.to_str().unwrap()]);

    // Restore: the target's disk fills part-way; the target is left as
    // it was (absent), and the same command then succeeds.
    let target_disk = SmallDisk::mount(12 * 1024);
    let target = target_disk.path().join("restored");
    target_disk.fill(1024);
    let restore = ["restore", dest.to_str().unwrap(), target.to_str().unwrap()];
    fails_full(&sb, &restore, target_disk.path());
    assert!(
        !target.join("bess.toml").exists(),
        "no half-restored repository"
    );
    assert_eq!(leftovers(target_disk.path()), Vec::<PathBuf>::new());
    target_disk.free();
    sb.ok(&restore);
    let restored = Sandbox {
        dir: tempfile::tempdir().unwrap(),
        repo: target.clone(),
        env: Vec::new(),
    };
    restored.ok(&["repo", "check"]);
    apt_still_updates(&restored);
}

#[test]
fn ingest_with_the_catalogs_own_filesystem_full() {
    if !can_mount() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let repo = home.path().join("repo");
    let sb = repository(&repo);
    // The catalog moves to a filesystem of its own, which then fills.
    let catalog_dir = repo.join("catalog");
    let saved = home.path().join("catalog.saved");
    let copy = Command::new("cp")
        .arg("-a")
        .arg(&catalog_dir)
        .arg(&saved)
        .status()
        .unwrap();
    assert!(copy.success());
    let disk = SmallDisk::mount(4 * 1024);
    let mount = Command::new("mount")
        .arg("--bind")
        .arg(disk.path())
        .arg(&catalog_dir)
        .status()
        .unwrap();
    assert!(mount.success());
    let _unbind = Unbind(catalog_dir.clone());
    let copy = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cp -a {}/. {}/",
            saved.display(),
            catalog_dir.display()
        ))
        .status()
        .unwrap();
    assert!(copy.success());
    let input = sb.path("more");
    for i in 0..20 {
        DebSpec::new(&format!("tool{i}"), "1.0-1", "amd64").build(&input);
    }
    let catalog = catalog_view(&sb);
    disk.fill(0);
    fails_full(
        &sb,
        &["repo", "ingest", input.to_str().unwrap()],
        &catalog_dir,
    );
    disk.free();
    assert_eq!(catalog_view(&sb), catalog, "the catalog is unchanged");
    assert_eq!(leftovers(&repo), Vec::<PathBuf>::new());
    apt_still_updates(&sb);
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    sb.ok(&["repo", "check"]);
}

/// Undoes the bind mount of the catalog directory.
struct Unbind(PathBuf);

impl Drop for Unbind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
