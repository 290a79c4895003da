//! Release files signed again before they expire: by `bess serve` on its
//! own, and by `bess repo refresh --due` (the packaged daily timer), with
//! `bess repo check` warning before the date and failing after it. apt-get
//! and gpgv judge the result; the indices must not change.

mod common;

use common::apt::AptRoot;
use common::server::{Server, add_user};
use common::{DebSpec, Sandbox, have_tool};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const READER: (&str, &str) = ("reader", "reader-password-1");
const DAY: u64 = 86_400;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A repository with one package in both channels, published `days_ago`
/// days back (`SOURCE_DATE_EPOCH`) with the default 30 valid days.
fn published_days_ago(days_ago: u64) -> Sandbox {
    let mut sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    DebSpec::new("app", "1.0-1", "amd64").build(&input);
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    sb.ok(&["repo", "promote", "app=1.0-1"]);
    sb.env = vec![(
        "SOURCE_DATE_EPOCH".into(),
        (now() - days_ago * DAY).to_string(),
    )];
    sb.ok(&["repo", "publish", "--refresh"]);
    sb.env.clear();
    sb
}

fn dist_dir(sb: &Sandbox, channel: &str) -> std::path::PathBuf {
    sb.repo.join("public").join(channel).join("dists/bookworm")
}

fn release(sb: &Sandbox, channel: &str) -> String {
    std::fs::read_to_string(dist_dir(sb, channel).join("Release")).unwrap()
}

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// The Release's checksum lines: which indices, their sizes and hashes.
fn listed_indices(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(' '))
        .map(str::to_string)
        .collect()
}

fn gpgv_accepts(sb: &Sandbox, key: &Path, channel: &str) -> bool {
    let dir = dist_dir(sb, channel);
    let inline = Command::new("gpgv")
        .arg("--keyring")
        .arg(key)
        .arg(dir.join("InRelease"))
        .output()
        .unwrap();
    let detached = Command::new("gpgv")
        .arg("--keyring")
        .arg(key)
        .arg(dir.join("Release.gpg"))
        .arg(dir.join("Release"))
        .output()
        .unwrap();
    inline.status.success() && detached.status.success()
}

fn apt_for(server: &Server, key: &Path) -> AptRoot {
    let apt = AptRoot::new("amd64", "");
    let auth = apt.root.join("etc/apt/auth.conf.d/bess.conf");
    std::fs::write(
        &auth,
        format!(
            "machine http://127.0.0.1:{}/prod login {} password {}\n",
            server.port, READER.0, READER.1
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    apt.add_source("bess", &format!("{}/prod", server.url()), "bookworm", key);
    apt
}

#[test]
fn serve_signs_again_a_release_close_to_its_valid_until() {
    if !["dpkg-deb", "apt-get", "gpgv"].iter().all(|t| have_tool(t)) {
        return;
    }
    let sb = published_days_ago(29);
    add_user(&sb.repo, READER, &["--read", "prod"]);
    let key = sb.path("key.gpg");
    std::fs::write(&key, sb.bess(&["key", "export"]).stdout).unwrap();
    let before = release(&sb, "prod");
    let old_until = field(&before, "Valid-Until").to_string();
    assert!(gpgv_accepts(&sb, &key, "prod"));

    // A day of validity left: apt still takes it as it is (read from the
    // tree, since the server refreshes as soon as it starts).
    let apt = AptRoot::new("amd64", "");
    let tree = sb.repo.join("public/prod");
    apt.add_source(
        "bess",
        &format!("file:{}", tree.display()),
        "bookworm",
        &key,
    );
    apt.update(&[]);
    assert_eq!(apt.versions("app"), ["1.0-1"]);
    let server = Server::start(&sb.repo);
    let deadline = Instant::now() + Duration::from_secs(60);
    while field(&release(&sb, "prod"), "Valid-Until") == old_until {
        assert!(
            Instant::now() < deadline,
            "bess serve did not refresh within a minute"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = release(&sb, "prod");
    let until = httpdate::parse_http_date(&field(&after, "Valid-Until").replace("UTC", "GMT"))
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        until > now() + 29 * DAY,
        "a new 30-day Valid-Until:\n{after}"
    );
    assert_ne!(field(&after, "Date"), field(&before, "Date"));
    assert_eq!(
        listed_indices(&after),
        listed_indices(&before),
        "a refresh must not touch the indices"
    );
    let inline = std::fs::read_to_string(dist_dir(&sb, "prod").join("InRelease")).unwrap();
    assert!(inline.contains(&format!("Valid-Until: {}", field(&after, "Valid-Until"))));
    assert!(gpgv_accepts(&sb, &key, "prod"));
    assert!(gpgv_accepts(&sb, &key, "preprod"));
    let apt = apt_for(&server, &key);
    apt.update(&[]);
    assert_eq!(apt.versions("app"), ["1.0-1"]);

    // The gauge counts from the new date: more than 29 days left.
    let (status, body) = server.get("/metrics", None);
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let left: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("bess_release_valid_seconds "))
        .unwrap_or_else(|| panic!("no bess_release_valid_seconds in\n{text}"))
        .parse()
        .unwrap();
    assert!(left > 29 * DAY as i64, "{left}");
}

#[test]
fn refresh_due_and_check_follow_refresh_before_days() {
    if !have_tool("dpkg-deb") {
        return;
    }
    // Published 25 days back: five days left, within the default ten.
    let sb = published_days_ago(25);
    let report = sb.json(&["repo", "check"]);
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("prod/dists/bookworm/Release expires on"),
        "{report}"
    );
    let before = release(&sb, "prod");

    let report = sb.json(&["repo", "refresh", "--due"]);
    assert_eq!(report["failed"], serde_json::json!([]), "{report}");
    let refreshed = &report["refreshed"];
    let names: Vec<String> = refreshed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}/{}", r["channel"], r["dist"]).replace('"', ""))
        .collect();
    assert_eq!(names, ["preprod/bookworm", "prod/bookworm"]);
    assert!(refreshed[0]["valid_until"].as_u64().unwrap() > now() + 29 * DAY);
    let after = release(&sb, "prod");
    assert_eq!(listed_indices(&after), listed_indices(&before));
    assert_ne!(field(&after, "Valid-Until"), field(&before, "Valid-Until"));
    let report = sb.json(&["repo", "check"]);
    assert_eq!(report["warnings"], serde_json::json!([]), "{report}");
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");

    // Nothing due now: the timer's daily run writes nothing.
    assert_eq!(
        sb.json(&["repo", "refresh", "--due"])["refreshed"],
        serde_json::json!([])
    );
    assert_eq!(release(&sb, "prod"), after);

    // Longer validity with a wider margin: the 30-day Release is due.
    sb.edit_settings(
        "valid-days = 30",
        "valid-days = 60\nrefresh-before-days = 45",
    );
    let again = &sb.json(&["repo", "refresh", "--due"])["refreshed"];
    assert_eq!(again.as_array().unwrap().len(), 2, "{again}");
    assert!(again[0]["valid_until"].as_u64().unwrap() > now() + 59 * DAY);

    // A margin not below valid-days is refused, naming both.
    sb.edit_settings("refresh-before-days = 45", "refresh-before-days = 60");
    let said = sb.fails(&["repo", "refresh", "--due"]);
    assert!(
        said.contains("refresh-before-days = 60") && said.contains("valid-days = 60"),
        "{said}"
    );
}

