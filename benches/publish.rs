//! Publish benchmark: a full publication of N packages (Packages gz + xz,
//! by-hash, signatures) and an incremental one (one package added to the
//! full repository), bess vs `aptly publish` vs `reprepro export`, on the
//! same corpus in one invocation. The corpus is built from the stanzas of
//! this machine's real Debian index (see `support/debian_corpus.rs`).
//! `BESS_BENCH_PACKAGES` (default 60000) and `BESS_BENCH_RUNS` (default 3)
//! change the size. It prints medians, ratios, each tool's index sizes and
//! the targets; then what each xz preset and gzip level costs on bess's
//! amd64 index, cut into chunks as bess cuts it (one core). Never fails on
//! speed.

// The synthetic corpus of the other benchmarks is not used here.
#[allow(dead_code)]
#[path = "support/corpus.rs"]
mod corpus;
#[allow(dead_code)]
#[path = "support/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "support/runner.rs"]
mod runner;
#[allow(dead_code)]
#[path = "support/tools.rs"]
mod tools;

use anyhow::{Context, Result};
use corpus::Corpus;
use report::ToolResult;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tools::Workspace;

const DIST: &str = "bookworm";

/// A repository manager as the publish benchmark drives it.
trait Publisher {
    fn name(&self) -> &str;
    fn slug(&self) -> &str;
    fn is_bess(&self) -> bool {
        false
    }
    /// Untimed: a repository holding the whole corpus, nothing published.
    fn setup(&self, ws: &Workspace, corpus: &Corpus) -> Result<()>;
    /// Timed: the first publication of everything.
    fn full(&self, ws: &Workspace) -> Vec<Command>;
    /// Untimed: add one package without publishing.
    fn add(&self, ws: &Workspace, deb: &Path) -> Result<()>;
    /// Timed: publish again after that one addition.
    fn incremental(&self, ws: &Workspace) -> Vec<Command>;
    /// Where the full publication's amd64 index files are.
    fn amd64_index(&self, ws: &Workspace) -> PathBuf;
}

struct Bess {
    exe: PathBuf,
}

impl Bess {
    fn command(&self, ws: &Workspace) -> Command {
        let mut command = Command::new(&self.exe);
        command.arg("--repo").arg(ws.dir.join("repo"));
        command
    }
}

