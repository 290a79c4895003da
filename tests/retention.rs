//! `bess repo prune` and `bess repo pin` through the real binary, with
//! packages built by dpkg-deb and the result read back by apt-get.

mod common;

use common::apt::AptRoot;
use common::{DebSpec, Sandbox, have_tool};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

fn skip() -> bool {
    !have_tool("dpkg-deb")
}

/// (version, architecture, dist) of each placement in a prune report list.
fn placements(list: &Value) -> BTreeSet<(String, String, String)> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap().to_string();
            (s("version"), s("architecture"), s("dist"))
        })
        .collect()
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(v, a, d)| (v.to_string(), a.to_string(), d.to_string()))
        .collect()
}

/// Versions of `package`/`arch` placed in `channel`/`dist`, as `repo list` shows them.
fn listed(sb: &Sandbox, channel: &str, dist: &str, arch: &str) -> BTreeSet<String> {
    common::rows(&sb.json(&["repo", "list", "--channel", channel, "--dist", dist]))
        .into_iter()
        .filter(|r| r.2 == arch)
        .map(|r| r.1)
        .collect()
}

fn versions(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|v| v.to_string()).collect()
}

fn ingest_versions(sb: &Sandbox, input: &Path, list: &[&str]) -> HashMap<String, u64> {
    let mut sizes = HashMap::new();
    for v in list {
        let file = DebSpec::new("app", v, "amd64").build(input);
        sizes.insert(v.to_string(), std::fs::metadata(file).unwrap().len());
    }
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    sizes
}

#[test]
fn prune_keeps_the_newest_per_dist_and_arch_and_spares_pins() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm,jammy", "amd64,arm64");
    let input = sb.path("in");
    DebSpec::new("app", "1.0-1", "arm64").build(&input);
    let all = ["1.0-1", "1.1-1", "1.2-1", "1.3-1", "1.4-1"];
    let sizes = ingest_versions(&sb, &input, &all);
    // 1.2-1 stays referenced from prod, so pruning it in preprod frees nothing.
    sb.ok(&["repo", "promote", "app=1.2-1"]);
    sb.ok(&["repo", "pin", "app=1.1-1", "--channel", "preprod"]);
    let before = sb.json(&["repo", "list"]);

    let plan = sb.json(&[
        "repo",
        "prune",
        "--channel",
        "preprod",
        "--keep",
        "2",
        "--dry-run",
    ]);
    assert_eq!(
        sb.json(&["repo", "list"]),
        before,
        "a dry run changes nothing"
    );
    let gone = set(&[
        ("1.0-1", "amd64", "bookworm"),
        ("1.0-1", "amd64", "jammy"),
        ("1.2-1", "amd64", "bookworm"),
        ("1.2-1", "amd64", "jammy"),
    ]);
    assert_eq!(placements(&plan["removed"]), gone, "{plan:#}");
    assert_eq!(
        placements(&plan["spared_by_pin"]),
        set(&[("1.1-1", "amd64", "bookworm"), ("1.1-1", "amd64", "jammy")])
    );
    assert_eq!(plan["objects_freed"], 1);
    assert_eq!(plan["bytes_freed"], sizes["1.0-1"]);
    let text = sb.ok(&[
        "repo",
        "prune",
        "--channel",
        "preprod",
        "--keep",
        "2",
        "--dry-run",
    ]);
    assert!(
        text.contains("would remove app 1.0-1 (amd64) from preprod/bookworm"),
        "{text}"
    );

    let done = sb.json(&["repo", "prune", "--channel", "preprod", "--keep", "2"]);
    assert_eq!(placements(&done["removed"]), gone);
    assert_eq!(done["bytes_freed"], plan["bytes_freed"]);
    for dist in ["bookworm", "jammy"] {
        assert_eq!(
            listed(&sb, "preprod", dist, "amd64"),
            versions(&["1.1-1", "1.3-1", "1.4-1"])
        );
        assert_eq!(
            listed(&sb, "preprod", dist, "arm64"),
            versions(&["1.0-1"]),
            "the only arm64 build is the newest of its architecture"
        );
        assert_eq!(listed(&sb, "prod", dist, "amd64"), versions(&["1.2-1"]));
    }
    sb.ok(&["repo", "check"]);
    let gc = sb.json(&["repo", "gc"]);
    assert_eq!(gc["objects_deleted"], 1);
    assert_eq!(
        gc["bytes_freed"], plan["bytes_freed"],
        "gc frees what prune announced"
    );
}

