//! `bess incoming process` against a drop directory filled by hand: which
//! dist an upload targets, what becomes of taken and refused uploads,
//! `.changes` uploads (bad SHA-256, signatures in and out of the
//! uploaders' keyring), uploads still arriving, and kill -9 at any point.

mod common;

use common::incoming::{Uploader, audit, changes_text, drop_dir, left_over, preprod, sandbox};
use common::{DebSpec, Sandbox, have_tool};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn skip() -> bool {
    !have_tool("dpkg-deb")
}

fn process(sb: &Sandbox) -> serde_json::Value {
    sb.json(&["incoming", "process"])
}

fn row(package: &str, version: &str, dist: &str) -> (String, String, String) {
    (package.into(), version.into(), dist.into())
}

#[test]
fn debs_go_to_their_dist_and_a_corrupt_one_to_rejected_with_the_cli_text() {
    if skip() {
        return;
    }
    let sb = sandbox(None, 0);
    let drop = drop_dir(&sb);
    std::fs::create_dir(drop.join("jammy")).unwrap();
    DebSpec::new("everywhere", "1.0", "amd64").build(&drop);
    DebSpec::new("onlyjammy", "1.0", "all").build(&drop.join("jammy"));
    std::fs::write(
        drop.join("broken_1.0_amd64.deb"),
        b"PK\x03\x04 a zip file, not a package",
    )
    .unwrap();
    std::fs::write(drop.join("notes.txt"), b"not an upload").unwrap();

    let outcome = process(&sb);
    assert_eq!(outcome["taken"].as_array().unwrap().len(), 2, "{outcome}");
    let mut placed = preprod(&sb);
    placed.sort();
    assert_eq!(
        placed,
        [
            row("everywhere", "1.0", "bookworm"),
            row("everywhere", "1.0", "jammy"),
            row("onlyjammy", "1.0", "jammy"),
        ]
    );
    // The reason is what `bess repo ingest` says of the same file.
    let rejected = drop.join("rejected");
    let reason = std::fs::read_to_string(rejected.join("broken_1.0_amd64.deb.reason")).unwrap();
    let copy = sb.path("broken_1.0_amd64.deb");
    std::fs::copy(rejected.join("broken_1.0_amd64.deb"), &copy).unwrap();
    let cli = sb.fails(&["repo", "ingest", copy.to_str().unwrap()]);
    let cli = cli.trim_end().strip_prefix("bess: error: ").unwrap();
    let original = drop.join("broken_1.0_amd64.deb");
    assert_eq!(
        reason.trim_end(),
        cli.replace(copy.to_str().unwrap(), original.to_str().unwrap())
    );
    assert_eq!(
        outcome["rejected"][0]["reason"].as_str().unwrap(),
        reason.trim_end()
    );
    // Taken files are gone; what is no upload stays; nothing stays claimed.
    assert_eq!(left_over(&drop), [drop.join("notes.txt")]);
    let ingests = audit(&sb, "ingest");
    assert_eq!(ingests.len(), 2);
    assert!(
        ingests
            .iter()
            .all(|e| e["actor"] == "incoming" && e["origin"] == "incoming")
    );
    let rejections = audit(&sb, "incoming.reject");
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0]["actor"], "incoming");
    // Published: the index of jammy lists both packages.
    let packages = sb
        .repo
        .join("public/preprod/dists/jammy/main/binary-amd64/Packages.xz");
    let index = common::read_xz(&packages);
    assert!(index.contains("Package: onlyjammy") && index.contains("Package: everywhere"));
    // Nothing more to do: a second pass takes nothing, records nothing.
    let again = process(&sb);
    assert!(again["taken"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(audit(&sb, "ingest").len(), 2);
}

#[test]
fn keep_processed_moves_taken_uploads_and_an_unknown_dist_is_refused() {
    if skip() {
        return;
    }
    let sb = sandbox(None, 0);
    sb.edit_settings("keep-processed = false", "keep-processed = true");
    let drop = drop_dir(&sb);
    DebSpec::new("kept", "1.0", "amd64").build(&drop);
    DebSpec::new("lost", "1.0", "amd64").build(&drop.join("sid"));
    let outcome = process(&sb);
    assert_eq!(outcome["taken"][0]["upload"], "kept_1.0_amd64.deb");
    assert!(drop.join("processed/kept_1.0_amd64.deb").is_file());
    let reason = std::fs::read_to_string(drop.join("rejected/lost_1.0_amd64.deb.reason")).unwrap();
    assert!(reason.starts_with("unknown dist `sid`"), "{reason}");
    assert_eq!(preprod(&sb).len(), 2, "kept in bookworm and jammy only");
}

#[test]
fn a_changes_upload_is_taken_whole_or_not_at_all() {
    if skip() {
        return;
    }
    let sb = sandbox(None, 0);
    let drop = drop_dir(&sb);
    let bookworm = drop.join("bookworm");
    // Complete and right: its .deb and .buildinfo go together.
    let deb = DebSpec::new("hello", "1.0-1", "amd64").build(&bookworm);
    let info = bookworm.join("hello_1.0-1_amd64.buildinfo");
    std::fs::write(&info, "Format: 1.0\nSource: hello\n").unwrap();
    std::fs::write(
        bookworm.join("hello_1.0-1_amd64.changes"),
        changes_text(&[&deb, &info]),
    )
    .unwrap();
    // A listed SHA-256 that does not match: nothing of it is ingested.
    let other = DebSpec::new("damaged", "1.0-1", "amd64").build(&drop);
    let text = changes_text(&[&other]);
    std::fs::write(drop.join("damaged.changes"), text).unwrap();
    let mut bytes = std::fs::read(&other).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    std::fs::write(&other, bytes).unwrap();

    let outcome = process(&sb);
    assert_eq!(
        preprod(&sb),
        [row("hello", "1.0-1", "bookworm")],
        "{outcome}"
    );
    let taken = &outcome["taken"][0];
    assert_eq!(taken["upload"], "bookworm/hello_1.0-1_amd64.changes");
    assert_eq!(taken["files"].as_array().unwrap().len(), 3);
    let rejected = drop.join("rejected");
    let reason = std::fs::read_to_string(rejected.join("damaged.changes.reason")).unwrap();
    assert!(
        reason.contains("damaged_1.0-1_amd64.deb has SHA-256")
            && reason.contains("upload both again"),
        "{reason}"
    );
    assert_eq!(
        std::fs::read_to_string(rejected.join("damaged_1.0-1_amd64.deb.reason")).unwrap(),
        reason
    );
    assert!(rejected.join("damaged_1.0-1_amd64.deb").is_file());
    assert!(left_over(&drop).is_empty(), "{:?}", left_over(&drop));
    assert_eq!(audit(&sb, "ingest").len(), 1);
}

#[test]
fn a_signature_outside_the_uploaders_keyring_is_rejected() {
    if skip() || !have_tool("gpg") {
        return;
    }
    let sb = sandbox(None, 0);
    let drop = drop_dir(&sb);
    let (trusted, stranger) = (Uploader::new("trusted"), Uploader::new("stranger"));
    let keyring = sb.repo.join("uploaders.gpg");
    std::fs::write(&keyring, trusted.public_key()).unwrap();
    sb.edit_settings(
        "# uploaders-keyring = \"/etc/bess/uploaders.gpg\"",
        "uploaders-keyring = \"uploaders.gpg\"",
    );
    std::fs::create_dir(drop.join("bookworm")).unwrap();
    upload_in(&drop.join("bookworm"), "bytrusted", &|t| {
        trusted.clearsign(t)
    });
    upload_in(&drop.join("bookworm"), "bystranger", &|t| {
        stranger.clearsign(t)
    });
    upload_in(&drop.join("bookworm"), "unsigned", &|t| t.to_string());

    let outcome = process(&sb);
    assert_eq!(
        preprod(&sb),
        [row("bytrusted", "1.0", "bookworm")],
        "{outcome}"
    );
    let reason = |name: &str| {
        std::fs::read_to_string(drop.join(format!("rejected/{name}.changes.reason"))).unwrap()
    };
    assert!(
        reason("bystranger").contains("no signature by a key of"),
        "{}",
        reason("bystranger")
    );
    assert!(
        reason("unsigned").contains("it is not signed"),
        "{}",
        reason("unsigned")
    );
    assert!(drop.join("rejected/bystranger_1.0_amd64.deb").is_file());
    assert_eq!(audit(&sb, "ingest").len(), 1);
    assert_eq!(audit(&sb, "incoming.reject").len(), 2);
}

/// Drops `<name>_1.0_amd64.deb` and `<name>.changes` (through `sign`) in `dir`.
fn upload_in(dir: &Path, name: &str, sign: &dyn Fn(&str) -> String) {
    let deb = DebSpec::new(name, "1.0", "amd64").build(dir);
    let text = sign(&changes_text(&[&deb]));
    std::fs::write(dir.join(format!("{name}.changes")), text).unwrap();
}

#[test]
fn uploads_still_arriving_wait_and_nothing_of_them_is_touched() {
    if skip() {
        return;
    }
    let sb = sandbox(None, 0);
    let drop = drop_dir(&sb);
    // A .changes whose second file has not arrived: its .deb waits too.
    let deb = DebSpec::new("early", "1.0", "amd64").build(&drop);
    let late = sb.path("late_1.0_amd64.deb");
    let late_built = DebSpec::new("late", "1.0", "amd64").build(&sb.path("build"));
    std::fs::rename(&late_built, &late).unwrap();
    std::fs::write(drop.join("pair.changes"), changes_text(&[&deb, &late])).unwrap();
    // A .deb cut short, as scp leaves it mid-copy.
    let whole =
        std::fs::read(DebSpec::new("slow", "1.0", "amd64").build(&sb.path("build"))).unwrap();
    std::fs::write(drop.join("slow_1.0_amd64.deb"), &whole[..whole.len() / 2]).unwrap();

    let outcome = process(&sb);
    assert!(outcome["taken"].as_array().unwrap().is_empty(), "{outcome}");
    assert!(
        outcome["rejected"].as_array().unwrap().is_empty(),
        "{outcome}"
    );
    let waiting = outcome["waiting"].to_string();
    assert!(
        waiting.contains("waiting for late_1.0_amd64.deb"),
        "{waiting}"
    );
    assert!(waiting.contains("incomplete: ar member"), "{waiting}");
    assert!(deb.is_file() && drop.join("pair.changes").is_file());

    // The rest arrives: both are taken.
    std::fs::copy(&late, drop.join("late_1.0_amd64.deb")).unwrap();
    std::fs::write(drop.join("slow_1.0_amd64.deb"), &whole).unwrap();
    let outcome = process(&sb);
    assert_eq!(outcome["taken"].as_array().unwrap().len(), 2, "{outcome}");
    assert_eq!(preprod(&sb).len(), 6);

    // With a quiet period, a file changed just now waits for it.
    sb.edit_settings("quiet-period-secs = 0", "quiet-period-secs = 30");
    DebSpec::new("fresh", "1.0", "amd64").build(&drop);
    let outcome = process(&sb);
    assert!(outcome["taken"].as_array().unwrap().is_empty(), "{outcome}");
    assert!(
        outcome["waiting"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("taken once unchanged for 30 s")
    );
}

/// kill -9 of `bess incoming process` at points spread over a whole pass,
/// round after round; a final pass finishes whatever was left. Every
/// package is then placed once, ingested once in the log, every refused
/// upload rejected once, and `bess repo check` passes.
#[test]
fn kill_9_at_any_point_loses_nothing_and_ingests_nothing_twice() {
    if skip() {
        return;
    }
    let sb = sandbox(None, 0);
    let drop = drop_dir(&sb);
    let rounds = 16u32;
    let mut seed = 0x2545_f491_u64;
    let full = (0..2)
        .map(|r| timed_pass(&sb, &drop, 100 + r))
        .min()
        .unwrap();
    let mut killed_mid_way = 0;
    for round in 0..rounds {
        drop_round(&sb, &drop, round);
        // xorshift: kill points spread over 0..1.2 of a pass, reproducibly.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = full.mul_f64(1.2 * (seed % 1000) as f64 / 1000.0);
        killed_mid_way += u32::from(process_and_kill(&sb, at));
    }
    assert!(
        killed_mid_way >= rounds / 2,
        "only {killed_mid_way} of {rounds} passes were killed mid-way"
    );
    let last = process(&sb);
    assert!(last["failed"].as_array().unwrap().is_empty(), "{last}");

    let all_rounds: Vec<u32> = (0..rounds).chain([100, 101]).collect();
    let placed = preprod(&sb);
    let ingests = audit(&sb, "ingest");
    for round in &all_rounds {
        for package in [format!("plain{round}"), format!("listed{round}")] {
            let count = placed.iter().filter(|(p, _, _)| *p == package).count();
            assert_eq!(
                count, 2,
                "{package} placed in {count} dists, not bookworm and jammy"
            );
            let logged = ingests
                .iter()
                .filter(|e| e["package"] == package.as_str())
                .count();
            assert_eq!(logged, 1, "{package} ingested {logged} times in the log");
        }
        let rejected = drop.join(format!("rejected/corrupt{round}.deb"));
        assert!(
            rejected.is_file() && rejected.with_extension("deb.reason").is_file(),
            "{}",
            rejected.display()
        );
    }
    let rejections = audit(&sb, "incoming.reject");
    assert!(
        rejections
            .iter()
            .all(|e| e["detail"].to_string().contains("corrupt")),
        "only the corrupt uploads are rejected: {rejections:?}"
    );
    assert_eq!(
        rejections.len(),
        all_rounds.len(),
        "one rejection entry per corrupt upload"
    );
    assert!(left_over(&drop).is_empty(), "{:?}", left_over(&drop));
    sb.ok(&["repo", "check"]);
}

/// One round's uploads: a plain .deb, a .changes with its .deb, a corrupt .deb.
fn drop_round(sb: &Sandbox, drop: &Path, round: u32) {
    let build = sb.path(&format!("build{round}"));
    DebSpec::new(&format!("plain{round}"), "1.0", "amd64").build(&build);
    let listed = DebSpec::new(&format!("listed{round}"), "1.0", "all").build(&build);
    let changes = build.join(format!("listed{round}.changes"));
    std::fs::write(&changes, changes_text(&[&listed])).unwrap();
    std::fs::write(
        build.join(format!("corrupt{round}.deb")),
        b"garbage, not a package",
    )
    .unwrap();
    for entry in std::fs::read_dir(&build).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, drop.join(path.file_name().unwrap())).unwrap();
    }
}

