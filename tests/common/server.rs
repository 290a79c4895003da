//! A running `bess serve` on 127.0.0.1:0 for tests, users to log in with,
//! a raw HTTP/1.1 client, and an apt root that reads a channel through it.

use super::apt::AptRoot;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A `bess serve` child process, stopped with SIGTERM when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    /// Where its request log goes, when kept.
    log: Option<PathBuf>,
}

impl Server {
    /// Starts `bess serve` on the repository at `repo` and waits until it listens.
    pub fn start(repo: &Path) -> Server {
        Server::spawn(repo, None)
    }

    /// [`Server::start`], keeping the request log in `log` (see [`Server::log`]).
    pub fn start_logged(repo: &Path, log: &Path) -> Server {
        Server::spawn(repo, Some(log.to_path_buf()))
    }

    /// [`Server::start_logged`] with `bess --quiet serve`.
    pub fn start_quiet_logged(repo: &Path, log: &Path) -> Server {
        Server::spawn_with(repo, Some(log.to_path_buf()), &["--quiet"])
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        let path = self
            .log
            .as_ref()
            .expect("a server started with start_logged");
        std::fs::read_to_string(path).unwrap()
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with_env(repo: &Path, env: &[(&str, &str)]) -> Server {
        Server::spawn_full(repo, None, &[], env)
    }

    /// [`Server::start_logged`] with extra environment variables.
    pub fn start_logged_with_env(repo: &Path, log: &Path, env: &[(&str, &str)]) -> Server {
        Server::spawn_full(repo, Some(log.to_path_buf()), &[], env)
    }

    fn spawn(repo: &Path, log: Option<PathBuf>) -> Server {
        Server::spawn_with(repo, log, &[])
    }

    fn spawn_with(repo: &Path, log: Option<PathBuf>, global: &[&str]) -> Server {
        Server::spawn_full(repo, log, global, &[])
    }

    fn spawn_full(
        repo: &Path,
        log: Option<PathBuf>,
        global: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bess"));
        command
            .env("BESS_REPO", repo)
            .envs(env.iter().copied())
            .args(global)
            .args(["serve", "--listen", "127.0.0.1:0"]);
        Server::from_command(command, log)
    }

    /// Runs `command`, a `bess serve --listen 127.0.0.1:0` however it is
    /// started (as another user, another binary), and waits until it listens.
    pub fn from_command(mut command: Command, log: Option<PathBuf>) -> Server {
        let stderr = match &log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::null(),
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bess serve printed {line:?}"));
        Server { child, port, log }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory now and at its peak, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc status"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Sends `request` (a whole HTTP/1.1 request) from the loopback
    /// address `from` and reads the reply until the server closes.
    pub fn exchange(&self, from: &str, request: &[u8]) -> Reply {
        let mut stream = connect_from(from, self.port);
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).expect("a reply within 60 s");
        Reply::parse(&bytes)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET path`, optionally with basic auth; returns (status, body).
    pub fn get(&self, path: &str, user: Option<(&str, &str)>) -> (u16, Vec<u8>) {
        self.send("GET", path, user, b"")
    }

    /// One request with basic auth; returns the status and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        user: (&str, &str),
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        self.send(method, path, Some(user), body)
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        user: Option<(&str, &str)>,
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let auth = user
            .map(|(u, p)| format!("Authorization: Basic {}\r\n", basic(u, p)))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n",
            body.len()
        );
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).unwrap();
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response");
        let head = String::from_utf8_lossy(&bytes[..split]).to_string();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line in {head}"));
        (status, bytes[split + 4..].to_vec())
    }

    /// An apt root reading `channel` (dist `dist`) through this server as `user`.
    pub fn apt(&self, channel: &str, dist: &str, user: (&str, &str), workdir: &Path) -> AptRoot {
        let key = workdir.join(format!("key-{}.gpg", self.port));
        let (status, body) = self.get("/key.gpg", None);
        assert_eq!(status, 200);
        std::fs::write(&key, body).unwrap();
        let apt = AptRoot::new(&host_arch(), "");
        let auth = apt.root.join("etc/apt/auth.conf.d/bess.conf");
        let line = format!(
            "machine http://127.0.0.1:{}/{channel} login {} password {}\n",
            self.port, user.0, user.1
        );
        std::fs::write(&auth, line).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
        apt.add_source("bess", &format!("{}/{channel}", self.url()), dist, &key);
        apt
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM, so the graceful shutdown path runs.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A TCP connection to `port` on 127.0.0.1 from the loopback address
/// `source` (any of 127.0.0.0/8), so tests can act as several hosts.
pub fn connect_from(source: &str, port: u16) -> TcpStream {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&SockAddr::from(local)).unwrap();
    let remote: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    socket.connect(&SockAddr::from(remote)).unwrap();
    socket.into()
}

/// Reads one reply from `stream`: its head, then `Content-Length` bytes
/// (without waiting for the connection to close).
pub fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(split) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let reply = Reply::parse(&bytes);
            let length: usize = reply
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if bytes.len() >= split + 4 + length {
                return Reply::parse(&bytes[..split + 4 + length]);
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => return Reply::parse(&bytes),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "reading a reply: {e} after {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
}

/// A parsed HTTP/1.1 reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn parse(bytes: &[u8]) -> Reply {
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("an incomplete reply: {:?}", String::from_utf8_lossy(bytes)));
        let head = String::from_utf8_lossy(&bytes[..split]).to_string();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line in {head}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Reply {
            status,
            headers,
            body: bytes[split + 4..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The value of an `Authorization: Basic` header.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// Adds a `bess serve` user to the repository at `repo` (password on stdin).
pub fn add_user(repo: &Path, user: (&str, &str), rights: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", repo)
        .args(["user", "add", user.0, "--password-stdin"])
        .args(rights)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(user.1.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "bess user add {}", user.0);
}

/// This machine's Debian architecture.
pub fn host_arch() -> String {
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .expect("run dpkg");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
