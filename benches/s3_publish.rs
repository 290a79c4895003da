//! S3 publish benchmark (issue #22): the real Debian corpus published to a
//! real SeaweedFS cluster (`tests/common/seaweed.rs`) by `bess repo
//! publish` and by `aptly publish`, in one invocation, each into its own
//! bucket on the same S3 gateway. Both talk to it through one counting
//! proxy (`support/s3_proxy.rs`), so requests and uploaded bytes are
//! counted alike; bess's own `--json` counts are printed beside as a
//! cross-check. A full publish (first push) is timed, then a publish
//! after adding one package. Ingesting is untimed (its time is printed).
//!
//! `BESS_BENCH_PACKAGES` (default 60000) sizes the corpus,
//! `BESS_BENCH_RUNS` (default 3) and `BESS_BENCH_APTLY_RUNS` (default 1:
//! an aptly run takes minutes) the repetitions, each with a fresh
//! repository and a fresh prefix in the bucket. `BESS_BENCH_CORPUS_DIR`
//! reuses another checkout's corpus cache. `BESS_BENCH_S3_LATENCY_MS`
//! (default 0) holds each request back in the proxy, as a store across a
//! network would, so both tools pay a round trip per request.
//! `BESS_BENCH_BESS` measures another bess binary (a before and after).
//!
//! It prints medians, ratios and the targets, then the store's
//! own ceiling: how many small PUTs a second it takes at 1 to 64 in
//! flight (`BESS_BENCH_CEILING_PUTS` each, default 4000; 0 skips it). It
//! never fails on speed. Without `weed` there is nothing to measure;
//! without aptly, bess runs alone.

#[allow(dead_code)]
#[path = "support/corpus.rs"]
mod corpus;
#[allow(dead_code)]
#[path = "support/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "support/runner.rs"]
mod runner;
#[path = "support/s3_ceiling.rs"]
mod s3_ceiling;
#[path = "support/s3_proxy.rs"]
mod s3_proxy;
#[allow(dead_code)]
#[path = "../tests/common/seaweed.rs"]
mod seaweed;
#[allow(dead_code)]
#[path = "support/tools.rs"]
mod tools;

use anyhow::{Context, Result};
use corpus::Corpus;
use s3_proxy::{CountingProxy, Traffic, Upstream};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tools::Workspace;

const DIST: &str = "bookworm";
/// The name both tools know the S3 endpoint by.
const TARGET: &str = "bench";

/// Whether `tool` is on PATH: what `seaweed.rs` asks of the module above it.
fn have_tool(tool: &str) -> bool {
    tools::find_program(tool).is_some()
}

/// A repository manager as this benchmark drives it.
trait S3Publisher {
    fn name(&self) -> &str;
    fn slug(&self) -> &str;
    /// The bucket its runs publish to, one prefix per run.
    fn bucket(&self) -> &str;
    /// Untimed: a repository holding the whole corpus, nothing published,
    /// with the store at `endpoint`, `bucket/prefix` as its target.
    fn setup(&self, ws: &Workspace, corpus: &Corpus, endpoint: &str, prefix: &str) -> Result<()>;
    /// Timed: the first publication of everything, store included.
    fn full(&self, ws: &Workspace) -> Vec<Command>;
    /// Untimed: add one package without publishing.
    fn add(&self, ws: &Workspace, deb: &Path) -> Result<()>;
    /// Timed: publish again after that one addition.
    fn incremental(&self, ws: &Workspace) -> Vec<Command>;
    /// What the tool itself says it sent, from a timed command's log.
    fn own_count(&self, _log: &Path) -> Option<String> {
        None
    }
}

struct Bess {
    exe: PathBuf,
}