impl Publisher for Bess {
    fn name(&self) -> &str {
        "bess repo publish (gz+xz, signed)"
    }
    fn slug(&self) -> &str {
        "bess"
    }
    fn is_bess(&self) -> bool {
        true
    }
    fn setup(&self, ws: &Workspace, corpus: &Corpus) -> Result<()> {
        fs::create_dir_all(&ws.dir)?;
        let mut init = Command::new(&self.exe);
        init.arg("init")
            .arg(ws.dir.join("repo"))
            .args(["--dists", DIST, "--archs", "amd64,arm64"]);
        runner::run_logged(&mut init, &ws.log)?;
        let mut ingest = self.command(ws);
        ingest
            .args(["repo", "ingest", "--no-publish"])
            .arg(&corpus.dir);
        runner::run_logged(&mut ingest, &ws.log)
    }
    fn full(&self, ws: &Workspace) -> Vec<Command> {
        let mut publish = self.command(ws);
        publish.args(["repo", "publish"]);
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
    fn amd64_index(&self, ws: &Workspace) -> PathBuf {
        ws.dir.join("repo/public/preprod").join(AMD64_INDEX)
    }
}

/// An index directory below a publication's root.
const AMD64_INDEX: &str = "dists/bookworm/main/binary-amd64";

/// aptly with the same private configuration and local repository as the
/// ingest benchmark (`tools::Aptly`); only publishing is timed here.
struct Aptly {
    repo: tools::Aptly,
}

impl Aptly {
    fn command(&self, ws: &Workspace) -> Command {
        self.repo.command(ws)
    }
}

impl Publisher for Aptly {
    fn name(&self) -> &str {
        "aptly publish (gz+bz2, unsigned)"
    }
    fn slug(&self) -> &str {
        "aptly"
    }
    fn setup(&self, ws: &Workspace, corpus: &Corpus) -> Result<()> {
        use tools::Tool;
        self.repo.setup(ws)?;
        for mut add in self.repo.ingest_commands(ws, &corpus.dir, &corpus.files) {
            runner::run_logged(&mut add, &ws.log)?;
        }
        Ok(())
    }
    fn full(&self, ws: &Workspace) -> Vec<Command> {
        let mut publish = self.command(ws);
        publish.args([
            "publish",
            "repo",
            "-skip-signing",
            "-architectures=amd64,arm64",
            "bench",
        ]);
        vec![publish]
    }
    fn add(&self, ws: &Workspace, deb: &Path) -> Result<()> {
        let mut add = self.command(ws);
        add.args(["repo", "add", "bench"]).arg(deb);
        runner::run_logged(&mut add, &ws.log)
    }
    fn incremental(&self, ws: &Workspace) -> Vec<Command> {
        let mut update = self.command(ws);
        update.args(["publish", "update", "-skip-signing", DIST]);
        vec![update]
    }
    fn amd64_index(&self, ws: &Workspace) -> PathBuf {
        ws.dir.join("public").join(AMD64_INDEX)
    }
}

struct Reprepro {
    exe: PathBuf,
}

impl Reprepro {
    fn command(&self, ws: &Workspace) -> Command {
        let mut command = Command::new(&self.exe);
        command.arg("-b").arg(&ws.dir);
        command
    }
}

impl Publisher for Reprepro {
    fn name(&self) -> &str {
        "reprepro export (gz+xz, unsigned)"
    }
    fn slug(&self) -> &str {
        "reprepro"
    }
    fn setup(&self, ws: &Workspace, corpus: &Corpus) -> Result<()> {
        let conf = ws.dir.join("conf");
        fs::create_dir_all(&conf)?;
        let distributions = format!(
            "Codename: {DIST}\nArchitectures: amd64 arm64\nComponents: main\nDebIndices: Packages Release . .gz .xz\n"
        );
        fs::write(conf.join("distributions"), distributions)?;
        let fixed = ["--export=never", "includedeb", DIST];
        for batch in runner::argv_batches(
            &["reprepro", "-b", &ws.dir.display().to_string()],
            &corpus.files,
        ) {
            let mut include = self.command(ws);
            include.current_dir(&corpus.dir).args(fixed).args(batch);
            runner::run_logged(&mut include, &ws.log)?;
        }
        Ok(())
    }
    fn full(&self, ws: &Workspace) -> Vec<Command> {
        let mut export = self.command(ws);
        export.args(["export", DIST]);
        vec![export]
    }
    fn add(&self, ws: &Workspace, deb: &Path) -> Result<()> {
        let mut include = self.command(ws);
        include
            .args(["--export=never", "includedeb", DIST])
            .arg(deb);
        runner::run_logged(&mut include, &ws.log)
    }
    fn incremental(&self, ws: &Workspace) -> Vec<Command> {
        self.full(ws)
    }
    fn amd64_index(&self, ws: &Workspace) -> PathBuf {
        ws.dir.join(AMD64_INDEX)
    }
}

fn main() -> Result<()> {
    let packages = corpus::env_count("BESS_BENCH_PACKAGES", 60_000)?;
    let runs = corpus::env_count("BESS_BENCH_RUNS", 3)?;
    let target = corpus::target_dir(env!("CARGO_BIN_EXE_bess"));
    let corpus = corpus::debian::ensure(&corpus::cache_root(&target), packages)?;
    println!("corpus: {}", corpus.stats.summary());
    corpus.warm_page_cache()?;
    let run_dir = target
        .join("bench-runs")
        .join(format!("publish-{}", unix_now()));
    fs::create_dir_all(run_dir.join("logs"))?;
    println!("work and logs: {}", run_dir.display());
    let extra = tools::build_extra_package(&run_dir)?;
    let publishers = publishers(&run_dir)?;
    let mut full: Vec<ToolResult> = publishers
        .iter()
        .map(|p| ToolResult::new(p.name(), p.is_bess()))
        .collect();
    let mut incremental: Vec<ToolResult> = publishers
        .iter()
        .map(|p| ToolResult::new(p.name(), p.is_bess()))
        .collect();
    let mut sizes: Vec<IndexSizes> = vec![IndexSizes::default(); publishers.len()];
    for run in 1..=runs {
        for (i, publisher) in publishers.iter().enumerate() {
            let ws = Workspace {
                dir: run_dir.join(format!("{}-{run}", publisher.slug())),
                log: run_dir
                    .join("logs")
                    .join(format!("{}-{run}.log", publisher.slug())),
            };
            match run_once(
                publisher.as_ref(),
                &ws,
                &corpus,
                &extra,
                (&mut full[i], &mut incremental[i]),
            ) {
                Ok(measured) => sizes[i] = measured,
                Err(err) => println!("run {run} {}: FAILED: {err:#}", publisher.name()),
            }
        }
    }
    print_table("full publish", &full, runner::rss_method());
    print_table(
        "incremental publish (one package added)",
        &incremental,
        runner::rss_method(),
    );
    print_sizes(&publishers, &sizes);
    print_targets(&full, &incremental, &publishers, &sizes);
    let index = publishers[0].amd64_index(&Workspace {
        dir: run_dir.join(format!("{}-{runs}", publishers[0].slug())),
        log: run_dir.join("logs").join("levels.log"),
    });
    if let Err(err) = compare_levels(&index.join("Packages.xz")) {
        println!("compression levels: FAILED: {err:#}");
    }
    remove_workspaces(&run_dir)
}

/// Sizes of one tool's amd64 index files, in bytes (0: not written).
#[derive(Debug, Clone, Copy, Default)]
struct IndexSizes {
    gz: u64,
    bz2: u64,
    xz: u64,
}

impl IndexSizes {
    fn of(dir: &Path) -> IndexSizes {
        let len = |name: &str| fs::metadata(dir.join(name)).map_or(0, |m| m.len());
        IndexSizes {
            gz: len("Packages.gz"),
            bz2: len("Packages.bz2"),
            xz: len("Packages.xz"),
        }
    }
}

/// One run of a tool; returns the sizes of its full publication's index.
fn run_once(
    publisher: &dyn Publisher,
    ws: &Workspace,
    corpus: &Corpus,
    extra: &Path,
    (full, incremental): (&mut ToolResult, &mut ToolResult),
) -> Result<IndexSizes> {
    full.attempts += 1;
    incremental.attempts += 1;
    publisher.setup(ws, corpus).context("setup")?;
    runner::settle_filesystem();
    let measured =
        runner::time_commands(&mut publisher.full(ws), &ws.log).context("full publish")?;
    record(full, measured, publisher, "full");
    let sizes = IndexSizes::of(&publisher.amd64_index(ws));
    publisher.add(ws, extra).context("adding one package")?;
    runner::settle_filesystem();
    let measured = runner::time_commands(&mut publisher.incremental(ws), &ws.log)
        .context("incremental publish")?;
    record(incremental, measured, publisher, "incremental");
    Ok(sizes)
}

fn record(
    result: &mut ToolResult,
    measured: runner::Measurement,
    publisher: &dyn Publisher,
    what: &str,
) {
    println!(
        "{} {what}: {:.3} s, cpu {:.3} s, peak RSS {:.1} MiB",
        publisher.name(),
        measured.wall.as_secs_f64(),
        measured.cpu.as_secs_f64(),
        measured.peak_rss_kib as f64 / 1024.0
    );
    result.walls.push(measured.wall);
    result.cpus.push(measured.cpu);
    result.peak_rss_kib = result.peak_rss_kib.max(measured.peak_rss_kib);
}

/// What each xz preset and gzip level costs on bess's amd64 index: its
/// text cut as bess cuts it on average (runs of `CHUNK_STANZAS` stanzas),
/// each chunk compressed alone, one core; then bess's default levels.
fn compare_levels(xz_index: &Path) -> Result<()> {
    use bess::publish::{CHUNK_STANZAS, gzip_member, xz_block};
    use std::io::Read;
    let mut text = Vec::new();
    xz2::read::XzDecoder::new(fs::File::open(xz_index).context("opening Packages.xz")?)
        .read_to_end(&mut text)
        .context("decompressing Packages.xz")?;
    let chunks = stanza_chunks(&text, CHUNK_STANZAS as usize);
    let mb = |n: usize| n as f64 / 1e6;
    println!(
        "\ncompression levels, one core: bess's amd64 index, {:.1} MB of text in {} chunks of {CHUNK_STANZAS} stanzas",
        mb(text.len()),
        chunks.len()
    );
    println!("{:<16} {:>9} {:>10} {:>9}", "level", "cpu s", "MB", "MB/s");
    let pairs = (0..=6)
        .map(|p| (p, 0))
        .chain([1, 3, 6, 9].into_iter().map(|g| (0, g)));
    for (xz_preset, gzip_level) in pairs {
        let started = cpu_time();
        let mut size = 0;
        for chunk in &chunks {
            size += match gzip_level {
                0 => xz_block(chunk, xz_preset)?.bytes.len(),
                level => gzip_member(chunk, level)?.len(),
            };
        }
        let secs = (cpu_time() - started).as_secs_f64();
        let name = match gzip_level {
            0 => format!("xz preset {xz_preset}"),
            g => format!("gzip level {g}"),
        };
        println!(
            "{name:<16} {secs:>9.2} {:>10.2} {:>9.1}",
            mb(size),
            mb(text.len()) / secs.max(1e-9)
        );
    }
    println!(
        "(presets 7 to 9 only have larger dictionaries than 6, which chunks this size never fill)"
    );
    Ok(())
}

/// CPU time of this thread, immune to other processes on a busy machine.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which outlives the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `text` cut after every `per` stanzas.
fn stanza_chunks(text: &[u8], per: usize) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let (mut start, mut stanzas) = (0, 0);
    for (i, pair) in text.windows(2).enumerate() {
        if pair == b"\n\n" {
            stanzas += 1;
            if stanzas == per {
                chunks.push(&text[start..i + 2]);
                (start, stanzas) = (i + 2, 0);
            }
        }
    }
    if start < text.len() {
        chunks.push(&text[start..]);
    }
    chunks
}

