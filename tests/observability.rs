//! What bess tells operators: `GET /metrics` in Prometheus' text format
//! from a real server, `--quiet` and `--verbose`, and progress bars only
//! on a terminal.

mod common;

use common::server::{Server, add_user, host_arch};
use common::{DebSpec, Sandbox, have_tool};
use std::collections::BTreeMap;
use std::process::Command;

const READER: (&str, &str) = ("web01", "reader-secret-1");
const UPLOADER: (&str, &str) = ("ci", "uploader-secret-1");

/// Parses the exposition text, checking the syntax of every line:
/// `# HELP name text`, `# TYPE name kind`, or `name{labels} value`.
/// Returns each sample's value by its `name{labels}` text.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(is_metric_name(name), "{line}");
            match keyword {
                "HELP" => assert!(parts.next().is_some_and(|h| !h.is_empty()), "{line}"),
                "TYPE" => {
                    let kind = parts.next().unwrap_or("");
                    assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                    typed.insert(name.to_string());
                }
                _ => panic!("unknown comment: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let name = series.split('{').next().unwrap();
        assert!(is_metric_name(name), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "no TYPE before {line}");
        if let Some(labels) = series.strip_prefix(name) {
            check_labels(labels, line);
        }
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        samples.insert(series.to_string(), value);
    }
    samples
}

fn is_metric_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `{a="x",b="y"}` or nothing.
fn check_labels(labels: &str, line: &str) {
    if labels.is_empty() {
        return;
    }
    let inner = labels
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .unwrap_or_else(|| panic!("{line}"));
    for pair in inner.split(',') {
        let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
        assert!(is_metric_name(key), "{line}");
        assert!(
            value.len() >= 2 && value.starts_with('"') && value.ends_with('"'),
            "{line}"
        );
    }
}

fn metrics(server: &Server) -> BTreeMap<String, f64> {
    let (status, body) = server.get("/metrics", None);
    assert_eq!(status, 200);
    parse_metrics(&String::from_utf8(body).unwrap())
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[test]
fn metrics_count_requests_bytes_auth_failures_and_publishes() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let arch = host_arch();
    let sb = Sandbox::new("bookworm", &arch);
    add_user(&sb.repo, READER, &["--read", "prod"]);
    add_user(&sb.repo, UPLOADER, &["--upload", "preprod"]);
    let server = Server::start(&sb.repo);
    let before = metrics(&server);
    assert_eq!(value(&before, "bess_build_info{version=\"0.1.0\"}"), 1.0);

    let (status, release) = server.get("/prod/dists/bookworm/InRelease", Some(READER));
    assert_eq!(status, 200);
    assert_eq!(server.get("/prod/dists/bookworm/InRelease", None).0, 401);
    let wrong = Some((READER.0, "not-the-password"));
    assert_eq!(server.get("/prod/dists/bookworm/InRelease", wrong).0, 401);
    let deb = DebSpec::new("fromci", "1.0-1", &arch).build(&sb.path("ci"));
    let out = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_PASSWORD", UPLOADER.1)
        .args([
            "repo",
            "ingest",
            "--remote",
            &server.url(),
            "--user",
            UPLOADER.0,
        ])
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let after = metrics(&server);
    let delta = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(
        delta("bess_http_requests_total{channel=\"prod\",code=\"200\"}"),
        1.0
    );
    assert_eq!(
        delta("bess_http_requests_total{channel=\"prod\",code=\"401\"}"),
        2.0
    );
    assert_eq!(
        delta("bess_http_response_bytes_total{channel=\"prod\",code=\"200\"}"),
        release.len() as f64
    );
    assert_eq!(
        delta("bess_http_requests_total{channel=\"api\",code=\"200\"}"),
        1.0
    );
    assert_eq!(delta("bess_auth_failures_total{reason=\"invalid\"}"), 1.0);
    assert_eq!(delta("bess_publish_duration_seconds_count"), 1.0);
    assert_eq!(
        value(&after, "bess_publish_duration_seconds_bucket{le=\"+Inf\"}"),
        1.0
    );
    assert!(value(&after, "bess_publish_duration_seconds_sum") > 0.0);
    assert_eq!(
        delta("bess_http_requests_total{channel=\"metrics\",code=\"200\"}"),
        1.0,
        "the first scrape is counted by the second"
    );
}

