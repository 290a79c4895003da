//! `bess platform up|halt` through the real binary, where no machine
//! needs to start (and so no root): every environment of the platform in
//! name order, one environment's failure reported without stopping the
//! next, exit status 1 naming those that failed.

mod common;

use common::env::{copy_example, init_platform};
use common::{Sandbox, have_tool};
use std::process::Command;

/// The example platform as `paas` with environments `envs`, never started.
fn platform_with(envs: &[&str]) -> Sandbox {
    let sb = Sandbox::new("bookworm", "amd64");
    let source = copy_example(&sb.path("platform"));
    init_platform(&sb, "paas", &source, "10.231.12.0/24");
    for env in envs {
        sb.ok(&["env", "init", "paas", env]);
    }
    sb
}

/// The `environment` of each entry of `platform up|halt --json`.
fn environments(outcomes: &serde_json::Value) -> Vec<String> {
    let list = outcomes.as_array().expect("a JSON array");
    list.iter()
        .map(|e| e["environment"].as_str().unwrap().to_string())
        .collect()
}

/// `(machine, state)` of one entry, sorted by machine.
fn machines(entry: &serde_json::Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = entry["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = |k: &str| m[k].as_str().unwrap().to_string();
            (text("machine"), text("state"))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn platform_halt_reports_every_environment_in_name_order() {
    // nspawn's halt asks `ip` whether a route to the machine is left.
    if !have_tool("ip") {
        return;
    }
    let sb = platform_with(&["1162", "1161"]);
    let halted = sb.json(&["platform", "halt", "paas"]);
    assert_eq!(environments(&halted), ["1161", "1162"], "{halted}");
    for entry in halted.as_array().unwrap() {
        assert!(entry["error"].is_null(), "{halted}");
        // Never started: the machines stay as `env init` made them.
        let defined = |name: &str| (name.to_string(), "defined".to_string());
        assert_eq!(machines(entry), [defined("db"), defined("web")], "{halted}");
    }
    let table = sb.ok(&["platform", "halt", "paas"]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["ENVIRONMENT", "MACHINE", "IP", "STATE", "PROVISIONED"],
        "{table}"
    );
    let rows: Vec<(&str, &str)> = lines[1..].iter().map(|l| (l[0], l[1])).collect();
    assert_eq!(
        rows,
        [
            ("1161", "db"),
            ("1161", "web"),
            ("1162", "db"),
            ("1162", "web")
        ],
        "{table}"
    );
    for env in ["1161", "1162"] {
        let status = sb.json(&["env", "status", "paas", env]);
        assert_eq!(status["state"], "ready", "{status}");
    }
}

#[test]
fn a_platform_without_environments_has_nothing_to_start_or_halt() {
    let sb = platform_with(&[]);
    for action in ["up", "halt"] {
        let said = sb.ok(&["platform", action, "paas"]);
        assert!(
            said.contains("platform paas has no environments"),
            "{action}: {said}"
        );
        assert!(said.contains("bess env init paas ENV"), "{action}: {said}");
        assert_eq!(
            sb.json(&["platform", action, "paas"]),
            serde_json::json!([])
        );
    }
}

#[test]
fn an_unknown_platform_is_named_with_where_to_look() {
    let sb = Sandbox::new("bookworm", "amd64");
    for action in ["up", "halt"] {
        let error = sb.fails(&["platform", action, "nope"]);
        assert!(
            error.contains("no platform named `nope`; see `bess platform list`"),
            "{action}: {error}"
        );
    }
}

/// Without systemd-nspawn every environment fails before its machines:
/// the second is still tried after the first failed, both are listed,
/// and the exit status and message name both.
#[test]
fn platform_up_goes_on_past_a_failed_environment_and_names_each() {
    let sb = platform_with(&["1161", "1162"]);
    let empty = sb.path("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let up = |json: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bess"));
        command
            .env("BESS_REPO", &sb.repo)
            .env("PATH", &empty)
            .args(["platform", "up", "paas"]);
        if json {
            command.arg("--json");
        }
        command.output().unwrap()
    };
    let out = up(true);
    assert_eq!(out.status.code(), Some(1));
    let outcomes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(environments(&outcomes), ["1161", "1162"], "{outcomes}");
    for entry in outcomes.as_array().unwrap() {
        let error = entry["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("apt-get install systemd-container"),
            "{outcomes}"
        );
        assert_eq!(entry["machines"], serde_json::json!([]), "{outcomes}");
    }
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("2 of 2 environments of platform paas did not come up: 1161, 1162"),
        "{error}"
    );
    assert!(error.contains("\n1162: "), "{error}");
    let out = up(false);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = table
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some("failed"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(failed, ["1161", "1162"], "{table}");
    // Nothing was started: both are as `env init` left them.
    for env in ["1161", "1162"] {
        let status = sb.json(&["env", "status", "paas", env]);
        assert_eq!(status["state"], "ready", "{status}");
    }
    assert!(!sb.repo.join("machines/paas").exists());
}