#[test]
fn check_fails_once_a_release_has_expired() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = published_days_ago(31);
    let out = sb.bess(&["repo", "check"]);
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("prod/dists/bookworm/Release expired on")
            && said.contains("bess repo refresh"),
        "{said}"
    );
    sb.ok(&["repo", "refresh"]);
    sb.ok(&["repo", "check"]);
}

#[test]
fn one_damaged_dist_does_not_keep_the_others_from_being_signed() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = published_days_ago(25);
    let before = release(&sb, "prod");
    // Damage prod: its Packages.xz vanishes from the by-hash store.
    let sha256 = before
        .split("SHA256:")
        .nth(1)
        .unwrap()
        .lines()
        .find(|l| l.ends_with(" main/binary-amd64/Packages.xz"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let stored = sb
        .repo
        .join("public/prod/.dists/bookworm/by-hash/main/binary-amd64/SHA256")
        .join(&sha256);
    std::fs::remove_file(&stored).unwrap_or_else(|e| panic!("{}: {e}", stored.display()));

    let out = sb.bess(&["repo", "refresh", "--due", "--json"]);
    assert!(!out.status.success(), "a failed dist makes the run fail");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["refreshed"][0]["channel"], "preprod", "{report}");
    assert_eq!(report["failed"][0]["channel"], "prod", "{report}");
    let error = report["failed"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("main/binary-amd64/Packages.xz") && error.contains("publish --refresh"),
        "{error}"
    );
    assert_eq!(
        release(&sb, "prod"),
        before,
        "prod still serves its old Release"
    );
}

#[test]
fn valid_days_changed_to_zero_drops_valid_until_at_the_next_refresh() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = published_days_ago(1);
    sb.edit_settings("valid-days = 30", "valid-days = 0");
    let report = sb.json(&["repo", "refresh", "--due"]);
    assert_eq!(report["refreshed"].as_array().unwrap().len(), 2, "{report}");
    assert!(!release(&sb, "prod").contains("Valid-Until"));
    sb.edit_settings("valid-days = 0", "valid-days = 7");
    let report = sb.json(&["repo", "check"]);
    assert!(
        report["warnings"]
            .to_string()
            .contains("has no Valid-Until"),
        "{report}"
    );
    sb.ok(&["repo", "refresh", "--due"]);
    assert!(release(&sb, "prod").contains("Valid-Until"));
}