/// Each tool's amd64 index sizes, and how they compare with reprepro's.
fn print_sizes(publishers: &[Box<dyn Publisher>], sizes: &[IndexSizes]) {
    let mb = |n: u64| n as f64 / 1e6;
    let reprepro = reference_sizes(publishers, sizes);
    println!("\nindex sizes (binary-amd64, full publication):");
    println!(
        "{:<36} {:>10} {:>10} {:>10}",
        "tool", "gz MB", "bz2 MB", "xz MB"
    );
    for (publisher, size) in publishers.iter().zip(sizes) {
        let cell = |n: u64| {
            if n == 0 {
                "-".to_string()
            } else {
                format!("{:.2}", mb(n))
            }
        };
        println!(
            "{:<36} {:>10} {:>10} {:>10}",
            publisher.name(),
            cell(size.gz),
            cell(size.bz2),
            cell(size.xz)
        );
    }
    if let (Some(bess), Some(reprepro)) = (sizes.first(), reprepro) {
        println!(
            "  bess / reprepro: Packages.gz {:.3}x, Packages.xz {:.3}x",
            bess.gz as f64 / reprepro.gz.max(1) as f64,
            bess.xz as f64 / reprepro.xz.max(1) as f64
        );
    }
}

fn reference_sizes(publishers: &[Box<dyn Publisher>], sizes: &[IndexSizes]) -> Option<IndexSizes> {
    publishers
        .iter()
        .zip(sizes)
        .find(|(p, s)| p.slug() == "reprepro" && s.xz > 0)
        .map(|(_, s)| *s)
}

