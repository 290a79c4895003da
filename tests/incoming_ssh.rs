//! Uploads through a real OpenSSH server into the drop directory while
//! `bess serve` runs: a drop-only account (ChrootDirectory, ForceCommand
//! internal-sftp) as conf/sshd-drop-only.conf describes, and real `scp`
//! (OpenSSH 9's scp speaks SFTP). A .deb, a .changes with its .deb and a
//! corrupt .deb arrive where they should; a writer pausing mid-file is not
//! taken before it is done; twenty parallel uploads all arrive once.
//!
//! Needs root (sshd, a system user, a root-owned chroot): skipped
//! otherwise, failed under CI.

mod common;

use common::incoming::{audit, changes_text, left_over, preprod, sandbox, wait_until};
use common::server::Server;
use common::{DebSpec, have_tool};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The drop-only account the test creates when it is missing.
const USER: &str = "bess-drop-test";

/// How long bess may take to ingest an upload once it is complete.
const ARRIVAL: Duration = Duration::from_secs(30);

/// A running sshd, killed when dropped, and the key to log in with.
struct Sshd {
    child: Child,
    port: u16,
    /// `<base>/chroot/incoming`, the drop directory.
    drop: PathBuf,
    key: PathBuf,
    _base: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn running_as_root() -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the SSH upload test needs root under CI"
        );
        eprintln!("skipping: sshd and a drop-only user need root");
    }
    root
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("run");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The drop-only user: no shell, no password, but not locked (sshd
/// refuses a locked account even for keys).
fn ensure_user() {
    let exists = Command::new("id")
        .arg(USER)
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        run(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--home-dir",
            "/incoming",
            "--shell",
            "/usr/sbin/nologin",
            "--password",
            "*",
            USER,
        ]));
    }
}