#[test]
fn apt_sees_pruned_versions_go_and_kept_ones_stay_installable() {
    if skip() || !have_tool("apt-get") {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    ingest_versions(&sb, &input, &["1.0-1", "1.1-1", "1.2-1"]);
    let key = sb.path("key.gpg");
    std::fs::write(&key, sb.bess(&["key", "export"]).stdout).unwrap();
    let apt = AptRoot::new("amd64", "");
    let uri = format!("file:{}", sb.repo.join("public/preprod").display());
    apt.add_source("bess", &uri, "bookworm", &key);
    apt.update(&[]);
    assert_eq!(apt.versions("app"), ["1.2-1", "1.1-1", "1.0-1"]);

    sb.ok(&["repo", "prune", "--channel", "preprod", "--keep", "2"]);
    apt.update(&[]);
    assert_eq!(apt.versions("app"), ["1.2-1", "1.1-1"]);
    let original = std::fs::read(input.join("app_1.1-1_amd64.deb")).unwrap();
    assert_eq!(apt.download("app=1.1-1"), original);
    let gone = apt.run("apt-get", &["download", "app=1.0-1"]);
    assert!(
        !gone.status.success(),
        "a pruned version is not downloadable"
    );
}

#[test]
fn keep_rules_come_from_bess_toml() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let settings = sb.repo.join("bess.toml");
    let original = std::fs::read_to_string(&settings).unwrap();
    let err = sb.fails(&["repo", "prune"]);
    assert!(
        err.contains("no retention rule") && err.contains("[prune."),
        "{err}"
    );

    std::fs::write(
        &settings,
        format!("{original}\n[prune.staging]\nkeep = 3\n"),
    )
    .unwrap();
    let err = sb.fails(&["repo", "list"]);
    assert!(
        err.contains("[prune.staging]") && err.contains("not in channels"),
        "{err}"
    );
    std::fs::write(&settings, format!("{original}\n[prune.prod]\nkeep = 0\n")).unwrap();
    let err = sb.fails(&["repo", "list"]);
    assert!(err.contains("keep at least 1"), "{err}");

    let rules = "\n[prune.preprod]\nkeep = 1\n[prune.prod]\nkeep = 2\n";
    std::fs::write(&settings, format!("{original}{rules}")).unwrap();
    let input = sb.path("in");
    ingest_versions(&sb, &input, &["1.0-1", "2.0-1", "3.0-1"]);
    sb.ok(&["repo", "promote", "app=1.0-1", "app=2.0-1", "app=3.0-1"]);
    let done = sb.json(&["repo", "prune"]);
    assert_eq!(done["rules"][0]["keep"], 1);
    assert_eq!(done["rules"][1]["keep"], 2);
    assert_eq!(
        listed(&sb, "preprod", "bookworm", "amd64"),
        versions(&["3.0-1"])
    );
    assert_eq!(
        listed(&sb, "prod", "bookworm", "amd64"),
        versions(&["2.0-1", "3.0-1"])
    );
    assert_eq!(done["objects_freed"], 1, "only 1.0-1 is left nowhere");
    let err = sb.fails(&["repo", "prune", "--keep", "0"]);
    assert!(err.contains("--keep 0"), "{err}");
}

/// Moves the placements of `version` `days` back in time, as if made then.
fn backdate(sb: &Sandbox, version: &str, days: i64) {
    let db = rusqlite::Connection::open(sb.repo.join("catalog/catalog.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE placements SET placed_at = placed_at - ?1
             WHERE package_id IN (SELECT id FROM packages WHERE version = ?2)",
            rusqlite::params![days * 86_400, version],
        )
        .unwrap();
    assert!(changed > 0, "{version} is placed");
}

#[test]
fn older_than_prunes_only_old_placements_and_never_the_newest() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    ingest_versions(&sb, &input, &["1.0-1", "1.1-1", "1.2-1", "1.3-1"]);
    backdate(&sb, "1.0-1", 40);
    backdate(&sb, "1.2-1", 40);

    let plan = sb.json(&[
        "repo",
        "prune",
        "--channel",
        "preprod",
        "--keep",
        "1",
        "--older-than",
        "30",
        "--dry-run",
    ]);
    assert_eq!(
        placements(&plan["removed"]),
        set(&[
            ("1.0-1", "amd64", "bookworm"),
            ("1.2-1", "amd64", "bookworm")
        ]),
        "beyond the newest AND older than 30 days: {plan:#}"
    );
    let reason = plan["removed"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("40 day"), "{reason}");

    backdate(&sb, "1.3-1", 40);
    sb.ok(&[
        "repo",
        "prune",
        "--channel",
        "preprod",
        "--older-than",
        "30",
    ]);
    assert_eq!(
        listed(&sb, "preprod", "bookworm", "amd64"),
        versions(&["1.1-1", "1.3-1"]),
        "--older-than alone keeps the newest version however old, and recent ones"
    );
}

#[test]
fn pins_need_a_known_exact_version_and_can_be_listed_and_dropped() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    ingest_versions(&sb, &sb.path("in"), &["1.0-1", "1.1-1"]);
    let err = sb.fails(&["repo", "pin", "app", "--channel", "prod"]);
    assert!(err.contains("exact version"), "{err}");
    let err = sb.fails(&["repo", "pin", "app=9.9", "--channel", "prod"]);
    assert!(err.contains("bess repo versions app"), "{err}");
    let err = sb.fails(&["repo", "pin", "app=1.0-1", "--channel", "staging"]);
    assert!(err.contains("unknown channel"), "{err}");

    sb.ok(&["repo", "pin", "app=1.0-1", "--channel", "preprod"]);
    let pins = sb.json(&["repo", "pins"]);
    assert_eq!(pins[0]["package"], "app");
    assert_eq!(pins[0]["version"], "1.0-1");
    let plan = sb.json(&[
        "repo",
        "prune",
        "--channel",
        "preprod",
        "--keep",
        "1",
        "--dry-run",
    ]);
    assert!(placements(&plan["removed"]).is_empty(), "{plan:#}");

    sb.ok(&["repo", "unpin", "app=1.0-1", "--channel", "preprod"]);
    let err = sb.fails(&["repo", "unpin", "app=1.0-1", "--channel", "preprod"]);
    assert!(err.contains("not pinned"), "{err}");
    let plan = sb.json(&[
        "repo",
        "prune",
        "--channel",
        "preprod",
        "--keep",
        "1",
        "--dry-run",
    ]);
    assert_eq!(
        placements(&plan["removed"]),
        set(&[("1.0-1", "amd64", "bookworm")])
    );
}
