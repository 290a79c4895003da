//! The audit log through the real binary: an entry for every kind of
//! change, by the local user from the CLI and by the HTTP user through
//! `bess serve`, and none for a refused change.

mod common;

use common::server::{Server, add_user};
use common::{DebSpec, Sandbox, have_tool};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

fn skip() -> bool {
    !have_tool("dpkg-deb")
}

/// The name bess should log for this process: the passwd name, or `uid N`.
fn whoami() -> String {
    let id = |flag: &str| Command::new("id").arg(flag).output().unwrap();
    let named = id("-un");
    if named.status.success() {
        return String::from_utf8(named.stdout).unwrap().trim().to_string();
    }
    format!("uid {}", String::from_utf8(id("-u").stdout).unwrap().trim())
}

/// `bess ARGS` with `stdin` on standard input; requires success.
fn with_stdin(sb: &Sandbox, args: &[&str], stdin: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", &sb.repo)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "bess {args:?}");
}

fn entries(sb: &Sandbox, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["log"];
    all.extend_from_slice(args);
    sb.json(&all).as_array().unwrap().clone()
}

fn actions(log: &[Value]) -> Vec<&str> {
    log.iter().map(|e| e["action"].as_str().unwrap()).collect()
}

/// Every kind of change a CLI user can make.
fn make_every_change(sb: &Sandbox) {
    let input = sb.path("in");
    DebSpec::new("app", "1.0-1", "amd64").build(&input);
    DebSpec::new("app", "1.1-1", "amd64").build(&input);
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    sb.ok(&["repo", "promote", "app=1.0-1"]);
    sb.ok(&["repo", "remove", "app=1.0-1", "--channel", "prod"]);
    sb.ok(&["repo", "pin", "app=1.1-1", "--channel", "preprod"]);
    sb.ok(&["repo", "unpin", "app=1.1-1", "--channel", "preprod"]);
    sb.ok(&["repo", "prune", "--channel", "preprod", "--keep", "1"]);
    sb.ok(&["repo", "gc"]);
    with_stdin(
        sb,
        &[
            "user",
            "add",
            "ci",
            "--upload",
            "preprod",
            "--password-stdin",
        ],
        "first-secret-pw",
    );
    with_stdin(
        sb,
        &["user", "passwd", "ci", "--password-stdin"],
        "second-secret-pw",
    );
    sb.ok(&["user", "remove", "ci"]);
    let old = sb.json(&["key", "show"])["signing"][0]
        .as_str()
        .unwrap()
        .to_string();
    sb.ok(&["key", "generate"]);
    sb.ok(&["key", "retire", &old]);
}

#[test]
fn every_kind_of_change_from_the_cli_is_logged_with_the_local_user() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    make_every_change(&sb);
    let log = entries(&sb, &[]);
    let kinds: BTreeSet<&str> = actions(&log).into_iter().collect();
    let expected = [
        "ingest",
        "promote",
        "remove",
        "pin",
        "unpin",
        "prune",
        "gc",
        "user.add",
        "user.passwd",
        "user.remove",
        "key.generate",
        "key.retire",
    ];
    assert_eq!(kinds, expected.into_iter().collect(), "{log:#?}");
    let me = whoami();
    for entry in &log {
        assert_eq!(entry["actor"], me.as_str(), "{entry:#}");
        assert_eq!(entry["origin"], "cli");
    }
    assert_eq!(
        actions(&log).last(),
        Some(&"key.generate"),
        "bess init generates the first key"
    );

    let promote = &entries(&sb, &["--action", "promote"])[0];
    assert_eq!(promote["package"], "app");
    assert_eq!(promote["version"], "1.0-1");
    assert_eq!(promote["channel"], "prod");
    assert_eq!(promote["dists"], serde_json::json!(["bookworm"]));
    assert_eq!(promote["detail"]["from"], "preprod");
    let pruned = &entries(&sb, &["--action", "prune"])[0];
    assert_eq!(
        (&pruned["version"], &pruned["detail"]["keep"]),
        (&"1.0-1".into(), &1.into())
    );
    let gc = &entries(&sb, &["--action", "gc"])[0];
    assert_eq!(gc["detail"]["objects_deleted"], 1, "{gc:#}");

    let text = format!("{}{}", sb.ok(&["log"]), sb.ok(&["log", "--json"]));
    for secret in ["first-secret-pw", "second-secret-pw", "$argon2"] {
        assert!(!text.contains(secret), "the log shows {secret}");
    }
    assert!(
        text.contains("app 1.0-1 (amd64) prod/bookworm from preprod"),
        "{text}"
    );
}