fn publishers(run_dir: &Path) -> Result<Vec<Box<dyn Publisher>>> {
    let bess = run_dir.join("bess");
    fs::copy(env!("CARGO_BIN_EXE_bess"), &bess).context("pinning the bess binary")?;
    let mut all: Vec<Box<dyn Publisher>> = vec![Box::new(Bess { exe: bess })];
    match tools::find_program("aptly") {
        Some(exe) => all.push(Box::new(Aptly {
            repo: tools::Aptly { exe },
        })),
        None => println!("aptly: not installed, skipped"),
    }
    match tools::find_program("reprepro") {
        Some(exe) => all.push(Box::new(Reprepro { exe })),
        None => println!("reprepro: not installed, skipped"),
    }
    Ok(all)
}

fn print_table(title: &str, results: &[ToolResult], rss_method: &str) {
    println!("\n{title} (wall clock of the publish command only):");
    println!(
        "{:<36} {:>5} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "tool", "ok", "median s", "min s", "max s", "cpu s", "peak RSS MiB"
    );
    for r in results {
        let ok = format!("{}/{}", r.walls.len(), r.attempts);
        let Some(m) = report::median_secs(&r.walls) else {
            println!("{:<36} {ok:>5} {:>9}", r.tool, "failed");
            continue;
        };
        let min = r.walls.iter().min().map_or(0.0, Duration::as_secs_f64);
        let max = r.walls.iter().max().map_or(0.0, Duration::as_secs_f64);
        let cpu = report::median_secs(&r.cpus).unwrap_or(0.0);
        println!(
            "{:<36} {ok:>5} {m:>9.3} {min:>9.3} {max:>9.3} {cpu:>9.3} {:>12.1}",
            r.tool,
            r.peak_rss_kib as f64 / 1024.0
        );
    }
    let Some(bess) = results
        .iter()
        .find(|r| r.is_bess)
        .and_then(|r| report::median_secs(&r.walls))
    else {
        return;
    };
    for r in results.iter().filter(|r| !r.is_bess) {
        if let Some(m) = report::median_secs(&r.walls) {
            println!("  {} / bess = {:.1}x", r.tool, m / bess);
        }
    }
    println!("peak RSS: {rss_method}");
}