#[test]
fn metrics_are_refused_outside_the_allow_list() {
    let sb = Sandbox::new("bookworm", "amd64");
    let settings = sb.repo.join("bess.toml");
    let text = std::fs::read_to_string(&settings).unwrap();
    let text = text.replace("[serve]\n", "[serve]\nmetrics-allow = [\"10.0.0.0/8\"]\n");
    std::fs::write(&settings, text).unwrap();
    let server = Server::start(&sb.repo);
    let (status, body) = server.get("/metrics", None);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    // Basic auth does not open it either: scrapers are identified by address.
    let auth = Some(("anyone", "anything"));
    assert_eq!(server.get("/metrics", auth).0, 403);
}

#[test]
fn quiet_prints_nothing_and_verbose_one_line_per_package() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    DebSpec::new("alpha", "1.0-1", "amd64").build(&input);
    DebSpec::new("beta", "1.0-1", "amd64").build(&input);
    let quiet = sb.bess(&["--quiet", "repo", "ingest", input.to_str().unwrap()]);
    assert!(quiet.status.success());
    assert_eq!(
        (quiet.stdout.as_slice(), quiet.stderr.as_slice()),
        (&b""[..], &b""[..])
    );
    DebSpec::new("gamma", "1.0-1", "amd64").build(&input);
    let verbose = sb.ok(&["repo", "ingest", "-v", input.to_str().unwrap()]);
    assert!(verbose.contains("added     gamma 1.0-1"), "{verbose}");
    assert!(verbose.contains("unchanged alpha 1.0-1"), "{verbose}");
    assert!(verbose.contains("ingested 3 package(s)"), "{verbose}");
    let check = sb.bess(&["repo", "check", "-q"]);
    assert!(check.status.success());
    assert!(check.stdout.is_empty() && check.stderr.is_empty());
    let both = sb.bess(&["-q", "-v", "repo", "check"]);
    assert!(
        !both.status.success(),
        "--quiet and --verbose exclude each other"
    );
}

#[test]
fn progress_bars_only_on_a_terminal() {
    if !have_tool("dpkg-deb") || !have_tool("script") {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    for i in 0..20 {
        DebSpec::new(&format!("p{i}"), "1.0-1", "amd64").build(&input);
    }
    let piped = sb.bess(&["repo", "ingest", input.to_str().unwrap()]);
    assert!(piped.status.success());
    assert!(piped.stderr.is_empty(), "no bar when stderr is a pipe");
    // script(1) runs the command on a pseudo-terminal.
    let line = format!("{} repo check", env!("CARGO_BIN_EXE_bess"),);
    let tty = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("BESS_REPO", &sb.repo)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{text}");
    assert!(text.contains("checking objects"), "{text}");
    let quiet = Command::new("script")
        .args(["-qec", &format!("{line} --quiet"), "/dev/null"])
        .env("BESS_REPO", &sb.repo)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&quiet.stdout);
    assert!(!text.contains("checking objects"), "{text}");
}

#[test]
fn quiet_serve_logs_no_requests_yet_counts_them() {
    let sb = Sandbox::new("bookworm", "amd64");
    add_user(&sb.repo, READER, &["--read", "prod"]);
    let log = sb.path("serve.log");
    let server = Server::start_quiet_logged(&sb.repo, &log);
    let before = metrics(&server);
    assert_eq!(server.get("/key.gpg", None).0, 200);
    assert_eq!(server.get("/prod/dists/bookworm/InRelease", None).0, 401);
    let after = metrics(&server);
    let delta = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(
        delta("bess_http_requests_total{channel=\"prod\",code=\"401\"}"),
        1.0
    );
    drop(server);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logged.contains("GET /key.gpg") && !logged.contains("InRelease"),
        "no request lines with --quiet: {logged}"
    );

    let server = Server::start_logged(&sb.repo, &log);
    assert_eq!(server.get("/key.gpg", None).0, 200);
    drop(server);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("\"GET /key.gpg\" 200"), "{logged}");
}
