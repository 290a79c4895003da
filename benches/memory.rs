//! Memory benchmark: the peak RSS of every whole-repository command as the
//! repository grows. bess runs `repo ingest` (which publishes too), `repo
//! publish --refresh`, `repo check`, `repo gc` and `backup`; aptly runs
//! `repo add` and `publish repo`; reprepro runs `includedeb` and `export`;
//! all on the same corpus of real Debian control data (see
//! `support/debian_corpus.rs`), at each size of `BESS_BENCH_SIZES`
//! (default `60000,250000`; sizes beyond the machine's index add newer
//! versions of the same packages). `BESS_BENCH_PEERS=0` leaves aptly and
//! reprepro out; `BESS_BENCH_PEER_MINUTES` (default 20) stops a peer's
//! command that runs longer, and its row then shows the peak it had
//! reached (aptly's ingest of 250,000 packages ran past 25 minutes). It
//! prints peak RSS and wall time per command, and whether bess stayed under
//! 250 MiB at every size. Never fails on a figure.

#[allow(dead_code)]
#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/runner.rs"]
mod runner;
#[allow(dead_code)]
#[path = "support/tools.rs"]
mod tools;

use anyhow::{Context, Result};
use corpus::Corpus;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tools::{Tool, Workspace};

const DIST: &str = "bookworm";
/// The target of issue #23, for every command and every size.
const TARGET_MIB: f64 = 250.0;

/// One measured command of one tool.
struct Step {
    what: &'static str,
    commands: Vec<Command>,
}

/// A step's peak RSS in MiB, wall time in seconds and whether the time
/// limit stopped it, or why it failed.
type Outcome = Result<(f64, f64, bool), String>;

/// What one tool's steps measured at one size.
struct Measured {
    tool: String,
    steps: Vec<(&'static str, Outcome)>,
}

fn main() -> Result<()> {
    let sizes = sizes()?;
    let peers = std::env::var("BESS_BENCH_PEERS").as_deref() != Ok("0");
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_bess"));
    let target = corpus::target_dir(env!("CARGO_BIN_EXE_bess"));
    let run_dir = target
        .join("bench-runs")
        .join(format!("memory-{}", unix_now()));
    fs::create_dir_all(run_dir.join("logs"))?;
    println!("work and logs: {}", run_dir.display());
    println!("peak RSS: {}", runner::rss_method());
    let mut bess_peaks = Vec::new();
    for &size in &sizes {
        let corpus = corpus::debian::ensure(&corpus::cache_root(&target), size)?;
        println!("\ncorpus: {}", corpus.stats.summary());
        corpus.warm_page_cache()?;
        let mut results = vec![run_bess(&exe, &run_dir, &corpus)?];
        if peers {
            results.extend(run_peers(&run_dir, &corpus)?);
        }
        print_table(size, &results);
        bess_peaks.push((size, peak_of(&results[0])));
    }
    print_target(&bess_peaks);
    fs::remove_dir_all(&run_dir).ok();
    Ok(())
}

/// `BESS_BENCH_SIZES`, comma-separated package counts.
fn sizes() -> Result<Vec<usize>> {
    let text = std::env::var("BESS_BENCH_SIZES").unwrap_or_else(|_| "60000,250000".into());
    text.split(',')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .context("BESS_BENCH_SIZES: a count")
        })
        .collect()
}

fn workspace(run_dir: &Path, slug: &str, size: usize) -> Workspace {
    Workspace {
        dir: run_dir.join(format!("{slug}-{size}")),
        log: run_dir.join("logs").join(format!("{slug}-{size}.log")),
    }
}

/// bess's whole-repository commands, in the order an operator meets them.
fn run_bess(exe: &Path, run_dir: &Path, corpus: &Corpus) -> Result<Measured> {
    let size = corpus.files.len();
    let ws = workspace(run_dir, "bess", size);
    let repo = ws.dir.join("repo");
    let mut init = Command::new(exe);
    init.arg("init")
        .arg(&repo)
        .args(["--dists", DIST, "--archs", "amd64,arm64"]);
    runner::run_logged(&mut init, &ws.log)?;
    let bess = |args: &[&str]| {
        let mut command = Command::new(exe);
        command.arg("--repo").arg(&repo).args(args);
        command
    };
    let mut ingest = bess(&["repo", "ingest"]);
    ingest.arg(&corpus.dir);
    let mut backup = bess(&["backup"]);
    backup.arg(ws.dir.join("backup"));
    let steps = vec![
        Step {
            what: "ingest",
            commands: vec![ingest],
        },
        Step {
            what: "publish (full)",
            commands: vec![bess(&["repo", "publish", "--refresh"])],
        },
        Step {
            what: "check",
            commands: vec![bess(&["repo", "check"])],
        },
        Step {
            what: "gc",
            commands: vec![bess(&["repo", "gc"])],
        },
        Step {
            what: "backup",
            commands: vec![backup],
        },
    ];
    let measured = measure("bess", steps, &ws, None);
    fs::remove_dir_all(&ws.dir).ok();
    Ok(measured)
}

