//! Load on loopback, bounded in count and time: apt clients updating in a
//! loop while packages are ingested and published every 200 ms, CLI
//! ingests racing API uploads, and idle keep-alive connections beyond
//! `max-connections` beside a slowloris sender. The short versions run in
//! CI; `BESS_SOAK=1` runs the long ones (two minutes of publishing, 5,000
//! idle connections).

mod common;

use common::server::{Server, add_user, basic, connect_from, host_arch, read_reply};
use common::{DebSpec, Sandbox, have_tool};
use std::io::{Read, Write};
use std::net::TcpStream;
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

#[test]
fn idle_keep_alive_connections_give_their_slots_to_a_real_client() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let arch = host_arch();
    let sb = Sandbox::new("bookworm", &arch);
    // Far larger than the socket buffers between the server and a reader
    // that stalls, so its download stays in flight through the flood.
    let big = DebSpec::new("big", "1.0-1", &arch)
        .compression("none")
        .payload(&"0123456789abcdef".repeat(3 << 19))
        .build(&sb.path("in"));
    sb.ok(&["repo", "ingest", big.to_str().unwrap()]);
    add_user(&sb.repo, READER, &["--read", "preprod"]);
    // Long enough that only eviction, never the header timeout, closes
    // an idle connection during the test.
    sb.edit_settings("header-timeout-secs = 10", "header-timeout-secs = 600");
    let (idle, addresses, max_connections) = if soak() {
        (5_000, 25, 4096)
    } else {
        sb.edit_settings("max-connections = 4096", "max-connections = 200");
        sb.edit_settings(
            "max-connections-per-address = 256",
            "max-connections-per-address = 64",
        );
        (250, 5, 200)
    };
    allow_open_files(idle as u64 + 1024);
    let server = Server::start(&sb.repo);
    let in_release = "/preprod/dists/bookworm/InRelease";
    let (status, expected) = server.get(in_release, Some(READER));
    assert_eq!(status, 200);

    let deb_path = format!("/preprod/pool/main/b/big/big_1.0-1_{arch}.deb");
    let download = SlowDownload::start(&server, &deb_path);
    let slowloris = Slowloris::start(server.port);
    let started = Instant::now();
    let idlers: Vec<TcpStream> = (0..idle)
        .map(|i| idle_connection(&server, &format!("127.0.0.{}", 10 + i % addresses)))
        .collect();
    eprintln!("{idle} idle connections opened in {:?}", started.elapsed());

    let request = format!(
        "GET {in_release} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic {}\r\n\r\n",
        basic(READER.0, READER.1)
    );
    let asked = Instant::now();
    let reply = server.exchange("127.0.0.1", request.as_bytes());
    let waited = asked.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.body == expected, "the InRelease published");
    let (rss, peak) = server.memory_kib();
    let trickled = slowloris.stop();
    let evicted = closed_cleanly(&idlers);
    eprintln!(
        "a real client was served in {waited:?} beside {idle} idle connections ({evicted} of \
         them evicted) and a slowloris sender ({trickled} connections); \
         RSS {} MiB, peak {} MiB",
        rss / 1024,
        peak / 1024
    );
    assert!(peak < 300 * 1024, "peak RSS {peak} KiB");
    // The download holds a slot throughout, so all the idle connections
    // cannot fit: at least the surplus went to newcomers.
    assert!(
        evicted >= idle - (max_connections - 1),
        "only {evicted} of {idle} idle connections were closed"
    );
    let body = download.finish();
    assert!(
        body == std::fs::read(&big).unwrap(),
        "the whole .deb, byte for byte"
    );
}

/// Raises this process's limit on open files (which `bess serve`, started
/// later, inherits) to at least `wanted`, within the hard limit.
fn allow_open_files(wanted: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= wanted,
        "this test needs {wanted} open files; the hard limit is {hard} (raise it with ulimit -Hn)"
    );
    if limit.current.is_some_and(|soft| soft < wanted) {
        limit.current = Some(wanted);
        setrlimit(Resource::Nofile, limit).expect("raise the soft limit on open files");
    }
}

/// A keep-alive connection from `source` that has had one answer and now
/// waits idle, as apt leaves them between runs.
fn idle_connection(server: &Server, source: &str) -> TcpStream {
    let mut stream = connect_from(source, server.port);
    stream
        .write_all(b"GET /key.gpg HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(read_reply(&mut stream).status, 200);
    stream
}

/// How many of `idlers` the server closed, each by a clean end of stream;
/// panics on a reset or on bytes nobody asked for.
fn closed_cleanly(idlers: &[TcpStream]) -> usize {
    let mut closed = 0;
    for mut stream in idlers {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("an idle connection read {other:?}, not an end of stream"),
        }
    }
    closed
}

/// A download read into a small window, then not read at all for a while:
/// its response stays in flight on the server.
struct SlowDownload {
    stream: TcpStream,
    received: Vec<u8>,
}

impl SlowDownload {
    /// Asks for `path` from its own address and reads the first 64 KiB.
    fn start(server: &Server, path: &str) -> SlowDownload {
        use socket2::{Domain, SockAddr, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        // Set before connecting, so the window the server sees stays small.
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        let remote: std::net::SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
        socket
            .bind(&SockAddr::from(std::net::SocketAddr::from((
                [127, 0, 0, 9],
                0,
            ))))
            .unwrap();
        socket.connect(&SockAddr::from(remote)).unwrap();
        let mut stream: TcpStream = socket.into();
        let ask = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\r\n",
            basic(READER.0, READER.1)
        );
        stream.write_all(ask.as_bytes()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut download = SlowDownload {
            stream,
            received: Vec::new(),
        };
        while download.received.len() < 64 * 1024 {
            download.read_some();
        }
        download
    }

    fn read_some(&mut self) -> usize {
        let mut buf = [0u8; 16 * 1024];
        let n = self.stream.read(&mut buf).expect("the download goes on");
        self.received.extend_from_slice(&buf[..n]);
        n
    }

    /// Reads the rest, in small reads, and returns the body.
    fn finish(mut self) -> Vec<u8> {
        let split = self
            .received
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head")
            + 4;
        let head = String::from_utf8_lossy(&self.received[..split]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_string())
            })
            .and_then(|v| v.parse().ok())
            .expect("a Content-Length");
        while self.received.len() < split + length {
            assert!(
                self.read_some() > 0,
                "the download was cut at {} bytes",
                self.received.len() - split
            );
        }
        self.received.split_off(split)
    }
}

/// A thread keeping connections open by sending a request head a byte at
/// a time, never finishing it, and reconnecting when the server closes one.
struct Slowloris {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u32>,
}

impl Slowloris {
    fn start(port: u16) -> Slowloris {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let head = b"GET /preprod/dists/bookworm/InRelease HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            let connect = || connect_from("127.0.0.8", port);
            let mut senders: Vec<(TcpStream, usize)> = (0..8).map(|_| (connect(), 0)).collect();
            let mut opened = senders.len() as u32;
            while !stopping.load(Ordering::Relaxed) {
                for (stream, sent) in &mut senders {
                    let byte = head.get(*sent).copied().unwrap_or(b'a');
                    if stream.write_all(&[byte]).is_ok() {
                        *sent += 1;
                    } else {
                        (*stream, *sent) = (connect(), 0);
                        opened += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            opened
        });
        Slowloris { stop, thread }
    }

    /// Stops sending; returns how many connections it opened in all.
    fn stop(self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}
