//! `systemctl reload bess` (SIGHUP): `bess serve` takes a new `bess.toml`
//! and a renewed certificate without dropping a connection, and keeps its
//! settings when the new file is broken.

mod common;

use common::server::{Server, add_user};
use common::{DebSpec, Sandbox, have_tool};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

const READER: (&str, &str) = ("reader", "reader-password-1");

/// A self-signed certificate for 127.0.0.1 named `name`, its key mode 0600.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert, key)
}

/// `curl -k` of `path`: the status and the certificate subject the server showed.
fn curl(server: &Server, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sk", "-v", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-u", &format!("{}:{}", READER.0, READER.1)])
        .arg(format!("https://127.0.0.1:{}{path}", server.port))
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let log = String::from_utf8_lossy(&out.stderr);
    let subject = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("*  subject: "))
        .unwrap_or("")
        .to_string();
    (status, subject)
}

/// One TLS connection kept open (openssl s_client), for keep-alive requests.
struct KeptConnection {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl KeptConnection {
    fn open(port: u16) -> KeptConnection {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-connect",
                &format!("127.0.0.1:{port}"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        KeptConnection {
            child,
            input,
            output,
        }
    }

    /// `GET /key.gpg` on this connection; the status.
    fn get_key(&mut self) -> u16 {
        self.input
            .write_all(b"GET /key.gpg HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        self.input.flush().unwrap();
        let mut status = String::new();
        self.output.read_line(&mut status).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.output.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.output.read_exact(&mut body).unwrap();
        status
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for KeptConnection {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGHUP and waits until the server's log says what became of it.
fn reload(server: &Server, log: &Path, outcome: &str) {
    let seen = std::fs::read_to_string(log)
        .unwrap()
        .matches(outcome)
        .count();
    let sent = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    for _ in 0..200 {
        if std::fs::read_to_string(log)
            .unwrap()
            .matches(outcome)
            .count()
            > seen
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no `{outcome}` in the log:\n{}",
        std::fs::read_to_string(log).unwrap()
    );
}

#[test]
fn sighup_reloads_settings_and_certificate_without_dropping_connections() {
    if !["dpkg-deb", "openssl", "curl"].iter().all(|t| have_tool(t)) {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    DebSpec::new("app", "1.0-1", "amd64").build(&input);
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    sb.ok(&["repo", "promote", "app=1.0-1"]);
    add_user(&sb.repo, READER, &["--read", "prod"]);
    let tls = sb.path("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let (cert, key) = certificate(&tls, "before.test");
    sb.edit_settings(
        "# tls-certificate = \"/etc/bess/tls/fullchain.pem\"",
        &format!("tls-certificate = \"{}\"", tls.join("live.pem").display()),
    );
    sb.edit_settings(
        "# tls-key = \"/etc/bess/tls/privkey.pem\"",
        &format!("tls-key = \"{}\"", tls.join("live.key").display()),
    );
    std::fs::rename(&cert, tls.join("live.pem")).unwrap();
    std::fs::rename(&key, tls.join("live.key")).unwrap();
    sb.edit_settings(
        "# [serve.allow]\n# prod = [\"10.0.0.0/8\", \"192.168.1.0/24\"]",
        "[serve.allow]\nprod = [\"10.0.0.0/8\"]",
    );
    let log = sb.path("serve.log");
    let server = Server::start_logged(&sb.repo, &log);
    let path = "/prod/dists/bookworm/InRelease";
    assert_eq!(curl(&server, path), (403, "CN=before.test".to_string()));
    let mut kept = KeptConnection::open(server.port);
    assert_eq!(kept.get_key(), 200);

    // A renewed certificate and a new allow-list.
    let (cert, key) = certificate(&tls, "after.test");
    std::fs::rename(&cert, tls.join("live.pem")).unwrap();
    std::fs::rename(&key, tls.join("live.key")).unwrap();
    sb.edit_settings("prod = [\"10.0.0.0/8\"]", "prod = [\"127.0.0.0/8\"]");
    reload(&server, &log, "reloaded");
    assert_eq!(curl(&server, path), (200, "CN=after.test".to_string()));
    assert_eq!(kept.get_key(), 200, "a connection opened before the reload");

    // A broken bess.toml is refused, naming the line; the settings stay.
    sb.edit_settings("[serve.allow]", "[serve.allow\n");
    reload(&server, &log, "reload refused");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("line"), "{text}");
    assert_eq!(curl(&server, path), (200, "CN=after.test".to_string()));
    assert_eq!(kept.get_key(), 200);
}