impl Bess {
    fn command(&self, ws: &Workspace) -> Command {
        let mut command = Command::new(&self.exe);
        command
            .arg("--repo")
            .arg(ws.dir.join("repo"))
            .env("AWS_ACCESS_KEY_ID", seaweed::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", seaweed::SECRET_KEY);
        command
    }
}

impl S3Publisher for Bess {
    fn name(&self) -> &str {
        "bess repo publish (gz+xz, signed)"
    }
    fn slug(&self) -> &str {
        "bess"
    }
    fn bucket(&self) -> &str {
        "bess"
    }
    fn setup(&self, ws: &Workspace, corpus: &Corpus, endpoint: &str, prefix: &str) -> Result<()> {
        fs::create_dir_all(&ws.dir)?;
        let repo = ws.dir.join("repo");
        let mut init = Command::new(&self.exe);
        init.arg("init")
            .arg(&repo)
            .args(["--dists", DIST, "--archs", "amd64,arm64"]);
        runner::run_logged(&mut init, &ws.log)?;
        let settings = repo.join("bess.toml");
        let mut text = fs::read_to_string(&settings).context("reading bess.toml")?;
        text.push_str(&format!(
            "\n[[publish.target]]\ntype = \"s3\"\nname = \"{TARGET}\"\nendpoint = \"{endpoint}\"\n\
             bucket = \"{}\"\nprefix = \"{prefix}\"\n",
            self.bucket()
        ));
        fs::write(&settings, text)?;
        let mut ingest = self.command(ws);
        ingest
            .args(["repo", "ingest", "--no-publish"])
            .arg(&corpus.dir);
        runner::run_logged(&mut ingest, &ws.log)
    }
    fn full(&self, ws: &Workspace) -> Vec<Command> {
        let mut publish = self.command(ws);
        publish.args(["repo", "publish", "--json"]);
        vec![publish]
    }
    fn add(&self, ws: &Workspace, deb: &Path) -> Result<()> {
        let mut ingest = self.command(ws);
        ingest.args(["repo", "ingest", "--no-publish"]).arg(deb);
        runner::run_logged(&mut ingest, &ws.log)
    }
    fn incremental(&self, ws: &Workspace) -> Vec<Command> {
        self.full(ws)
    }
    /// The target's line of `bess repo publish --json`.
    fn own_count(&self, log: &Path) -> Option<String> {
        let text = fs::read_to_string(log).ok()?;
        // Pretty-printed, maybe among warnings: try each line that opens an object.
        let report = text
            .match_indices('{')
            .filter(|(at, _)| *at == 0 || text.as_bytes()[at - 1] == b'\n')
            .filter_map(|(at, _)| {
                let mut values = serde_json::Deserializer::from_str(&text[at..]).into_iter();
                values.next()?.ok()
            })
            .find(|json: &serde_json::Value| json.get("targets").is_some())?;
        let target = &report["targets"][0];
        Some(format!(
            "requests {}, puts {}, bytes {}, objects {}, files {} uploaded {} copied {} deleted, error {}",
            target["requests"],
            target["puts"],
            target["bytes_uploaded"],
            target["objects_uploaded"],
            target["files_uploaded"],
            target["files_copied"],
            target["files_deleted"],
            target["error"]
        ))
    }
}

/// aptly with the ingest benchmark's private configuration and local
/// repository (`tools::Aptly`), plus the store as an S3 publish endpoint.
struct Aptly {
    repo: tools::Aptly,
}

impl Aptly {
    fn publish_to() -> String {
        format!("s3:{TARGET}:")
    }
}

impl S3Publisher for Aptly {
    fn name(&self) -> &str {
        "aptly publish (gz+bz2, unsigned)"
    }
    fn slug(&self) -> &str {
        "aptly"
    }
    fn bucket(&self) -> &str {
        "aptly"
    }
    fn setup(&self, ws: &Workspace, corpus: &Corpus, endpoint: &str, prefix: &str) -> Result<()> {
        use tools::Tool;
        self.repo.setup(ws)?;
        let config = ws.dir.join("aptly.conf");
        let mut settings: serde_json::Value = serde_json::from_slice(&fs::read(&config)?)?;
        settings["S3PublishEndpoints"] = serde_json::json!({
            TARGET: {
                "region": "us-east-1",
                "bucket": self.bucket(),
                "endpoint": endpoint,
                "prefix": prefix,
                "awsAccessKeyID": seaweed::ACCESS_KEY,
                "awsSecretAccessKey": seaweed::SECRET_KEY,
                // No ACL header: bess sends none either.
                "acl": "none",
            }
        });
        fs::write(&config, serde_json::to_vec_pretty(&settings)?)?;
        for mut add in self.repo.ingest_commands(ws, &corpus.dir, &corpus.files) {
            runner::run_logged(&mut add, &ws.log)?;
        }
        Ok(())
    }
    fn full(&self, ws: &Workspace) -> Vec<Command> {
        let mut publish = self.repo.command(ws);
        publish
            .args([
                "publish",
                "repo",
                "-skip-signing",
                "-architectures=amd64,arm64",
                "bench",
            ])
            .arg(Self::publish_to());
        vec![publish]
    }
    fn add(&self, ws: &Workspace, deb: &Path) -> Result<()> {
        let mut add = self.repo.command(ws);
        add.args(["repo", "add", "bench"]).arg(deb);
        runner::run_logged(&mut add, &ws.log)
    }
    fn incremental(&self, ws: &Workspace) -> Vec<Command> {
        let mut update = self.repo.command(ws);
        update
            .args(["publish", "update", "-skip-signing", DIST])
            .arg(Self::publish_to());
        vec![update]
    }
}

/// One timed publish: how long it took and what crossed the proxy.
struct Sample {
    wall: Duration,
    cpu: Duration,
    traffic: Traffic,
    /// What the tool said it sent, if it says.
    own_count: Option<String>,
}

/// Every sample of one tool for one kind of publish.
#[derive(Default)]
struct Series {
    attempts: usize,
    samples: Vec<Sample>,
}

impl Series {
    fn median_wall(&self) -> Option<f64> {
        report::median_secs(&self.samples.iter().map(|s| s.wall).collect::<Vec<_>>())
    }
    fn median_cpu(&self) -> Option<f64> {
        report::median_secs(&self.samples.iter().map(|s| s.cpu).collect::<Vec<_>>())
    }
    /// The median sample by wall clock: its counts go in the table.
    fn median_sample(&self) -> Option<&Sample> {
        let mut by_wall: Vec<&Sample> = self.samples.iter().collect();
        by_wall.sort_by_key(|s| s.wall);
        by_wall.get(by_wall.len().saturating_sub(1) / 2).copied()
    }
}

/// One tool's results: a full publish and a one-package publish per run.
struct Results {
    full: Series,
    one: Series,
}

fn main() -> Result<()> {
    let packages = corpus::env_count("BESS_BENCH_PACKAGES", 60_000)?;
    let runs = corpus::env_count("BESS_BENCH_RUNS", 3)?;
    let aptly_runs = corpus::env_count("BESS_BENCH_APTLY_RUNS", 1)?;
    if !have_tool("weed") {
        println!("weed (SeaweedFS) is not installed: no S3 store to publish to, nothing measured");
        return Ok(());
    }
    let target = corpus::target_dir(env!("CARGO_BIN_EXE_bess"));
    let corpus = corpus::debian::ensure(&corpus::cache_root(&target), packages)?;
    println!("corpus: {}", corpus.stats.summary());
    corpus.warm_page_cache()?;
    let run_dir = target
        .join("bench-runs")
        .join(format!("s3-publish-{}", unix_now()));
    fs::create_dir_all(run_dir.join("logs"))?;
    println!("work and logs: {}", run_dir.display());
    let extra = tools::build_extra_package(&run_dir)?;
    let publishers = publishers(&run_dir, runs, aptly_runs)?;
    let cluster = start_cluster(&publishers)?;
    let latency = Duration::from_millis(corpus::env_count("BESS_BENCH_S3_LATENCY_MS", 0)? as u64);
    let proxy = CountingProxy::start(Upstream {
        address: upstream(&cluster)?,
        latency,
    })?;
    println!(
        "SeaweedFS S3 gateway {} (master, two volume servers with replication 001, filer), \
         reached through the counting proxy {}, which holds each request back {} ms",
        cluster.endpoint(),
        proxy.endpoint(),
        latency.as_millis()
    );
    let mut results: Vec<Results> = publishers
        .iter()
        .map(|_| Results {
            full: Series::default(),
            one: Series::default(),
        })
        .collect();
    let most = publishers.iter().map(|(_, n)| *n).max().unwrap_or(0);
    for run in 1..=most {
        for ((publisher, wanted), result) in publishers.iter().zip(&mut results) {
            if run > *wanted {
                continue;
            }
            let ws = Workspace {
                dir: run_dir.join(format!("{}-{run}", publisher.slug())),
                log: run_dir
                    .join("logs")
                    .join(format!("{}-{run}.log", publisher.slug())),
            };
            let context = RunContext {
                ws: &ws,
                corpus: &corpus,
                extra: &extra,
                proxy: &proxy,
                prefix: format!("run{run}"),
            };
            if let Err(err) = run_once(publisher.as_ref(), &context, result) {
                println!("run {run} {}: FAILED: {err:#}", publisher.name());
            }
            fs::remove_dir_all(&ws.dir).ok();
        }
    }
    print_report(&publishers, &results);
    let ceiling_puts = corpus::env_count("BESS_BENCH_CEILING_PUTS", 4000)?;
    if ceiling_puts > 0 {
        print_ceiling(&proxy, publishers[0].0.bucket(), ceiling_puts, packages);
    }
    drop(cluster);
    Ok(())
}

/// The tools to run, each with its number of runs.
fn publishers(
    run_dir: &Path,
    runs: usize,
    aptly_runs: usize,
) -> Result<Vec<(Box<dyn S3Publisher>, usize)>> {
    let bess = run_dir.join("bess");
    // Another build (a branch, a changed constant) measured on the same
    // cluster and corpus, for a before and after.
    let exe = std::env::var_os("BESS_BENCH_BESS")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bess")), PathBuf::from);
    fs::copy(&exe, &bess).with_context(|| format!("pinning the bess binary {}", exe.display()))?;
    println!("bess: {}", exe.display());
    let mut all: Vec<(Box<dyn S3Publisher>, usize)> = vec![(Box::new(Bess { exe: bess }), runs)];
    match tools::find_program("aptly") {
        Some(exe) => all.push((
            Box::new(Aptly {
                repo: tools::Aptly { exe },
            }),
            aptly_runs,
        )),
        None => println!("aptly: not installed, skipped"),
    }
    Ok(all)
}

/// One cluster for every run, a bucket per tool.
fn start_cluster(publishers: &[(Box<dyn S3Publisher>, usize)]) -> Result<seaweed::Seaweed> {
    let started = Instant::now();
    let cluster = seaweed::Seaweed::start(publishers[0].0.bucket())
        .context("weed is installed but the cluster did not start")?;
    for (publisher, _) in &publishers[1..] {
        cluster.create_bucket(publisher.bucket());
    }
    println!(
        "cluster started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(cluster)
}

/// The S3 gateway's address, for the proxy.
fn upstream(cluster: &seaweed::Seaweed) -> Result<std::net::SocketAddr> {
    let endpoint = cluster.endpoint();
    let address = endpoint.trim_start_matches("http://");
    address
        .parse()
        .with_context(|| format!("the S3 endpoint {endpoint} is not http://ip:port"))
}

/// Everything one run of one tool needs.
struct RunContext<'a> {
    ws: &'a Workspace,
    corpus: &'a Corpus,
    extra: &'a Path,
    proxy: &'a CountingProxy,
    /// The run's prefix in the tool's bucket: every run starts empty.
    prefix: String,
}

/// One run of one tool: setup, full publish, one package, publish again.
fn run_once(publisher: &dyn S3Publisher, run: &RunContext, result: &mut Results) -> Result<()> {
    result.full.attempts += 1;
    result.one.attempts += 1;
    let started = Instant::now();
    publisher
        .setup(run.ws, run.corpus, &run.proxy.endpoint(), &run.prefix)
        .context("setup")?;
    println!(
        "{} {}: ingest of {} packages (untimed) took {:.1} s",
        publisher.name(),
        run.prefix,
        run.corpus.files.len(),
        started.elapsed().as_secs_f64()
    );
    let full =
        timed(publisher, run, "full", &mut publisher.full(run.ws)).context("full publish")?;
    result.full.samples.push(full);
    publisher
        .add(run.ws, run.extra)
        .context("adding one package")?;
    let one = timed(publisher, run, "one", &mut publisher.incremental(run.ws))
        .context("publish after one package")?;
    result.one.samples.push(one);
    Ok(())
}

/// Runs a publish with the proxy's counters at zero; prints and returns it.
fn timed(
    publisher: &dyn S3Publisher,
    run: &RunContext,
    what: &str,
    commands: &mut [Command],
) -> Result<Sample> {
    let log = run
        .ws
        .log
        .with_file_name(format!("{}-{}-{what}.log", publisher.slug(), run.prefix));
    runner::settle_filesystem();
    run.proxy.take();
    let measured = runner::time_commands(commands, &log)?;
    let traffic = run.proxy.take();
    let sample = Sample {
        wall: measured.wall,
        cpu: measured.cpu,
        own_count: publisher.own_count(&log),
        traffic,
    };
    println!(
        "{} {} {what}: {:.3} s, cpu {:.3} s, {} requests ({}), {} sent, {} received",
        publisher.name(),
        run.prefix,
        sample.wall.as_secs_f64(),
        sample.cpu.as_secs_f64(),
        sample.traffic.requests,
        sample.traffic.operations_summary(),
        bytes(sample.traffic.bytes_sent),
        bytes(sample.traffic.bytes_received)
    );
    println!(
        "  first request after {}, requests over the next {}",
        seconds(sample.traffic.before_first),
        seconds(sample.traffic.talking)
    );
    if let Some(own) = &sample.own_count {
        println!("  its own count: {own}");
    }
    Ok(sample)
}

/// The tables, the ratios and the targets.
fn print_report(publishers: &[(Box<dyn S3Publisher>, usize)], results: &[Results]) {
    let titles = [
        "full publish (first push to an empty prefix)",
        "publish after adding one package",
    ];
    for (at, title) in titles.into_iter().enumerate() {
        println!(
            "\n{title}; wall clock of the publish command, requests and bytes as the proxy counted them (the median run's):"
        );
        println!(
            "{:<34} {:>5} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9}  requests by operation",
            "tool",
            "ok",
            "median s",
            "min s",
            "max s",
            "cpu s",
            "local s",
            "store s",
            "requests",
            "MB sent"
        );
        for ((publisher, _), result) in publishers.iter().zip(results) {
            let series = if at == 0 { &result.full } else { &result.one };
            print_row(publisher.name(), series);
        }
        let series = |i: usize| {
            let r: &Results = &results[i];
            if at == 0 { &r.full } else { &r.one }
        };
        if let (Some(bess), Some(aptly)) = (
            series(0).median_wall(),
            (results.len() > 1)
                .then(|| series(1).median_wall())
                .flatten(),
        ) {
            println!("  aptly / bess = {:.1}x", aptly / bess.max(1e-9));
        }
    }
    print_targets(results);
}

fn print_row(name: &str, series: &Series) {
    let ok = format!("{}/{}", series.samples.len(), series.attempts);
    let (Some(median), Some(sample)) = (series.median_wall(), series.median_sample()) else {
        println!("{name:<34} {ok:>5} {:>9}", "failed");
        return;
    };
    let secs = |s: &Sample| s.wall.as_secs_f64();
    let min = series.samples.iter().map(secs).fold(f64::MAX, f64::min);
    let max = series.samples.iter().map(secs).fold(0.0, f64::max);
    let phase = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64());
    println!(
        "{name:<34} {ok:>5} {median:>9.3} {min:>9.3} {max:>9.3} {:>9.3} {:>8.2} {:>8.2} {:>9} {:>9.3}  {}",
        series.median_cpu().unwrap_or(0.0),
        phase(sample.traffic.before_first),
        phase(sample.traffic.talking),
        sample.traffic.requests,
        sample.traffic.bytes_sent as f64 / 1e6,
        sample.traffic.operations_summary()
    );
}

