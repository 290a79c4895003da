//! Benchmark report: per-tool wall-clock statistics, throughput, peak RSS, and how each peer
//! compares with bess. It only prints; a benchmark never fails on speed.

use std::time::Duration;

/// Everything measured for one tool (or one variant of a tool) across the runs.
pub struct ToolResult {
    pub tool: String,
    pub is_bess: bool,
    pub walls: Vec<Duration>,
    pub cpus: Vec<Duration>,
    pub peak_rss_kib: u64,
    pub attempts: usize,
    /// Runs that exited successfully but whose repository failed the post-ingest check.
    pub unverified: usize,
}

impl ToolResult {
    pub fn new(tool: &str, is_bess: bool) -> Self {
        ToolResult {
            tool: tool.to_string(),
            is_bess,
            walls: Vec::new(),
            cpus: Vec::new(),
            peak_rss_kib: 0,
            attempts: 0,
            unverified: 0,
        }
    }

    fn median(&self) -> Option<f64> {
        median_secs(&self.walls)
    }

    /// Trustworthy timings: at least one run, every successful run verified.
    fn trusted_median(&self) -> Option<f64> {
        self.median().filter(|_| self.unverified == 0)
    }
}

pub fn print_report(results: &[ToolResult], packages: usize, rss_method: &str) {
    println!();
    println!("ingest of {packages} packages (wall clock of the ingest command only):");
    println!(
        "{:<28} {:>5} {:>9} {:>9} {:>9} {:>10} {:>9} {:>12}",
        "tool", "ok", "median s", "min s", "max s", "pkgs/s", "cpu s", "peak RSS MiB"
    );
    for result in results {
        print_row(result, packages);
    }
    for result in results.iter().filter(|r| r.unverified > 0) {
        println!(
            "  * {}: {} run(s) failed the post-ingest check; not used for ratios",
            result.tool, result.unverified
        );
    }
    println!("cpu s: median user+system time of the command (wait4); peak RSS: {rss_method}");
    print_ratios(results);
}

fn print_row(result: &ToolResult, packages: usize) {
    let ok = format!("{}/{}", result.walls.len(), result.attempts);
    let marker = if result.unverified > 0 { "*" } else { "" };
    let Some(median) = result.median() else {
        println!(
            "{:<28} {ok:>5} {:>9}",
            format!("{}{marker}", result.tool),
            "failed"
        );
        return;
    };
    let min = result.walls.iter().min().map_or(0.0, Duration::as_secs_f64);
    let max = result.walls.iter().max().map_or(0.0, Duration::as_secs_f64);
    let cpu = median_secs(&result.cpus).unwrap_or(0.0);
    println!(
        "{:<28} {ok:>5} {median:>9.3} {min:>9.3} {max:>9.3} {:>10.0} {cpu:>9.3} {:>12.1}",
        format!("{}{marker}", result.tool),
        packages as f64 / median,
        result.peak_rss_kib as f64 / 1024.0,
    );
}

/// The median of some durations, in seconds.
pub fn median_secs(samples: &[Duration]) -> Option<f64> {
    let mut secs: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
    secs.sort_by(f64::total_cmp);
    let mid = secs.len() / 2;
    match secs.len() {
        0 => None,
        n if n % 2 == 1 => Some(secs[mid]),
        _ => Some((secs[mid - 1] + secs[mid]) / 2.0),
    }
}

/// Peer median over bess median: above 1 means bess is faster. The reference is the first
/// bess variant with verified runs (`--no-publish`, the like-for-like comparison).
fn print_ratios(results: &[ToolResult]) {
    let reference = results
        .iter()
        .find(|r| r.is_bess && r.trusted_median().is_some());
    let Some((bess, bess_median)) = reference.and_then(|r| Some((r, r.trusted_median()?))) else {
        println!("ratios: no verified bess result, nothing to compare");
        println!("target: bess >= 3x faster than the fastest peer: not evaluated");
        return;
    };
    println!("ratios against {} (median over median):", bess.tool);
    let others = results.iter().filter(|r| r.tool != bess.tool);
    let measured: Vec<(&ToolResult, f64)> = others
        .filter_map(|r| Some((r, r.trusted_median()?)))
        .collect();
    for (other, median) in &measured {
        println!(
            "  {}/bess = {:.1}x  ({})",
            short_name(other),
            median / bess_median,
            other.tool
        );
    }
    let fastest_peer = measured
        .iter()
        .filter(|(r, _)| !r.is_bess)
        .min_by(|a, b| a.1.total_cmp(&b.1));
    print_target(fastest_peer.copied(), bess_median);
}

fn print_target(fastest_peer: Option<(&ToolResult, f64)>, bess_median: f64) {
    let Some((peer, median)) = fastest_peer else {
        println!("target: bess >= 3x faster than the fastest peer: not evaluated (no peer result)");
        return;
    };
    let ratio = median / bess_median;
    let verdict = if ratio >= 3.0 { "met" } else { "not met" };
    println!(
        "target: bess >= 3x faster than the fastest peer: {} {median:.2} s vs bess {bess_median:.2} s = {ratio:.1}x, {verdict}",
        short_name(peer)
    );
}

/// "reprepro includedeb" -> "reprepro", "bess ingest (publishes)" -> "bess ingest (publishes)".
fn short_name(result: &ToolResult) -> &str {
    if result.is_bess {
        return &result.tool;
    }
    result
        .tool
        .split_whitespace()
        .next()
        .unwrap_or(&result.tool)
}