/// A port free on loopback now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    /// Starts sshd on 127.0.0.1 with the drop-only account of conf/.
    fn start() -> Sshd {
        ensure_user();
        // ChrootDirectory: every component root-owned, writable by root
        // only. /tmp is world-writable, so the base lives in /run.
        let base = tempfile::Builder::new()
            .prefix("bess-sshd-")
            .tempdir_in("/run")
            .unwrap();
        let chmod = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        chmod(base.path(), 0o755);
        let (chroot, etc) = (base.path().join("chroot"), base.path().join("etc"));
        let drop = chroot.join("incoming");
        for dir in [&chroot, &etc, &drop] {
            std::fs::create_dir(dir).unwrap();
            chmod(dir, 0o755);
        }
        run(Command::new("chown").arg(format!("{USER}:")).arg(&drop));
        let host_key = etc.join("host_ed25519");
        let key = etc.join("client_ed25519");
        for file in [&host_key, &key] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(file));
        }
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        std::fs::write(etc.join("authorized_keys"), public).unwrap();
        chmod(&etc.join("authorized_keys"), 0o644);
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = etc.join("sshd_config");
        std::fs::write(&config, sshd_config(&etc, &chroot)).unwrap();
        let port = free_port();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(etc.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let sshd = Sshd {
            child,
            port,
            drop,
            key,
            _base: base,
        };
        let listening = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(
            listening,
            "sshd did not start listening on 127.0.0.1:{port}"
        );
        sshd
    }

    /// `scp FILES… USER@127.0.0.1:TARGET`, started.
    fn scp(&self, files: &[&Path], target: &str) -> Child {
        Command::new("scp")
            .args([
                "-q",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-i"])
            .arg(&self.key)
            .args(["-P", &self.port.to_string()])
            .args(files)
            .arg(format!("{USER}@127.0.0.1:{target}"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `scp` that must succeed.
    fn upload(&self, files: &[&Path], target: &str) {
        let out = self.scp(files, target).wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "scp to {target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The test's sshd: loopback only, keys only, and the drop-only match
/// block of conf/sshd-drop-only.conf for the test user.
fn sshd_config(etc: &Path, chroot: &Path) -> String {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/sshd-drop-only.conf"),
    )
    .unwrap();
    let block = example
        .split_once("Match User ci-upload")
        .map(|(_, block)| block)
        .expect("conf/sshd-drop-only.conf has a `Match User ci-upload` block");
    let block = block
        .replace("/srv/bess-drop", chroot.to_str().unwrap())
        .replace(
            "/etc/ssh/authorized_keys/%u",
            etc.join("authorized_keys").to_str().unwrap(),
        );
    format!(
        "ListenAddress 127.0.0.1\nHostKey {etc}/host_ed25519\nPidFile none\nUsePAM no\n\
         StrictModes no\nAuthorizedKeysFile {etc}/authorized_keys\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nAllowUsers {USER}\nSubsystem sftp internal-sftp\n\
         MaxStartups 64:30:200\n\
         Match User {USER}{block}",
        etc = etc.display()
    )
}

#[test]
fn scp_uploads_reach_preprod_through_a_drop_only_account() {
    if !running_as_root()
        || !["dpkg-deb", "scp", "ssh-keygen", "sshd"]
            .iter()
            .all(|t| have_tool(t))
    {
        return;
    }
    let sshd = Sshd::start();
    let sb = sandbox(Some(&sshd.drop), 1);
    let _server = Server::start(&sb.repo);
    let build = sb.path("build");

    // A plain .deb into a dist directory the account makes itself.
    let deb = DebSpec::new("viascp", "1.0", "amd64").build(&build);
    let mkdir = Command::new("sftp")
        .args([
            "-q",
            "-b",
            "-",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-i",
        ])
        .arg(&sshd.key)
        .args(["-P", &sshd.port.to_string(), &format!("{USER}@127.0.0.1")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut mkdir = mkdir;
    mkdir
        .stdin
        .take()
        .unwrap()
        .write_all(b"mkdir /incoming/bookworm\n")
        .unwrap();
    assert!(mkdir.wait().unwrap().success(), "sftp mkdir");
    sshd.upload(&[&deb], "/incoming/bookworm/");
    let arrived = |package: &str| {
        let package = package.to_string();
        let sb = &sb;
        move || preprod(sb).iter().any(|(p, _, _)| *p == package)
    };
    assert!(
        wait_until(ARRIVAL, arrived("viascp")),
        "the scp'd .deb never reached preprod"
    );
    assert_eq!(
        preprod(&sb),
        [("viascp".into(), "1.0".into(), "bookworm".into())]
    );

    // A .changes with its .deb, in one scp, the .changes first.
    let listed = DebSpec::new("withchanges", "1.0", "amd64").build(&build);
    let changes = build.join("withchanges.changes");
    std::fs::write(&changes, changes_text(&[&listed])).unwrap();
    sshd.upload(&[&changes, &listed], "/incoming/");
    assert!(
        wait_until(ARRIVAL, arrived("withchanges")),
        "the .changes upload never arrived"
    );

    // A corrupt .deb: rejected, with its reason, beside the uploads.
    let corrupt = build.join("corrupt_1.0_amd64.deb");
    std::fs::write(&corrupt, b"this is no package").unwrap();
    sshd.upload(&[&corrupt], "/incoming/");
    let reason = sshd.drop.join("rejected/corrupt_1.0_amd64.deb.reason");
    assert!(
        wait_until(ARRIVAL, || reason.is_file()),
        "the corrupt .deb was not rejected"
    );
    assert!(
        std::fs::read_to_string(&reason)
            .unwrap()
            .contains("not a Debian package")
    );

    slow_writer_is_not_taken_early(&sb, &sshd);
    twenty_parallel_uploads_all_arrive(&sb, &sshd);
    assert!(
        left_over(&sshd.drop).is_empty(),
        "{:?}",
        left_over(&sshd.drop)
    );
    sb.ok(&["repo", "check"]);
}

/// Writers that pause mid-file for longer than the quiet period, with
/// the file open, as an scp stalled on a slow link leaves it: half a .deb
/// (its ar headers also tell it is short), and a .changes whose .deb is
/// already there (only the watcher can tell it is not done). bess serve
/// must neither take nor reject either before it is written and closed.
fn slow_writer_is_not_taken_early(sb: &common::Sandbox, sshd: &Sshd) {
    let build = sb.path("slow");
    let whole = std::fs::read(DebSpec::new("slowly", "1.0", "amd64").build(&build)).unwrap();
    let deb_path = sshd.drop.join("slowly_1.0_amd64.deb");
    let mut deb = std::fs::File::create(&deb_path).unwrap();
    deb.write_all(&whole[..whole.len() / 2]).unwrap();
    let listed = DebSpec::new("slowchanges", "1.0", "amd64").build(&build);
    let info = build.join("slowchanges_1.0_amd64.buildinfo");
    std::fs::write(&info, "Format: 1.0\nSource: slowchanges\n").unwrap();
    for file in [&listed, &info] {
        std::fs::copy(file, sshd.drop.join(file.file_name().unwrap())).unwrap();
    }
    // Cut after its first listed file: what is written so far parses as
    // a .changes of the .deb alone, so only the watcher knows better.
    let text = changes_text(&[&listed, &info]);
    let checksums = text.find("Checksums-Sha256:\n").unwrap() + 18;
    let half = checksums + text[checksums..].find('\n').unwrap() + 1;
    let changes_path = sshd.drop.join("slowchanges.changes");
    let mut changes = std::fs::File::create(&changes_path).unwrap();
    changes.write_all(&text.as_bytes()[..half]).unwrap();
    // Several quiet periods and a safety-net pass: long enough to be
    // taken by mistake.
    std::thread::sleep(Duration::from_secs(7));
    for path in [&deb_path, &changes_path] {
        assert!(
            path.is_file(),
            "{} was taken while being written",
            path.display()
        );
    }
    let placed = preprod(sb);
    assert!(
        !placed.iter().any(|(p, _, _)| p.starts_with("slow")),
        "{placed:?}"
    );
    deb.write_all(&whole[whole.len() / 2..]).unwrap();
    changes.write_all(&text.as_bytes()[half..]).unwrap();
    drop((deb, changes));
    let done = || {
        let placed = preprod(sb);
        ["slowly", "slowchanges"]
            .iter()
            .all(|n| placed.iter().any(|(p, _, _)| p == n))
    };
    assert!(
        wait_until(ARRIVAL, done),
        "the slowly written uploads never arrived"
    );
    assert!(
        !sshd
            .drop
            .join("rejected")
            .join("slowchanges.changes")
            .exists()
    );
}

/// Twenty scp processes at once, each with its own package.
fn twenty_parallel_uploads_all_arrive(sb: &common::Sandbox, sshd: &Sshd) {
    let build = sb.path("parallel");
    let debs: Vec<PathBuf> = (0..20)
        .map(|i| DebSpec::new(&format!("parallel{i}"), "1.0", "amd64").build(&build))
        .collect();
    let uploads: Vec<Child> = debs
        .iter()
        .map(|deb| sshd.scp(&[deb], "/incoming/"))
        .collect();
    for upload in uploads {
        let out = upload.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "scp: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let all = || {
        let placed = preprod(sb);
        (0..20).all(|i| placed.iter().any(|(p, _, _)| *p == format!("parallel{i}")))
    };
    assert!(
        wait_until(Duration::from_secs(60), all),
        "not every parallel upload arrived"
    );
    let ingests = audit(sb, "ingest");
    for i in 0..20 {
        let package = format!("parallel{i}");
        let logged = ingests
            .iter()
            .filter(|e| e["package"] == package.as_str())
            .count();
        assert_eq!(logged, 1, "{package} ingested {logged} times");
    }
}