/// How long an uninterrupted pass over one round takes.
fn timed_pass(sb: &Sandbox, drop: &Path, round: u32) -> Duration {
    drop_round(sb, drop, round);
    let start = Instant::now();
    process(sb);
    start.elapsed()
}

/// Starts a pass and kills it after `delay`; whether it was still running.
fn process_and_kill(sb: &Sandbox, delay: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", &sb.repo)
        .args(["incoming", "process"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

/// `--settle` (what bess-incoming.service runs when a file is closed):
/// a file not yet quiet is waited for, then taken, in the same run.
#[test]
fn settle_waits_out_the_quiet_period() {
    if skip() {
        return;
    }
    let sb = sandbox(None, 2);
    let drop = drop_dir(&sb);
    let deb = DebSpec::new("settled", "1.0", "amd64").build(&drop);
    let written = std::fs::metadata(&deb).unwrap().modified().unwrap();
    let outcome = sb.json(&["incoming", "process", "--settle"]);
    assert_eq!(
        outcome["taken"][0]["upload"], "settled_1.0_amd64.deb",
        "{outcome}"
    );
    assert!(
        outcome["waiting"].as_array().unwrap().is_empty(),
        "{outcome}"
    );
    let since = std::time::SystemTime::now()
        .duration_since(written)
        .unwrap();
    assert!(
        since >= Duration::from_secs(2),
        "taken {since:?} after it was written"
    );
    assert_eq!(preprod(&sb).len(), 2);
}