/// The targets, each with what was measured.
fn print_targets(results: &[Results]) {
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    println!("\ntargets (issue #22):");
    match results[0].one.median_sample() {
        Some(sample) => println!(
            "  one-package publish under 50 requests: {} requests, {}",
            sample.traffic.requests,
            verdict(sample.traffic.requests < 50)
        ),
        None => println!("  one-package publish under 50 requests: not evaluated (bess failed)"),
    }
    let aptly = results.get(1).and_then(|r| r.full.median_wall());
    match (results[0].full.median_wall(), aptly) {
        (Some(bess), Some(aptly)) => {
            let speedup = aptly / bess.max(1e-9);
            println!(
                "  full publish at least 3x faster than aptly's: {speedup:.1}x ({bess:.3} s vs {aptly:.3} s), {}",
                verdict(speedup >= 3.0)
            );
        }
        _ => println!(
            "  full publish at least 3x faster than aptly's: not evaluated (no result for one side)"
        ),
    }
}

/// The store's own PUT rate at a few numbers in flight, through the same
/// proxy as the tools, and what it means for the corpus's full publish.
fn print_ceiling(proxy: &CountingProxy, bucket: &str, count: usize, packages: usize) {
    let store = s3_ceiling::Store {
        endpoint: &proxy.endpoint(),
        bucket,
        access_key: seaweed::ACCESS_KEY,
        secret_key: seaweed::SECRET_KEY,
    };
    println!(
        "
store ceiling: {count} PUTs of 1,100 B (a corpus .deb's size) through the proxy, by requests in flight:"
    );
    for in_flight in [1, 8, 32, 64] {
        let prefix = format!("ceiling-{in_flight}");
        match s3_ceiling::put_rate(&store, &prefix, count, in_flight, 1100) {
            Ok(rate) => println!(
                "  {in_flight:>2} in flight: {rate:>7.0} PUTs/s ({packages} PUTs: {:.1} s)",
                packages as f64 / rate
            ),
            Err(err) => println!("  {in_flight:>2} in flight: FAILED: {err:#}"),
        }
    }
    proxy.take();
}

/// `1.234 s`, or `-` when nothing was sent.
fn seconds(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.3} s", d.as_secs_f64()))
}

/// `12.3 MB`, `456 B`.
fn bytes(n: u64) -> String {
    if n < 10_000 {
        format!("{n} B")
    } else {
        format!("{:.2} MB", n as f64 / 1e6)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
