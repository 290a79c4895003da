//! Ingest benchmark: bess, aptly and reprepro each add the same N synthetic .deb files to a
//! fresh repository, R runs interleaved. `BESS_BENCH_PACKAGES` (default 60000) and
//! `BESS_BENCH_RUNS` (default 3) change the size. Prints a table; never fails on speed.

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "support/runner.rs"]
mod runner;
// The publish benches' helpers are unused here.
#[allow(dead_code)]
#[path = "support/tools.rs"]
mod tools;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use corpus::Corpus;
use report::ToolResult;
use tools::{Tool, Workspace};

/// One tool under test and what it has produced so far.
struct Contender {
    tool: Box<dyn Tool>,
    result: ToolResult,
    /// Set when the tool cannot run this variant at all; later runs are skipped.
    disabled: bool,
}

fn main() -> Result<()> {
    let packages = corpus::env_count("BESS_BENCH_PACKAGES", 60_000)?;
    let runs = corpus::env_count("BESS_BENCH_RUNS", 3)?;
    let target = corpus::target_dir(env!("CARGO_BIN_EXE_bess"));
    let corpus = Corpus::ensure(&corpus::cache_root(&target), packages)?;
    println!("corpus: {}", corpus.stats.summary());
    let warmed = corpus.warm_page_cache()?;
    println!(
        "corpus: read {:.1} MiB to warm the page cache",
        warmed as f64 / (1 << 20) as f64
    );
    let run_dir = create_run_dir(&target)?;
    println!("work and logs: {}", run_dir.display());
    let bess = pin_bess_binary(&run_dir)?;
    let mut contenders = contenders(bess);
    for run in 1..=runs {
        for contender in &mut contenders {
            run_once(contender, run, &run_dir, &corpus)?;
        }
    }
    let results: Vec<ToolResult> = contenders.into_iter().map(|c| c.result).collect();
    report::print_report(&results, packages, runner::rss_method());
    remove_workspaces(&run_dir)?;
    Ok(())
}

fn create_run_dir(target: &Path) -> Result<PathBuf> {
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let run_dir = target
        .join("bench-runs")
        .join(format!("ingest-{stamp}-{}", std::process::id()));
    fs::create_dir_all(run_dir.join("logs"))?;
    Ok(run_dir)
}

/// Links the freshly built bess into the run directory: the target directory may be shared
/// with other checkouts whose builds replace `<target>/release/bess`, and every run must
/// measure the same binary.
fn pin_bess_binary(run_dir: &Path) -> Result<PathBuf> {
    let built = Path::new(env!("CARGO_BIN_EXE_bess"));
    let pinned = run_dir.join("bess");
    if fs::hard_link(built, &pinned).is_err() {
        fs::copy(built, &pinned).with_context(|| format!("copying {}", built.display()))?;
    }
    let age = fs::metadata(&pinned)?
        .modified()?
        .elapsed()
        .unwrap_or_default();
    println!(
        "bess: {} (built {:.0} s ago), pinned as {}",
        built.display(),
        age.as_secs_f64(),
        pinned.display()
    );
    Ok(pinned)
}

/// bess always (both variants); peers when installed, otherwise skipped with a note.
fn contenders(bess: PathBuf) -> Vec<Contender> {
    let mut tools: Vec<Box<dyn Tool>> = vec![
        Box::new(tools::Bess {
            exe: bess.clone(),
            publish: false,
        }),
        Box::new(tools::Bess {
            exe: bess,
            publish: true,
        }),
    ];
    match tools::find_program("aptly") {
        Some(exe) => tools.push(Box::new(tools::Aptly { exe })),
        None => println!("aptly: not installed, skipped"),
    }
    match tools::find_program("reprepro") {
        Some(exe) => tools.push(Box::new(tools::Reprepro { exe })),
        None => println!("reprepro: not installed, skipped"),
    }
    tools
        .into_iter()
        .map(|tool| {
            println!("{}", tool.note());
            let result = ToolResult::new(tool.name(), tool.is_bess());
            Contender {
                tool,
                result,
                disabled: false,
            }
        })
        .collect()
}

/// Untimed setup, timed ingest, untimed verification. Repositories are kept
/// until every run is done: deleting 60,000 files makes ext4 skip the freed
/// inodes for minutes (`recently_deleted`), which would slow down whichever
/// tool runs next and bias the comparison.
fn run_once(contender: &mut Contender, run: usize, run_dir: &Path, corpus: &Corpus) -> Result<()> {
    if contender.disabled {
        return Ok(());
    }
    let slug = contender.tool.slug();
    let ws = Workspace {
        dir: run_dir.join(format!("{slug}-{run}")),
        log: run_dir.join("logs").join(format!("{slug}-{run}.log")),
    };
    print!("run {run} {}: ", contender.tool.name());
    std::io::stdout().flush()?;
    contender.result.attempts += 1;
    match contender.tool.setup(&ws) {
        Ok(()) => time_ingest(contender, &ws, corpus),
        Err(err) => println!("setup FAILED: {err:#}"),
    }
    Ok(())
}

/// Deletes every run's repository (the logs stay).
fn remove_workspaces(run_dir: &Path) -> Result<()> {
    for entry in fs::read_dir(run_dir)? {
        let entry = entry?;
        if entry.file_name() != "logs" && entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn time_ingest(contender: &mut Contender, ws: &Workspace, corpus: &Corpus) {
    let mut commands = contender
        .tool
        .ingest_commands(ws, &corpus.dir, &corpus.files);
    let invocations = commands.len();
    runner::settle_filesystem();
    match runner::time_commands(&mut commands, &ws.log) {
        Ok(measured) => {
            let batches = if invocations > 1 {
                format!(" in {invocations} invocations")
            } else {
                String::new()
            };
            println!(
                "{:.3} s{batches}, cpu {:.3} s, peak RSS {:.1} MiB",
                measured.wall.as_secs_f64(),
                measured.cpu.as_secs_f64(),
                measured.peak_rss_kib as f64 / 1024.0
            );
            if let Err(err) = contender.tool.verify(ws, corpus.files.len()) {
                println!("  WARNING: post-ingest check failed: {err:#}");
                contender.result.unverified += 1;
            }
            contender.result.walls.push(measured.wall);
            contender.result.cpus.push(measured.cpu);
            contender.result.peak_rss_kib =
                contender.result.peak_rss_kib.max(measured.peak_rss_kib);
        }
        Err(err) => {
            println!("FAILED: {err:#}");
            if contender.tool.lacks_option(&runner::log_tail(&ws.log, 20)) {
                println!(
                    "  {} does not accept the option; skipping this variant from now on",
                    contender.tool.name()
                );
                contender.disabled = true;
            }
        }
    }
}
