//! `packaging/build-deb`: the .deb of bess itself, inspected with
//! dpkg-deb, judged by lintian, then ingested by bess and fetched back by
//! apt-get through `bess serve`.
//!
//! The test packages the binary cargo built for the tests (BESS_BIN), so CI
//! does not compile a second, release build.

mod common;

use common::server::{Server, add_user, host_arch};
use common::{Sandbox, have_tool};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs packaging/build-deb into `out`; returns the .deb it reports.
fn build_deb(out: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/build-deb");
    let result = Command::new(script)
        .env("BESS_BIN", env!("CARGO_BIN_EXE_bess"))
        .env("BESS_DEB_OUT", out)
        .output()
        .expect("run packaging/build-deb");
    assert!(
        result.status.success(),
        "build-deb failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let deb = PathBuf::from(String::from_utf8(result.stdout).unwrap().trim());
    assert!(deb.is_file(), "{} was not built", deb.display());
    deb
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_deb_has_unit_man_pages_completions_and_conffiles_and_passes_lintian() {
    if !["dpkg-deb", "dpkg-shlibdeps", "strip", "lintian", "apt-get"]
        .iter()
        .all(|tool| have_tool(tool))
    {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let deb = build_deb(out.path());
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("bess_{version}_{}.deb", host_arch())
    );
    let info = dpkg_deb(&["--info"], &deb);
    for field in ["Package: bess", "Depends: adduser, libc6", "Section: admin"] {
        assert!(info.contains(field), "{info}");
    }
    let contents = dpkg_deb(&["--contents"], &deb);
    for path in [
        "./usr/bin/bess",
        "./lib/systemd/system/bess.service",
        "./lib/systemd/system/bess-incoming.path",
        "./lib/systemd/system/bess-incoming.service",
        "./lib/systemd/system/bess-refresh.timer",
        "./lib/systemd/system/bess-refresh.service",
        "./lib/systemd/system/bess-frontend.service",
        "./usr/share/doc/bess/examples/frontend.toml",
        "./usr/share/man/man1/bess-repo-refresh.1.gz",
        "./usr/share/doc/bess/examples/sshd-drop-only.conf",
        "./usr/share/man/man1/bess-incoming-process.1.gz",
        "./usr/share/man/man1/bess.1.gz",
        "./usr/share/man/man1/bess-backup.1.gz",
        "./usr/share/man/man1/bess-repo-ingest.1.gz",
        "./usr/share/bash-completion/completions/bess",
        "./usr/share/zsh/vendor-completions/_bess",
        "./usr/share/fish/vendor_completions.d/bess.fish",
        "./etc/bess/bess.toml",
        "./etc/bess/dists.list",
        "./etc/bess/archs.list",
        "./usr/share/doc/bess/copyright",
        "./usr/share/doc/bess/changelog.Debian.gz",
        "./usr/share/doc/bess/examples/dists.list",
        "./usr/share/doc/bess/examples/archs.list",
        "./usr/share/doc/bess/examples/nginx/bess.conf",
        "./usr/share/doc/bess/examples/apache/bess.conf",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(path)),
            "{path} is not in the package:\n{contents}"
        );
    }
    check_files(&deb);
    check_lintian(&deb);
    ingest_and_serve(&deb, &version);
}