#[test]
fn log_filters_by_package_time_and_count_and_sudo_is_named() {
    if skip() {
        return;
    }
    let mut sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    DebSpec::new("app", "1.0-1", "amd64").build(&input);
    DebSpec::new("other", "1.0-1", "amd64").build(&input);
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    sb.env.push(("SUDO_USER".into(), "alice-ops".into()));
    sb.ok(&["repo", "promote", "app=1.0-1"]);
    sb.env.clear();

    let app = entries(&sb, &["--package", "app"]);
    assert_eq!(actions(&app), ["promote", "ingest"], "newest first");
    let me = whoami();
    assert_eq!(app[0]["actor"], format!("{me} (sudo: alice-ops)"));
    assert_eq!(entries(&sb, &["--since", "1h"]).len(), 4);
    assert_eq!(entries(&sb, &["--since", "2020-01-01"]).len(), 4);
    assert!(entries(&sb, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    assert_eq!(actions(&entries(&sb, &["--limit", "1"])), ["promote"]);
    let err = sb.fails(&["log", "--since", "yesterday"]);
    assert!(err.contains("7d") && err.contains("2026-11-01"), "{err}");

    // A refused upload changes nothing, so it records nothing.
    let conflicting = DebSpec::new("app", "1.0-1", "amd64")
        .payload("different bytes\n")
        .build(&sb.path("conflict"));
    sb.fails(&["repo", "ingest", conflicting.to_str().unwrap()]);
    assert_eq!(entries(&sb, &[]).len(), 4);
}

#[test]
fn changes_through_the_http_api_name_the_http_user() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    add_user(
        &sb.repo,
        ("ci", "ci-uploader-secret"),
        &["--upload", "preprod"],
    );
    add_user(&sb.repo, ("boss", "the-admin-secret"), &["--admin"]);
    let server = Server::start(&sb.repo);
    let deb = DebSpec::new("fromci", "3.0-1", "amd64").build(&sb.path("ci"));
    let upload = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_PASSWORD", "ci-uploader-secret")
        .args(["repo", "ingest", "--remote", &server.url(), "--user", "ci"])
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        upload.status.success(),
        "{}",
        String::from_utf8_lossy(&upload.stderr)
    );
    let body = br#"{"packages":["fromci=3.0-1"],"from":"preprod","to":"prod"}"#;
    let (status, reply) = server.request(
        "POST",
        "/api/v1/promote",
        ("boss", "the-admin-secret"),
        body,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));

    let log = entries(&sb, &["--package", "fromci"]);
    assert_eq!(actions(&log), ["promote", "ingest"]);
    assert_eq!(
        (&log[0]["actor"], &log[0]["origin"]),
        (&"boss".into(), &"http".into())
    );
    assert_eq!(
        (&log[1]["actor"], &log[1]["origin"]),
        (&"ci".into(), &"http".into())
    );
    assert_eq!(log[1]["channel"], "preprod");
    assert_eq!(log[1]["detail"]["new"], true);
    let users = entries(&sb, &["--action", "user.add"]);
    assert_eq!(users.len(), 2);
    assert!(
        users
            .iter()
            .all(|e| e["origin"] == "cli" && e["detail"]["user"].is_string())
    );
}
