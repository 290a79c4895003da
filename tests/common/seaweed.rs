//! A real SeaweedFS cluster for the S3 tests, on loopback only: one
//! master, two volume servers with replication `001` (every object on
//! both), and a filer with its S3 gateway, in a temp dir, on free ports.
//! Everything is killed when the cluster is dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The S3 identity the gateway accepts.
pub const ACCESS_KEY: &str = "bess-test";
pub const SECRET_KEY: &str = "bess-test-secret-0123456789";

/// The ports one `weed` server listens on.
#[derive(Debug, Clone, Copy)]
struct Ports {
    http: u16,
    grpc: u16,
}

/// A running cluster.
pub struct Seaweed {
    dir: tempfile::TempDir,
    master: Ports,
    volume_ports: [Ports; 2],
    filer: Ports,
    s3: Ports,
    processes: Vec<(String, Child)>,
    /// The bucket the cluster was started with.
    pub bucket: String,
}

impl Seaweed {
    /// Starts a cluster with `bucket` created, or `None` (the test skips)
    /// when `weed` is not installed outside CI.
    pub fn start(bucket: &str) -> Option<Seaweed> {
        if !super::have_tool("weed") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut held = Vec::new();
        let mut next = || Ports {
            http: free_port(&mut held),
            grpc: free_port(&mut held),
        };
        let (master, volume_ports, s3) = (next(), [next(), next()], next());
        // The S3 gateway reaches the filer's gRPC at its HTTP port + 10000
        // (weed has no flag to say otherwise).
        let filer = free_port_pair(&mut held, 10_000);
        drop(held);
        let mut cluster = Seaweed {
            dir,
            master,
            volume_ports,
            filer,
            s3,
            processes: Vec::new(),
            bucket: bucket.to_string(),
        };
        cluster.start_master();
        for volume in 0..2 {
            cluster.start_volume(volume);
        }
        cluster.wait_for_replicated_writes();
        cluster.start_filer();
        cluster.create_bucket(bucket);
        Some(cluster)
    }