/// The median of the tool called `slug`.
fn median_of(results: &[ToolResult], publishers: &[Box<dyn Publisher>], slug: &str) -> Option<f64> {
    publishers
        .iter()
        .zip(results)
        .find(|(p, _)| p.slug() == slug)
        .and_then(|(_, r)| report::median_secs(&r.walls))
}

/// The targets, each with what was measured.
fn print_targets(
    full: &[ToolResult],
    incremental: &[ToolResult],
    publishers: &[Box<dyn Publisher>],
    sizes: &[IndexSizes],
) {
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    println!("\ntargets:");
    if let (Some(bess), Some(reprepro)) = (sizes.first(), reference_sizes(publishers, sizes)) {
        for (name, ours, theirs) in [("xz", bess.xz, reprepro.xz), ("gz", bess.gz, reprepro.gz)] {
            let ratio = ours as f64 / theirs.max(1) as f64;
            println!(
                "  Packages.{name} at most 1.05x reprepro's: {ratio:.3}x, {}",
                verdict(ratio <= 1.05)
            );
        }
    }
    for (what, results, peers) in [
        ("full publish", full, [("aptly", 1.5), ("reprepro", 5.0)]),
        (
            "incremental publish",
            incremental,
            [("aptly", 40.0), ("reprepro", 100.0)],
        ),
    ] {
        let Some(bess) = median_of(results, publishers, "bess") else {
            continue;
        };
        for (peer, wanted) in peers {
            if let Some(theirs) = median_of(results, publishers, peer) {
                let speedup = theirs / bess.max(1e-9);
                println!(
                    "  {what} at least {wanted}x faster than {peer}: {speedup:.1}x ({bess:.3} s vs {theirs:.3} s), {}",
                    verdict(speedup >= wanted)
                );
            }
        }
    }
    let rss = full
        .iter()
        .chain(incremental)
        .filter(|r| r.is_bess)
        .map(|r| r.peak_rss_kib)
        .max()
        .unwrap_or(0);
    let mib = rss as f64 / 1024.0;
    println!(
        "  bess peak RSS under 200 MiB: {mib:.1} MiB, {}",
        verdict(mib < 200.0)
    );
}

fn remove_workspaces(run_dir: &Path) -> Result<()> {
    for entry in fs::read_dir(run_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if entry.file_type()?.is_dir() && name != "logs" {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