/// aptly and reprepro, each where installed.
fn run_peers(run_dir: &Path, corpus: &Corpus) -> Result<Vec<Measured>> {
    let size = corpus.files.len();
    let mut results = Vec::new();
    if let Some(exe) = tools::find_program("aptly") {
        let aptly = tools::Aptly { exe };
        let ws = workspace(run_dir, "aptly", size);
        aptly.setup(&ws)?;
        let mut publish = aptly.command(&ws);
        publish.args([
            "publish",
            "repo",
            "-skip-signing",
            "-architectures=amd64,arm64",
            "bench",
        ]);
        let steps = vec![
            Step {
                what: "ingest",
                commands: aptly.ingest_commands(&ws, &corpus.dir, &corpus.files),
            },
            Step {
                what: "publish (full)",
                commands: vec![publish],
            },
        ];
        results.push(measure("aptly", steps, &ws, peer_limit()?));
        fs::remove_dir_all(&ws.dir).ok();
    }
    if let Some(exe) = tools::find_program("reprepro") {
        let reprepro = tools::Reprepro { exe: exe.clone() };
        let ws = workspace(run_dir, "reprepro", size);
        reprepro.setup(&ws)?;
        let mut export = Command::new(&exe);
        export.arg("-b").arg(&ws.dir).args(["export", DIST]);
        let steps = vec![
            Step {
                what: "ingest",
                commands: reprepro.ingest_commands(&ws, &corpus.dir, &corpus.files),
            },
            Step {
                what: "publish (full)",
                commands: vec![export],
            },
        ];
        results.push(measure("reprepro", steps, &ws, peer_limit()?));
        fs::remove_dir_all(&ws.dir).ok();
    }
    Ok(results)
}

/// `BESS_BENCH_PEER_MINUTES`: how long a peer's command may run.
fn peer_limit() -> Result<Option<Duration>> {
    let minutes = match std::env::var("BESS_BENCH_PEER_MINUTES") {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .context("BESS_BENCH_PEER_MINUTES: whole minutes")?,
        Err(_) => 20,
    };
    Ok(Some(Duration::from_secs(minutes * 60)))
}

/// Runs each step, the filesystem settled before it, each command stopped
/// after `limit`; a failed or stopped step is recorded and the later ones
/// still run.
fn measure(tool: &str, steps: Vec<Step>, ws: &Workspace, limit: Option<Duration>) -> Measured {
    let mut measured = Measured {
        tool: tool.into(),
        steps: Vec::new(),
    };
    for mut step in steps {
        // After a stopped step the repository is partial: later figures
        // would describe a smaller repository than the row says.
        if measured
            .steps
            .iter()
            .any(|(_, o)| matches!(o, Ok((.., true))))
        {
            let why = "not run: an earlier step was stopped".to_string();
            measured.steps.push((step.what, Err(why)));
            continue;
        }
        if let Some(limit) = limit {
            step.commands = step
                .commands
                .iter()
                .map(|c| runner::cap(c, limit))
                .collect();
        }
        runner::settle_filesystem();
        let outcome = runner::time_commands(&mut step.commands, &ws.log);
        match &outcome {
            Ok(m) => println!(
                "{tool} {}: {:.1} MiB, {:.1} s, cpu {:.1} s{}",
                step.what,
                m.peak_rss_kib as f64 / 1024.0,
                m.wall.as_secs_f64(),
                m.cpu.as_secs_f64(),
                if m.stopped {
                    " (stopped at the time limit)"
                } else {
                    ""
                }
            ),
            Err(e) => println!("{tool} {}: FAILED: {e:#}", step.what),
        }
        let outcome = outcome
            .map(|m| {
                (
                    m.peak_rss_kib as f64 / 1024.0,
                    m.wall.as_secs_f64(),
                    m.stopped,
                )
            })
            .map_err(|e| format!("{e:#}"));
        measured.steps.push((step.what, outcome));
    }
    measured
}

/// The rows bess has, with each tool's peak RSS and time.
fn print_table(size: usize, results: &[Measured]) {
    println!("\npeak RSS at {size} packages (MiB, wall time in parentheses)");
    let mut header = format!("{:<26}", "command");
    for r in results {
        header.push_str(&format!("{:>22}", r.tool));
    }
    println!("{header}");
    for (what, _) in &results[0].steps {
        let mut row = format!("{what:<26}");
        for r in results {
            let cell = match r.steps.iter().find(|(w, _)| w == what) {
                Some((_, Ok((mib, secs, false)))) => format!("{mib:.1} ({secs:.1} s)"),
                Some((_, Ok((mib, secs, true)))) => format!(">{mib:.1} (stopped {secs:.0} s)"),
                Some((_, Err(why))) if why.starts_with("not run") => "not run".into(),
                Some((_, Err(_))) => "failed".into(),
                None => "-".into(),
            };
            row.push_str(&format!("{cell:>22}"));
        }
        println!("{row}");
    }
}

/// bess's highest peak at one size; infinite when a step failed.
fn peak_of(bess: &Measured) -> f64 {
    bess.steps
        .iter()
        .map(|(_, outcome)| outcome.as_ref().map_or(f64::INFINITY, |(mib, ..)| *mib))
        .fold(0.0, f64::max)
}

fn print_target(peaks: &[(usize, f64)]) {
    println!("\ntarget: bess under {TARGET_MIB} MiB for every command at every size");
    for (size, peak) in peaks {
        let verdict = if *peak < TARGET_MIB { "met" } else { "NOT met" };
        println!("  {size} packages: highest peak {peak:.1} MiB, {verdict}");
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