    /// The S3 endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3.http)
    }

    /// `ip:port.grpcPort`, how weed servers name the master.
    fn master_address(&self) -> String {
        format!("127.0.0.1:{}.{}", self.master.http, self.master.grpc)
    }

    fn data_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn start_master(&mut self) {
        let mdir = self.data_dir("master");
        let (http, grpc) = (self.master.http, self.master.grpc);
        self.spawn(
            "master",
            &[
                "master",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                &format!("-port={http}"),
                &format!("-port.grpc={grpc}"),
                &format!("-mdir={}", mdir.display()),
                "-defaultReplication=001",
                "-volumeSizeLimitMB=64",
            ],
        );
        self.wait_for("the master", || {
            http_get(http, "/cluster/status").is_some_and(|(s, _)| s == 200)
        });
    }

    /// Starts (or starts again, on the same data) volume server `i`.
    pub fn start_volume(&mut self, i: usize) {
        let dir = self.data_dir(&format!("volume{i}"));
        let Ports { http, grpc } = self.volume_ports[i];
        let master = self.master_address();
        self.spawn(
            &format!("volume{i}"),
            &[
                "volume",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                &format!("-port={http}"),
                &format!("-port.grpc={grpc}"),
                &format!("-dir={}", dir.display()),
                &format!("-mserver={master}"),
                // Each bucket is a collection that grows volumes of its
                // own (six or seven at a time): a scenario per bucket
                // needs room for several. Volumes are sparse files.
                "-max=100",
            ],
        );
        self.wait_for("a volume server", || {
            http_get(http, "/status").is_some_and(|(s, _)| s == 200)
        });
    }

    /// Kills volume server `i` (SIGKILL: a crash, not a shutdown).
    pub fn kill_volume(&mut self, i: usize) {
        let name = format!("volume{i}");
        if let Some(at) = self.processes.iter().position(|(n, _)| *n == name) {
            let (_, mut child) = self.processes.remove(at);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until the master hands out a replicated write, i.e. both
    /// volume servers joined.
    pub fn wait_for_replicated_writes(&self) {
        let port = self.master.http;
        self.wait_for("two volume servers", || {
            http_get(port, "/dir/assign?replication=001")
                .is_some_and(|(s, body)| s == 200 && body.contains("\"fid\""))
        });
    }

    fn start_filer(&mut self) {
        let dir = self.data_dir("filer");
        let identities = self.dir.path().join("s3.json");
        std::fs::write(
            &identities,
            format!(
                r#"{{"identities":[{{"name":"bess","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let master = self.master_address();
        let (filer, s3) = (self.filer, self.s3);
        self.spawn(
            "filer",
            &[
                "filer",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                &format!("-port={}", filer.http),
                &format!("-port.grpc={}", filer.grpc),
                &format!("-master={master}"),
                &format!("-defaultStoreDir={}", dir.display()),
                "-s3",
                &format!("-s3.port={}", s3.http),
                &format!("-s3.port.grpc={}", s3.grpc),
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                &format!("-s3.config={}", identities.display()),
            ],
        );
        // Any answer (403 without a signature) means the gateway is up.
        self.wait_for("the S3 gateway", || http_get(s3.http, "/").is_some());
    }

    /// Creates a bucket the way an administrator does, with `weed shell`.
    pub fn create_bucket(&self, bucket: &str) {
        let filer = format!("127.0.0.1:{}.{}", self.filer.http, self.filer.grpc);
        let mut shell = Command::new("weed")
            .args(["shell", &format!("-master={}", self.master_address())])
            .arg(format!("-filer={filer}"))
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run weed shell");
        let mut stdin = shell.stdin.take().unwrap();
        writeln!(stdin, "s3.bucket.create -name {bucket}").unwrap();
        drop(stdin);
        let out = shell.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("created bucket {bucket}")),
            "weed shell s3.bucket.create: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `weed <args>` with its log in the temp dir.
    fn spawn(&mut self, name: &str, args: &[&str]) {
        let log = std::fs::File::create(self.log_path(name)).unwrap();
        let child = Command::new("weed")
            .args(args)
            .current_dir(self.dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start weed {name}: {e}"));
        self.processes.push((name.to_string(), child));
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// The tail of every server's log, for a failing assertion.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for (name, _) in &self.processes {
            let text = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            all.push_str(&format!("--- {name}\n"));
            for line in tail.into_iter().rev() {
                all.push_str(line);
                all.push('\n');
            }
        }
        all
    }

    /// The temp dir of the cluster (for files a test wants beside it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        // SIGKILL: the data dies with the temp dir, and a weed server
        // asked to stop keeps retrying its peers for seconds.
        for (_, child) in &mut self.processes {
            let _ = child.kill();
        }
        for (_, child) in &mut self.processes {
            let _ = child.wait();
        }
    }
}

/// A free loopback port, kept bound in `held` so the next one differs.
fn free_port(held: &mut Vec<TcpListener>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    held.push(listener);
    port
}

/// Free ports `p` and `p + offset`, kept bound in `held`.
fn free_port_pair(held: &mut Vec<TcpListener>, offset: u16) -> Ports {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let http = first.local_addr().unwrap().port();
        let Some(grpc) = http.checked_add(offset) else {
            continue;
        };
        if let Ok(second) = TcpListener::bind(("127.0.0.1", grpc)) {
            held.extend([first, second]);
            return Ports { http, grpc };
        }
    }
}

impl Seaweed {
    /// Polls `ready` for up to a minute (CI machines are slow to start Go
    /// servers); panics naming `what`, with the servers' logs, if it never holds.
    fn wait_for(&self, what: &str, mut ready: impl FnMut() -> bool) {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{what} did not come up within a minute\n{}", self.logs());
    }
}

/// Status and body of `GET path` on a loopback port, if anything answered.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok()?;
    let text = String::from_utf8_lossy(&reply).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// How many pool objects a target's ledger (`targets/<name>.db`) records
/// as acknowledged by the store; 0 before the ledger exists.
pub fn held_objects(ledger: &Path) -> u64 {
    let Ok(db) =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    db.query_row(
        "SELECT count(*) FROM held WHERE key LIKE '%/objects/%'",
        [],
        |r| r.get(0),
    )
    .unwrap_or(0)
}
