//! Serving benchmark: requests per second and p99 latency of `bess serve`
//! and nginx (`auth_basic`) on the same published tree, with wrk as the
//! load generator, for InRelease, a Packages.xz and a .deb, at 32 and 256
//! connections. `BESS_BENCH_PACKAGES` (default 2000) sizes the repository,
//! `BESS_BENCH_SECONDS` (default 10) each load. Prints; never fails on speed.

#[path = "support/corpus.rs"]
mod corpus;

use anyhow::{Context, Result, bail, ensure};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const USER: &str = "bench";
const PASSWORD: &str = "bench-password-1";

fn main() -> Result<()> {
    let packages = corpus::env_count("BESS_BENCH_PACKAGES", 2000)?;
    let seconds = corpus::env_count("BESS_BENCH_SECONDS", 10)? as u64;
    for tool in ["wrk", "nginx"] {
        if which(tool).is_none() {
            println!("{tool} is not installed (packaging/install-deps bench); nothing to compare");
            return Ok(());
        }
    }
    let target = corpus::target_dir(env!("CARGO_BIN_EXE_bess"));
    let corpus = corpus::Corpus::ensure(&corpus::cache_root(&target), packages)?;
    println!(
        "corpus: {} ({} files)",
        corpus.stats.summary(),
        corpus.files.len()
    );
    corpus.warm_page_cache()?;
    let work = target
        .join("bench-runs")
        .join(format!("serve-{}", std::process::id()));
    let repo = work.join("repo");
    std::fs::create_dir_all(&work)?;
    build_repository(&repo, &corpus.dir)?;
    let paths = targets(&repo)?;
    let bess = BessServer::start(&repo, &work)?;
    let nginx = Nginx::start(&repo, &work)?;
    let auth = format!(
        "Authorization: Basic {}",
        base64(&format!("{USER}:{PASSWORD}"))
    );
    println!(
        "\nwrk, {seconds} s per load, 2 threads; bess on :{}, nginx on :{}",
        bess.port, nginx.port
    );
    println!(
        "{:<12} {:>5} {:>14} {:>10} {:>14} {:>10} {:>8}",
        "file", "conns", "bess req/s", "bess p99", "nginx req/s", "nginx p99", "ratio"
    );
    for (label, path) in &paths {
        for connections in [32, 256] {
            let ours = wrk(bess.port, path, &auth, connections, seconds)?;
            let theirs = wrk(nginx.port, path, &auth, connections, seconds)?;
            println!(
                "{label:<12} {connections:>5} {:>14.0} {:>10} {:>14.0} {:>10} {:>7.2}x",
                ours.rps,
                ours.p99,
                theirs.rps,
                theirs.p99,
                ours.rps / theirs.rps
            );
        }
    }
    println!(
        "ratio: bess req/s over nginx req/s; target: at least nginx's throughput (ratio >= 1)"
    );
    drop(bess);
    drop(nginx);
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

fn build_repository(repo: &Path, corpus: &Path) -> Result<()> {
    let bess = env!("CARGO_BIN_EXE_bess");
    let run = |args: &[&str], stdin: Option<&str>| -> Result<()> {
        let mut child = Command::new(bess)
            .env("BESS_REPO", repo)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        if let Some(text) = stdin {
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
        }
        drop(child.stdin.take());
        ensure!(child.wait()?.success(), "bess {args:?} failed");
        Ok(())
    };
    run(
        &[
            "init",
            repo.to_str().unwrap(),
            "--dists",
            "bookworm",
            "--archs",
            "amd64,arm64",
        ],
        None,
    )?;
    run(&["repo", "ingest", corpus.to_str().unwrap()], None)?;
    run(
        &["user", "add", USER, "--read", "preprod", "--password-stdin"],
        Some(PASSWORD),
    )
}

/// InRelease, the amd64 Packages.xz and the first .deb of the pool.
fn targets(repo: &Path) -> Result<Vec<(&'static str, String)>> {
    let pool = repo.join("public/preprod/pool");
    let deb = walk_first_deb(&pool).context("no .deb in the published pool")?;
    let deb = format!("/preprod/pool/{}", deb.strip_prefix(&pool)?.display());
    Ok(vec![
        ("InRelease", "/preprod/dists/bookworm/InRelease".to_string()),
        (
            "Packages.xz",
            "/preprod/dists/bookworm/main/binary-amd64/Packages.xz".to_string(),
        ),
        (".deb", deb),
    ])
}

fn walk_first_deb(dir: &Path) -> Option<PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    entries.into_iter().find_map(|p| {
        if p.is_dir() {
            walk_first_deb(&p)
        } else {
            (p.extension()? == "deb").then_some(p)
        }
    })
}

struct BessServer {
    child: Child,
    port: u16,
}

impl BessServer {
    fn start(repo: &Path, work: &Path) -> Result<BessServer> {
        let log = std::fs::File::create(work.join("bess-serve.log"))?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_bess"))
            .env("BESS_REPO", repo)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("bess serve did not print its address")?;
        Ok(BessServer { child, port })
    }
}

impl Drop for BessServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx serving the same `public/` tree, `auth_basic` on the channel, with
/// access logging like bess's request log.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(repo: &Path, work: &Path) -> Result<Nginx> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = work.join("nginx");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("htpasswd"),
            format!("{USER}:{{PLAIN}}{PASSWORD}\n"),
        )?;
        let conf = format!(
            "daemon off;\nworker_processes auto;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log {dir}/access.log;\n  sendfile on;\n  keepalive_requests 100000;\n\
             client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n\
             uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
             server {{\n    listen 127.0.0.1:{port};\n    root {public};\n\
             location /preprod/ {{ auth_basic \"bess\"; auth_basic_user_file {dir}/htpasswd; }}\n  }}\n}}\n",
            dir = dir.display(),
            public = repo.join("public").display()
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let child = Command::new("nginx")
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        for _ in 0..50 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Nginx { child, port });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "nginx did not start; see {}",
            dir.join("error.log").display()
        )
    }
}

impl Drop for Nginx {
    /// SIGTERM (not SIGKILL) so the master stops its workers too.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

struct Load {
    rps: f64,
    p99: String,
}

fn wrk(port: u16, path: &str, auth: &str, connections: u32, seconds: u64) -> Result<Load> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-H",
            auth,
        ])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "wrk failed: {text}");
    ensure!(
        !text.contains("Non-2xx"),
        "wrk saw errors for {path}: {text}"
    );
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no Requests/sec in wrk output")?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "?".into());
    Ok(Load { rps, p99 })
}

fn base64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}