/// The unit, the conffiles, the maintainer scripts and the generated docs.
fn check_files(deb: &Path) {
    let root = tempfile::tempdir().unwrap();
    let control = root.path().join("DEBIAN");
    let unpack = Command::new("dpkg-deb")
        .arg("-R")
        .arg(deb)
        .arg(root.path())
        .status()
        .unwrap();
    assert!(unpack.success());
    let read = |rel: &str| std::fs::read_to_string(root.path().join(rel)).unwrap();
    let unit = read("lib/systemd/system/bess.service");
    for line in [
        "User=bess",
        "ExecStart=/usr/bin/bess serve",
        "Environment=BESS_REPO=/var/lib/bess",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/bess",
        "NoNewPrivileges=yes",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    verify_units(root.path(), &["bess.service"]);
    check_incoming_units(root.path());
    check_refresh_units(root.path());
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(
        conffiles,
        "/etc/bess/bess.toml\n/etc/bess/dists.list\n/etc/bess/archs.list\n"
    );
    // The configuration and its examples are conf/'s, byte for byte.
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    for (installed, source) in [
        ("etc/bess/bess.toml", "bess.toml"),
        ("usr/share/doc/bess/examples/dists.list", "dists.list"),
        ("usr/share/doc/bess/examples/archs.list", "archs.list"),
        (
            "usr/share/doc/bess/examples/nginx/bess.conf",
            "nginx/bess.conf",
        ),
        (
            "usr/share/doc/bess/examples/apache/bess.conf",
            "apache/bess.conf",
        ),
        (
            "usr/share/doc/bess/examples/sshd-drop-only.conf",
            "sshd-drop-only.conf",
        ),
    ] {
        let source = std::fs::read_to_string(conf.join(source)).unwrap();
        assert_eq!(read(installed), source, "{installed}");
    }
    assert!(read("etc/bess/archs.list").contains(&host_arch()));
    let etc = root.path().join("etc/bess");
    bess::config::RepoConfig::load(&etc).unwrap_or_else(|e| panic!("/etc/bess: {e}"));
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --quiet --system"), "{postinst}");
    for script in ["postinst", "prerm", "postrm"] {
        let syntax = Command::new("sh")
            .arg("-n")
            .arg(control.join(script))
            .status()
            .unwrap();
        assert!(syntax.success(), "{script} is not valid sh");
    }
    let completion = read("usr/share/bash-completion/completions/bess");
    assert!(completion.contains("backup") && completion.contains("restore"));
    let man = Command::new("gzip")
        .arg("-dc")
        .arg(root.path().join("usr/share/man/man1/bess-backup.1.gz"))
        .output()
        .unwrap();
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
    assert!(man.contains("verify"), "{man}");
}

/// The drop directory's pair for hosts without bess serve: the path unit
/// starts the service when a file is closed in /var/lib/bess/incoming, the
/// service runs one settling pass as bess; systemd reads both together.
fn check_incoming_units(root: &Path) {
    let units = root.join("lib/systemd/system");
    let path_unit = std::fs::read_to_string(units.join("bess-incoming.path")).unwrap();
    for line in [
        "PathChanged=/var/lib/bess/incoming",
        "Unit=bess-incoming.service",
    ] {
        assert!(
            path_unit.lines().any(|l| l == line),
            "{line} missing:\n{path_unit}"
        );
    }
    let service = std::fs::read_to_string(units.join("bess-incoming.service")).unwrap();
    for line in [
        "Type=oneshot",
        "User=bess",
        "Environment=BESS_REPO=/var/lib/bess",
        "ExecStart=/usr/bin/bess incoming process --settle",
        "ReadWritePaths=/var/lib/bess",
        "PrivateNetwork=yes",
    ] {
        assert!(
            service.lines().any(|l| l == line),
            "{line} missing:\n{service}"
        );
    }
    verify_units(root, &["bess-incoming.path", "bess-incoming.service"]);
}

/// The daily pair that signs Release files again before they expire, as
/// the bess user, whether or not bess serve runs.
fn check_refresh_units(root: &Path) {
    let units = root.join("lib/systemd/system");
    let timer = std::fs::read_to_string(units.join("bess-refresh.timer")).unwrap();
    for line in [
        "OnCalendar=daily",
        "Persistent=true",
        "WantedBy=timers.target",
    ] {
        assert!(timer.lines().any(|l| l == line), "{line} missing:\n{timer}");
    }
    let service = std::fs::read_to_string(units.join("bess-refresh.service")).unwrap();
    for line in [
        "Type=oneshot",
        "User=bess",
        "ExecStart=/usr/bin/bess repo refresh --due",
        "ReadWritePaths=/var/lib/bess",
    ] {
        assert!(
            service.lines().any(|l| l == line),
            "{line} missing:\n{service}"
        );
    }
    verify_units(root, &["bess-refresh.timer", "bess-refresh.service"]);
}

/// systemd itself reads the units, together: an unknown key, a bad value
/// or a missing binary is reported (on stderr, often with success). The
/// copies point ExecStart at the unpacked binary, as it would be installed.
fn verify_units(root: &Path, names: &[&str]) {
    if !have_tool("systemd-analyze") {
        return;
    }
    let units = root.join("lib/systemd/system");
    let installed = root.join("usr/bin/bess");
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        let unit = std::fs::read_to_string(units.join(name)).unwrap();
        let unit = unit.replace("/usr/bin/bess", installed.to_str().unwrap());
        std::fs::write(dir.path().join(name), unit).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(names.iter().map(|n| dir.path().join(n)))
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify {names:?}:\n{complaints}"
    );
}

/// lintian may warn, never err.
fn check_lintian(deb: &Path) {
    let out = Command::new("lintian")
        .args(["--no-cfg", "--display-level", ">=warning"])
        .arg(deb)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{text}");
    if !text.trim().is_empty() {
        eprintln!("lintian:\n{text}");
    }
}

/// bess ingests its own package and apt-get downloads it back, unchanged.
fn ingest_and_serve(deb: &Path, version: &str) {
    const READER: (&str, &str) = ("apt", "apt-reader-secret");
    let sb = Sandbox::new("bookworm", &host_arch());
    sb.ok(&["repo", "ingest", deb.to_str().unwrap()]);
    add_user(&sb.repo, READER, &["--read", "preprod"]);
    let server = Server::start(&sb.repo);
    let work = sb.path("apt");
    std::fs::create_dir_all(&work).unwrap();
    let apt = server.apt("preprod", "bookworm", READER, &work);
    apt.update(&[]);
    assert_eq!(apt.versions("bess"), [version]);
    assert_eq!(
        apt.download(&format!("bess={version}")),
        std::fs::read(deb).unwrap()
    );
}

/// Purges the installed bess when dropped, even after a failed assertion.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "bess"]).output();
    }
}

/// What `find /var/lib/bess -user root` prints, one path per line.
fn root_owned(dir: &str) -> Vec<String> {
    let out = Command::new("find")
        .args([dir, "-user", "root"])
        .output()
        .unwrap();
    let mut paths: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    paths.sort();
    paths
}

#[test]
fn the_installed_package_stays_owned_by_bess_when_root_runs_the_cli() {
    if !running_as_root()
        || !["dpkg", "runuser", "dpkg-deb", "adduser"]
            .iter()
            .all(|t| have_tool(t))
    {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the package test must run as root with dpkg under CI");
        }
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let deb = build_deb(out.path());
    let _ = Command::new("dpkg").args(["--purge", "bess"]).output();
    let installed = Command::new("dpkg")
        .args(["-i", deb.to_str().unwrap()])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap();
    let _purge = Installed;
    assert!(
        installed.status.success(),
        "dpkg -i: {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    assert!(
        Path::new("/etc/systemd/system/timers.target.wants/bess-refresh.timer").exists(),
        "postinst must enable bess-refresh.timer"
    );
    let repo = "/var/lib/bess";
    // The packages to ingest must be readable by bess, which root becomes.
    let input = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(input.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = common::DebSpec::new("rootmade", "1.0-1", &host_arch());
    let local = spec.build(input.path());
    let bess = |args: &[&str]| {
        let out = Command::new("/usr/bin/bess")
            .args(["--verbose", "--repo", repo])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "bess {args:?}: {text}");
        text
    };
    let said = bess(&["repo", "ingest", local.to_str().unwrap()]);
    assert!(said.contains("running as bess"), "{said}");
    add_user(
        Path::new(repo),
        ("ci", "ci-upload-secret"),
        &["--upload", "preprod"],
    );
    // As the service runs it: the installed binary, as the bess user.
    let mut serve = Command::new("runuser");
    serve
        .args([
            "-u",
            "bess",
            "--",
            "/usr/bin/bess",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("BESS_REPO", repo);
    let server = Server::from_command(serve, None);
    let upload = common::DebSpec::new("uploaded", "1.0-1", &host_arch()).build(input.path());
    let body = std::fs::read(&upload).unwrap();
    let credentials = ("ci", "ci-upload-secret");
    let (status, reply) = server.request("POST", "/api/v1/packages", credentials, &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    drop(server);
    assert_eq!(
        root_owned(repo),
        [
            "/var/lib/bess/archs.list",
            "/var/lib/bess/bess.toml",
            "/var/lib/bess/dists.list"
        ],
        "only the configuration symlinks may belong to root"
    );
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
