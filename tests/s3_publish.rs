//! Publishing to S3-compatible storage, on a real SeaweedFS cluster
//! (`tests/common/seaweed.rs`): every referenced pool object lands once
//! under `objects/<sha256>`, the dists match the local tree byte for byte,
//! a publish after one new package sends little, a lost volume server
//! leaves the local publication intact and the next publish completes, and
//! a publish killed part-way is resumed with only what was missing. The
//! files a frontend reads (`bess.json`, `.bess/users.json`, each channel's
//! `boxes.json`) are there with the right contents, a user change reaches
//! the store without a publish, gc deletes an unreferenced object only
//! after its grace period, and `layout = "tree"` makes the apt and box
//! paths by server-side copies. And, without a cluster, secrets are kept
//! out of bess.toml and private.
//!
//! One cluster serves every scenario in turn (a bucket each): starting
//! one costs seconds, and CI machines have two cores.

mod common;

use common::seaweed::{ACCESS_KEY, SECRET_KEY, Seaweed, held_objects};
use common::{DebSpec, Sandbox, have_tool};
use object_store::ObjectStoreExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use sha2::Digest;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn publishing_to_a_seaweedfs_cluster() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let Some(mut cluster) = Seaweed::start("apt") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = std::time::Instant::now();
    full_then_one_package(&cluster, &runtime);
    eprintln!(
        "{:?}: full and one-package publishes checked",
        start.elapsed()
    );
    lost_volume_server(&mut cluster, &runtime);
    eprintln!("{:?}: lost volume server checked", start.elapsed());
    killed_publish_resumes(&cluster, &runtime);
    eprintln!("{:?}: killed publish checked", start.elapsed());
    manifest_and_users(&cluster, &runtime);
    eprintln!("{:?}: bess.json and users checked", start.elapsed());
    boxes_reach_the_store(&cluster, &runtime);
    eprintln!("{:?}: boxes checked", start.elapsed());
    gc_waits_for_the_grace_period(&cluster, &runtime);
    eprintln!("{:?}: gc checked", start.elapsed());
    tree_layout_copies(&cluster, &runtime);
    eprintln!("{:?}: tree layout checked", start.elapsed());
    lost_ledger_is_rebuilt_by_listing(&cluster, &runtime);
    eprintln!("{:?}: lost ledger checked", start.elapsed());
}

/// The ledger deleted (a primary restored on another host): the next
/// publish lists the store, records the objects and by-hash files it
/// holds, and sends none of them again. Then an object the store lost is
/// found by `bess repo check`, and sent again by following its advice.
fn lost_ledger_is_rebuilt_by_listing(cluster: &Seaweed, runtime: &tokio::runtime::Runtime) {
    cluster.create_bucket("relisted");
    let sb = repository_with_target_in(cluster, "relisted", "relisted");
    let debs = build_debs(&sb, "kept", 12, 8192);
    ingest(&sb, &debs);
    let first = publish_json(&sb);
    assert_eq!(first["targets"][0]["objects_uploaded"], 12, "{first}");
    for file in ["cluster.db", "cluster.db-wal", "cluster.db-shm"] {
        let _ = std::fs::remove_file(sb.repo.join("targets").join(file));
    }
    let again = publish_json(&sb);
    let report = &again["targets"][0];
    assert!(report["error"].is_null(), "{again}");
    assert_eq!(report["objects_uploaded"], 0, "{again}");
    let count = |name: &str| report[name].as_u64().unwrap();
    assert!(
        count("keys_adopted") > 12,
        "objects and by-hash files: {again}"
    );
    // Only keys not named by their bytes went up again (Release files,
    // named indices, key.gpg, bess.json, users).
    assert_eq!(
        count("puts"),
        count("files_uploaded") + count("files_copied"),
        "{again}"
    );
    eprintln!("after the ledger was lost: {report}");
    let store = client(cluster, "relisted");
    assert_store_mirrors(&sb, &store, "relisted", &debs, runtime);

    // An object lost by the store (a lifecycle rule, a bucket restored
    // from an old copy): `bess repo check` finds it and says what to do,
    // and doing it sends that object alone.
    let checked = sb.json(&["repo", "check"]);
    assert!(
        checked["problems"].as_array().unwrap().is_empty(),
        "{checked}"
    );
    assert!(
        checked
            .to_string()
            .contains("publish target `cluster`: all"),
        "{checked}"
    );
    let sha = hex::encode(sha2::Sha256::digest(std::fs::read(&debs[3]).unwrap()));
    let lost = format!("relisted/objects/{sha}");
    runtime
        .block_on(store.delete(&Key::from(lost.as_str())))
        .unwrap();
    let damaged = sb.bess(&["repo", "check"]);
    let said = String::from_utf8_lossy(&damaged.stdout);
    assert_eq!(damaged.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&lost) && said.contains("cluster.db and run `bess repo publish`"),
        "{said}"
    );
    std::fs::remove_file(sb.repo.join("targets/cluster.db")).unwrap();
    let repaired = publish_json(&sb);
    assert_eq!(repaired["targets"][0]["objects_uploaded"], 1, "{repaired}");
    assert_store_mirrors(&sb, &store, "relisted", &debs, runtime);
    sb.ok(&["repo", "check"]);
}

/// A full publish, checked key by key, then a publish of one more package.
fn full_then_one_package(cluster: &Seaweed, runtime: &tokio::runtime::Runtime) {
    let sb = repository_with_target(cluster, "full");
    let mut debs = build_debs(&sb, "pkg", 20, 4096);
    // Above the 1 MiB multipart threshold the test sets: sent in parts.
    debs.push(
        DebSpec::new("large", "1.0", "amd64")
            .compression("none")
            .payload(&noise(3 << 20))
            .build(&sb.path("debs")),
    );
    ingest(&sb, &debs);
    let full = publish_json(&sb);
    let report = &full["targets"][0];
    assert!(report["error"].is_null(), "{full}\n{}", cluster.logs());
    assert_eq!(report["objects_uploaded"], 21, "{full}");
    eprintln!("full publish of 21 packages: {report}");
    let store = client(cluster, &cluster.bucket);
    assert_store_mirrors(&sb, &store, "full", &debs, runtime);

    let one = build_debs(&sb, "late", 1, 4096);
    ingest(&sb, &one);
    let again = publish_json(&sb);
    let report = &again["targets"][0];
    eprintln!("publish of one more package: {report}");
    assert!(report["error"].is_null(), "{again}");
    assert_eq!(report["objects_uploaded"], 1, "{again}");
    // Per changed dist (preprod/bookworm, preprod/jammy): new Packages.xz
    // and .gz bytes (2 PUTs), their other by-hash and named keys as
    // server-side copies (4), Release, Release.gpg, InRelease (3), and the
    // by-hash files of a generation no longer kept; plus the object.
    let requests = report["requests"].as_u64().unwrap();
    assert!(
        requests < 50,
        "one package took {requests} requests: {again}"
    );
    debs.extend(one);
    assert_store_mirrors(&sb, &store, "full", &debs, runtime);
    let idle = publish_json(&sb);
    assert_eq!(idle["targets"][0]["requests"], 0, "nothing changed: {idle}");
    // Release files signed again with a later Valid-Until reach the store.
    let refreshed = sb.json(&["repo", "refresh"]);
    let report = &refreshed["targets"][0];
    assert!(report["error"].is_null(), "{refreshed}");
    assert!(
        report["files_uploaded"].as_u64().unwrap() > 0,
        "{refreshed}"
    );
    assert_store_mirrors(&sb, &store, "full", &debs, runtime);
    // A new key: key.gpg and every Release signed by both reach the store.
    sb.ok(&["key", "generate"]);
    assert_store_mirrors(&sb, &store, "full", &debs, runtime);
}

/// One of the two volume servers dies: the local publish completes, the
/// target reports its error and the command fails; once the server is
/// back, `bess serve` completes the upload without a publish.
fn lost_volume_server(cluster: &mut Seaweed, runtime: &tokio::runtime::Runtime) {
    cluster.create_bucket("degraded");
    let sb = repository_with_target_in(cluster, "degraded", "degraded");
    publish_json(&sb); // the empty dists and key.gpg
    let debs = build_debs(&sb, "vol", 1, 4096);
    sb.ok(&[
        "repo",
        "ingest",
        "--no-publish",
        "--dist",
        "bookworm",
        debs[0].to_str().unwrap(),
    ]);
    cluster.kill_volume(1);
    let out = sb.bess(&["repo", "publish", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("with a volume server down: {text}{stderr}");
    if out.status.success() {
        // SeaweedFS still took the writes: the publish is complete.
        assert!(text.contains("\"error\":null"), "{text}");
    } else {
        assert!(
            stderr.contains("publish target `cluster`")
                && stderr.contains("next `bess repo publish`"),
            "{stderr}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&text).expect("JSON despite the failure");
        assert_eq!(
            json["published"][0]["written"], true,
            "the local publish stands: {json}"
        );
    }
    let local = sb
        .repo
        .join("public/preprod/dists/bookworm/main/binary-amd64/Packages.xz");
    assert!(
        common::read_xz(&local).contains("Package: vol0"),
        "published locally"
    );
    cluster.start_volume(1);
    cluster.wait_for_replicated_writes();
    // No publish: `bess serve`'s refresher brings the target up to date
    // in its first round, at start.
    let store = client(cluster, "degraded");
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let server = common::server::Server::start_with_env(&sb.repo, &env);
    let inrelease = "degraded/preprod/dists/bookworm/InRelease";
    let local = std::fs::read(sb.repo.join("public/preprod/dists/bookworm/InRelease")).unwrap();
    let started = std::time::Instant::now();
    while get_bytes(&store, runtime, inrelease).as_ref() != Some(&local) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "bess serve did not bring the target up to date\n{}",
            cluster.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(server);
    let report = publish_json(&sb);
    let nothing_left = &report["targets"][0];
    assert!(nothing_left["error"].is_null(), "{report}");
    assert_eq!(
        nothing_left["puts"], 0,
        "the refresher sent it all: {report}"
    );
    assert_store_mirrors(&sb, &store, "degraded", &debs, runtime);
}

/// `bess repo publish` killed (SIGKILL) part-way through its uploads: the
/// next publish sends exactly the objects the ledger lacks.
fn killed_publish_resumes(cluster: &Seaweed, runtime: &tokio::runtime::Runtime) {
    cluster.create_bucket("killed");
    let sb = repository_with_target_in(cluster, "killed", "killed");
    // Enough that 32 uploads in flight, recorded every 50 ms, are still
    // running when 10 are recorded.
    const OBJECTS: u64 = 240;
    let debs = build_debs(&sb, "many", OBJECTS as usize, 32 << 10);
    ingest(&sb, &debs);
    let mut publish = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", &sb.repo)
        .envs(sb.env.iter().map(|(k, v)| (k, v)))
        .args(["repo", "publish", "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ledger = sb.repo.join("targets/cluster.db");
    while held_objects(&ledger) < 10 {
        assert!(
            publish.try_wait().unwrap().is_none(),
            "the publish ended before 10 objects were acknowledged"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    publish.kill().unwrap();
    publish.wait().unwrap();
    let held = held_objects(&ledger);
    assert!(
        held < OBJECTS,
        "the publish finished before it was killed ({held} held)"
    );
    let resumed = publish_json(&sb);
    let report = &resumed["targets"][0];
    assert!(report["error"].is_null(), "{resumed}");
    assert_eq!(report["objects_uploaded"], OBJECTS - held, "{resumed}");
    // One PUT per key sent: the missing objects, then the dists files the
    // killed run never reached (uploads and server-side copies), nothing more.
    let count = |name: &str| report[name].as_u64().unwrap();
    assert_eq!(
        count("puts"),
        OBJECTS - held + count("files_uploaded") + count("files_copied"),
        "{resumed}"
    );
    eprintln!("after a kill with {held} of {OBJECTS} objects held: {report}");
    let store = client(cluster, "killed");
    assert_store_mirrors(&sb, &store, "killed", &debs, runtime);
}

/// A repository whose bess.toml names a target on the cluster's bucket.
fn repository_with_target(cluster: &Seaweed, prefix: &str) -> Sandbox {
    repository_with_target_in(cluster, &cluster.bucket.clone(), prefix)
}

fn repository_with_target_in(cluster: &Seaweed, bucket: &str, prefix: &str) -> Sandbox {
    repository_with(cluster, bucket, prefix, "")
}

/// A repository whose target has `extra` lines in its table.
fn repository_with(cluster: &Seaweed, bucket: &str, prefix: &str, extra: &str) -> Sandbox {
    let mut sb = Sandbox::new("bookworm,jammy", "amd64");
    let settings = sb.repo.join("bess.toml");
    let mut text = std::fs::read_to_string(&settings).unwrap();
    text.push_str(&format!(
        "\n[[publish.target]]\ntype = \"s3\"\nname = \"cluster\"\nendpoint = \"{}\"\n\
         bucket = \"{bucket}\"\nprefix = \"{prefix}\"\nretry-timeout-secs = 3\n\
         request-timeout-secs = 3\n\
         multipart-threshold-mib = 1\n{extra}",
        cluster.endpoint()
    ));
    std::fs::write(&settings, text).unwrap();
    sb.env.push(("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()));
    sb.env
        .push(("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()));
    sb
}

/// `count` packages named `<name><i>`, each with `size` bytes of payload.
fn build_debs(sb: &Sandbox, name: &str, count: usize, size: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            DebSpec::new(&format!("{name}{i}"), "1.0", "amd64")
                .payload(&noise(size + i))
                .build(&sb.path("debs"))
        })
        .collect()
}

/// Ingests without publishing, so that the publish that follows reports
/// what its targets received.
fn ingest(sb: &Sandbox, debs: &[PathBuf]) {
    let mut args = vec!["repo", "ingest", "--no-publish"];
    args.extend(debs.iter().map(|d| d.to_str().unwrap()));
    sb.ok(&args);
}

fn publish_json(sb: &Sandbox) -> serde_json::Value {
    sb.json(&["repo", "publish"])
}

/// Text that compresses poorly, different for each length.
fn noise(len: usize) -> String {
    let mut state = len as u64 | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'!' + (state % 90) as u8)
        })
        .collect()
}

fn client(cluster: &Seaweed, bucket: &str) -> AmazonS3 {
    // reqwest is built without a TLS provider of its own (as in bess).
    let _ = rustls::crypto::ring::default_provider().install_default();
    AmazonS3Builder::new()
        .with_endpoint(cluster.endpoint())
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .with_allow_http(true)
        .build()
        .unwrap()
}

/// Every package at `objects/<sha256>` with its bytes, every local dists
/// file at the same key with the same bytes, and `key.gpg`.
fn assert_store_mirrors(
    sb: &Sandbox,
    store: &AmazonS3,
    prefix: &str,
    debs: &[PathBuf],
    runtime: &tokio::runtime::Runtime,
) {
    let get = |key: String| -> Vec<u8> {
        runtime.block_on(async {
            let found = store.get(&Key::from(key.as_str())).await;
            let found = found.unwrap_or_else(|e| panic!("GET {key}: {e}"));
            found.bytes().await.unwrap().to_vec()
        })
    };
    for deb in debs {
        let bytes = std::fs::read(deb).unwrap();
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        assert!(
            get(format!("{prefix}/objects/{sha}")) == bytes,
            "{}",
            deb.display()
        );
    }
    for channel in ["preprod", "prod"] {
        for dist in ["bookworm", "jammy"] {
            let dir = sb
                .repo
                .join("public")
                .join(channel)
                .join("dists")
                .join(dist);
            for (rel, path) in files_under(&dir) {
                let key = format!("{prefix}/{channel}/dists/{dist}/{rel}");
                assert!(get(key.clone()) == std::fs::read(&path).unwrap(), "{key}");
            }
        }
    }
    let out = sb.bess(&["key", "export"]);
    assert_eq!(get(format!("{prefix}/key.gpg")), out.stdout);
}

/// Files under a published dist (through its by-hash links), by relative path.
fn files_under(dir: &Path) -> Vec<(String, PathBuf)> {
    walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, e.into_path())
        })
        .collect()
}

/// How many pool objects the target's ledger says the store holds.
/// Secrets in bess.toml are refused; a credentials file others may read
/// fails the target, not the local publish, before any request is sent.
#[test]
fn credentials_stay_out_of_bess_toml_and_private() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let settings = sb.repo.join("bess.toml");
    let plain = std::fs::read_to_string(&settings).unwrap();
    let target = "\n[[publish.target]]\ntype = \"s3\"\nname = \"offsite\"\n\
                  endpoint = \"http://127.0.0.1:9\"\nbucket = \"apt\"\n";
    std::fs::write(&settings, format!("{plain}{target}secret-key = \"x\"\n")).unwrap();
    let refused = sb.fails(&["repo", "list"]);
    assert!(
        refused.contains("bess.toml")
            && refused.contains("`secret-key` is refused")
            && refused.contains("/etc/bess/s3-offsite.credentials"),
        "{refused}"
    );

    let credentials = sb.path("s3-offsite.credentials");
    std::fs::write(
        &credentials,
        "AWS_ACCESS_KEY_ID = a\nAWS_SECRET_ACCESS_KEY = b\n",
    )
    .unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file = format!("credentials-file = \"{}\"\n", credentials.display());
    std::fs::write(&settings, format!("{plain}{target}{file}")).unwrap();
    let deb = DebSpec::new("hello", "1.0", "amd64").build(&sb.path("debs"));
    sb.ok(&["repo", "ingest", "--no-publish", deb.to_str().unwrap()]);
    let out = sb.bess(&["repo", "publish", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("chmod 600 {}", credentials.display())),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["targets"][0]["requests"], 0, "{json}");
    assert_eq!(json["published"][0]["written"], true, "{json}");
}

/// The bytes at `key`, or `None` when the store has no such key.
fn get_bytes(store: &AmazonS3, runtime: &tokio::runtime::Runtime, key: &str) -> Option<Vec<u8>> {
    runtime.block_on(async {
        match store.get(&Key::from(key)).await {
            Ok(found) => Some(found.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("GET {key}: {e}"),
        }
    })
}

fn get_json(store: &AmazonS3, runtime: &tokio::runtime::Runtime, key: &str) -> serde_json::Value {
    let bytes = get_bytes(store, runtime, key).unwrap_or_else(|| panic!("{key} is missing"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// `bess user …` with the password on standard input; its stdout and stderr.
fn user_command(sb: &Sandbox, args: &[&str], password: &str) -> String {
    let mut all = vec!["user"];
    all.extend_from_slice(args);
    all.push("--password-stdin");
    let out = sb.bess_with_input(&all, password);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "bess user {args:?}: {text}");
    text
}

const ALICE_PASSWORD: &str = "alice-password-0123";
const BOB_PASSWORD: &str = "bob-password-4567";

/// `bess.json` names the channels, dists, components and architectures;
/// `.bess/users.json` holds every argon2 user and no password; a user
/// change reaches the store without a publish, and a hash of another kind
/// is left out with a warning.
fn manifest_and_users(cluster: &Seaweed, runtime: &tokio::runtime::Runtime) {
    cluster.create_bucket("extras");
    let mut sb = repository_with_target_in(cluster, "extras", "extras");
    user_command(&sb, &["add", "alice", "--read", "prod"], ALICE_PASSWORD);
    publish_json(&sb);
    let store = client(cluster, "extras");
    let manifest = get_json(&store, runtime, "extras/bess.json");
    assert_eq!(manifest["format"], 1, "{manifest}");
    assert_eq!(manifest["channels"], serde_json::json!(["preprod", "prod"]));
    assert_eq!(manifest["dists"], serde_json::json!(["bookworm", "jammy"]));
    assert_eq!(manifest["archs"], serde_json::json!(["amd64"]));
    assert_eq!(manifest["components"], serde_json::json!(["main"]));
    let users = get_json(&store, runtime, "extras/.bess/users.json");
    assert_eq!(users["users"][0]["name"], "alice", "{users}");
    assert_eq!(users["users"][0]["read"], serde_json::json!(["prod"]));

    // A target that fails (no credentials): the user is added all the
    // same, with a warning.
    let credentials = std::mem::take(&mut sb.env);
    let said = user_command(&sb, &["add", "carol", "--read", "prod"], BOB_PASSWORD);
    sb.env = credentials;
    assert!(
        said.contains("warning: publish target `cluster`")
            && said.contains("the next `bess repo publish` sends it")
            && !said.contains("$argon2"),
        "{said}"
    );
    sb.ok(&["user", "remove", "carol"]);

    // No publish from here on: each user command puts the file itself.
    let said = user_command(&sb, &["add", "bob", "--upload", "preprod"], BOB_PASSWORD);
    let users = get_json(&store, runtime, "extras/.bess/users.json");
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"], "{users}");
    let old_hash = users["users"][1]["password_hash"].clone();
    assert!(!said.contains("$argon2"), "a hash was printed: {said}");
    user_command(&sb, &["passwd", "bob"], "bob-new-password-89");
    let users = get_json(&store, runtime, "extras/.bess/users.json");
    assert_ne!(users["users"][1]["password_hash"], old_hash, "{users}");
    sb.ok(&["user", "remove", "alice"]);
    let text =
        String::from_utf8(get_bytes(&store, runtime, "extras/.bess/users.json").unwrap()).unwrap();
    let users: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(users["users"].as_array().unwrap().len(), 1, "{users}");
    for user in users["users"].as_array().unwrap() {
        let hash = user["password_hash"].as_str().unwrap();
        assert!(hash.starts_with("$argon2"), "{hash}");
    }
    for password in [ALICE_PASSWORD, BOB_PASSWORD, "bob-new-password-89"] {
        assert!(!text.contains(password), "a password in users.json");
    }

    // A hash of another kind (written by hand into the catalog).
    let catalog = rusqlite::Connection::open(sb.repo.join("catalog/catalog.db")).unwrap();
    catalog
        .execute(
            "UPDATE users SET password_hash = '$2b$12$notargon' WHERE name = 'bob'",
            [],
        )
        .unwrap();
    drop(catalog);
    let out = sb.bess(&["repo", "publish", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("user `bob`") && stderr.contains("bess user passwd bob"),
        "{stderr}"
    );
    assert!(!stderr.contains("$2b$"), "a hash was printed: {stderr}");
    let users = get_json(&store, runtime, "extras/.bess/users.json");
    assert_eq!(users["users"], serde_json::json!([]), "{users}");
    // Nothing changed since: nothing is sent.
    let idle = publish_json(&sb);
    assert_eq!(idle["targets"][0]["requests"], 0, "{idle}");
}

/// A box of `size` bytes of noise (above the 1 MiB threshold the tests
/// set: sent in parts), built with the real `tar`.
fn noisy_box(sb: &Sandbox, file: &str, size: usize) -> PathBuf {
    common::vagrant::box_of_image(sb, file, "libvirt", noise(size).as_bytes())
}

fn add_box(sb: &Sandbox, file: &Path) {
    sb.ok(&[
        "box",
        "add",
        "acme/base",
        "1.0.0",
        file.to_str().unwrap(),
        "--provider",
        "libvirt",
    ]);
}

/// The boxes a channel's `boxes.json` lists, as (name, sha256, size).
fn boxes_listed(
    store: &AmazonS3,
    runtime: &tokio::runtime::Runtime,
    key: &str,
) -> Vec<(String, String, u64)> {
    let index = get_json(store, runtime, key);
    assert_eq!(index["format"], 1, "{index}");
    index["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                format!("{}={} {}", b["name"], b["version"], b["provider"]),
                b["sha256"].as_str().unwrap().to_string(),
                b["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// A box's object and the `boxes.json` of its channels, through add,
/// promote and remove.
fn boxes_reach_the_store(cluster: &Seaweed, runtime: &tokio::runtime::Runtime) {
    cluster.create_bucket("boxes");
    let mut sb = repository_with_target_in(cluster, "boxes", "boxes");
    let file = noisy_box(&sb, "base.box", 3 << 20);
    let bytes = std::fs::read(&file).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    // A target that fails (no credentials) leaves the box added, with a
    // warning; the next publish sends it.
    let credentials = std::mem::take(&mut sb.env);
    let out = sb.bess(&[
        "box",
        "add",
        "acme/base",
        "1.0.0",
        file.to_str().unwrap(),
        "--provider",
        "libvirt",
    ]);
    sb.env = credentials;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("warning: the box is saved, but publish target `cluster`")
            && said.contains("no credentials"),
        "{said}"
    );
    let first = publish_json(&sb);
    let report = &first["targets"][0];
    assert!(report["error"].is_null(), "{first}");
    assert_eq!(report["objects_uploaded"], 1, "{first}");
    // Sent in parts (above the 1 MiB threshold the tests set): a
    // multipart upload is started and completed by a POST each, around
    // its part PUTs; the ledger was empty, so one LIST of the (empty)
    // store came first; every other request is a PUT.
    let count = |name: &str| report[name].as_u64().unwrap();
    assert_eq!(count("keys_adopted"), 0, "{first}");
    assert_eq!(count("requests"), count("puts") + 2 + 1, "{first}");
    eprintln!("publish of a {} byte box: {report}", bytes.len());
    let store = client(cluster, "boxes");
    assert!(get_bytes(&store, runtime, &format!("boxes/objects/{sha}")) == Some(bytes.clone()));
    let listed =
        |channel: &str| boxes_listed(&store, runtime, &format!("boxes/{channel}/boxes.json"));
    let entry = (
        "\"acme/base\"=\"1.0.0\" \"libvirt\"".to_string(),
        sha.clone(),
        bytes.len() as u64,
    );
    assert_eq!(listed("preprod"), std::slice::from_ref(&entry));
    assert!(listed("prod").is_empty());

    // Promoted and removed without a publish: the box commands update
    // boxes.json themselves.
    sb.ok(&["box", "promote", "acme/base=1.0.0"]);
    assert_eq!(listed("prod"), std::slice::from_ref(&entry));
    sb.ok(&["box", "remove", "acme/base=1.0.0", "--channel", "preprod"]);
    assert!(listed("preprod").is_empty());
    assert_eq!(listed("prod"), [entry]);
}

/// The time the target's ledger says gc first found `key` unreferenced.
fn marked_since(ledger: &Path, key: &str) -> Option<i64> {
    let db = rusqlite::Connection::open(ledger).unwrap();
    db.query_row(
        "SELECT unreferenced_since FROM held WHERE key = ?1",
        [key],
        |r| r.get(0),
    )
    .unwrap()
}

/// An object no channel references stays in the store for the grace
/// period (168 hours by default), is unmarked when referenced again, and
/// goes once the period has passed (the ledger's mark moved back in time,
/// as if a week went by).
fn gc_waits_for_the_grace_period(cluster: &Seaweed, runtime: &tokio::runtime::Runtime) {
    cluster.create_bucket("collected");
    let sb = repository_with_target_in(cluster, "collected", "collected");
    let debs = build_debs(&sb, "gc", 2, 4096);
    ingest(&sb, &debs);
    publish_json(&sb);
    let sha = hex::encode(sha2::Sha256::digest(std::fs::read(&debs[0]).unwrap()));
    let key = format!("collected/objects/{sha}");
    let store = client(cluster, "collected");
    let ledger = sb.repo.join("targets/cluster.db");
    let gc = |args: &[&str]| {
        let mut all = vec!["repo", "gc"];
        all.extend(args);
        let json = sb.json(&all);
        eprintln!("gc {args:?}: {}", json["targets"][0]);
        assert!(json["targets"][0]["error"].is_null(), "{json}");
        json["targets"][0].clone()
    };

    sb.ok(&["repo", "remove", "gc0=1.0", "--channel", "preprod"]);
    let first = gc(&[]);
    assert_eq!(
        (
            &first["objects_marked"],
            &first["objects_waiting"],
            &first["objects_deleted"]
        ),
        (&1.into(), &1.into(), &0.into())
    );
    assert!(
        get_bytes(&store, runtime, &key).is_some(),
        "deleted within the grace period"
    );
    assert!(marked_since(&ledger, &key).is_some());

    // Referenced again: unmarked, and not sent again.
    ingest(&sb, &debs[..1]);
    let again = publish_json(&sb);
    assert_eq!(again["targets"][0]["objects_uploaded"], 0, "{again}");
    assert_eq!(gc(&[])["objects_unmarked"], 1);
    assert_eq!(marked_since(&ledger, &key), None);

    sb.ok(&["repo", "remove", "gc0=1.0", "--channel", "preprod"]);
    assert_eq!(gc(&[])["objects_marked"], 1);
    let week_ago = marked_since(&ledger, &key).unwrap() - 169 * 3600;
    rusqlite::Connection::open(&ledger)
        .unwrap()
        .execute(
            "UPDATE held SET unreferenced_since = ?1 WHERE key = ?2",
            rusqlite::params![week_ago, key],
        )
        .unwrap();
    assert_eq!(gc(&["--dry-run"])["objects_deleted"], 1);
    assert!(
        get_bytes(&store, runtime, &key).is_some(),
        "a dry run deletes nothing"
    );
    let last = gc(&[]);
    assert_eq!(last["objects_deleted"], 1, "{last}");
    assert!(
        get_bytes(&store, runtime, &key).is_none(),
        "{key} is still there"
    );
    assert_eq!(held_objects(&ledger), 1, "the other package's object stays");
    let other = hex::encode(sha2::Sha256::digest(std::fs::read(&debs[1]).unwrap()));
    assert!(get_bytes(&store, runtime, &format!("collected/objects/{other}")).is_some());
}

/// `layout = "tree"`: every local pool and box file at its path in the
/// store with the same bytes, made by server-side copies (the bytes sent
/// are those of the objects and indices, not twice the packages); a
/// withdrawn file's key is deleted.
fn tree_layout_copies(cluster: &Seaweed, runtime: &tokio::runtime::Runtime) {
    cluster.create_bucket("tree");
    let sb = repository_with(cluster, "tree", "tree", "layout = \"tree\"\n");
    let debs = build_debs(&sb, "tree", 3, 256 << 10);
    // The box add copies the box to its tree path at once.
    add_box(&sb, &noisy_box(&sb, "tree.box", 512 << 10));
    ingest(&sb, &debs);
    let first = publish_json(&sb);
    let report = &first["targets"][0];
    eprintln!("tree layout, first publish: {report}");
    assert!(report["error"].is_null(), "{first}");
    assert_eq!(report["objects_uploaded"], 3, "{first}");
    assert_eq!(report["tree_copied"], 3, "{first}");
    let store = client(cluster, "tree");
    assert_tree_mirrors(&sb, &store, runtime, 4);

    // Promoted: four copies in prod, no object and few bytes sent.
    sb.ok(&["box", "promote", "acme/base=1.0.0"]);
    sb.ok(&["repo", "promote", "--no-publish", "tree0", "tree1", "tree2"]);
    let promoted = publish_json(&sb);
    let report = &promoted["targets"][0];
    eprintln!("tree layout, promotion: {report}");
    assert_eq!(report["objects_uploaded"], 0, "{promoted}");
    assert_eq!(report["tree_copied"], 3, "{promoted}");
    let sent = report["bytes_uploaded"].as_u64().unwrap();
    assert!(sent < 256 << 10, "{sent} bytes sent for copies: {promoted}");
    assert_tree_mirrors(&sb, &store, runtime, 8);

    sb.ok(&[
        "repo",
        "remove",
        "--no-publish",
        "tree0=1.0",
        "--channel",
        "prod",
    ]);
    // The key goes with the local file, once the indices that listed it
    // are replaced: a box command syncing meanwhile keeps it.
    sb.ok(&["box", "remove", "acme/base=1.0.0", "--channel", "preprod"]);
    let kept = "tree/prod/pool/main/t/tree0/tree0_1.0_amd64.deb";
    assert!(
        get_bytes(&store, runtime, kept).is_some(),
        "{kept} deleted while listed"
    );
    let removed = publish_json(&sb);
    assert_eq!(removed["targets"][0]["tree_deleted"], 1, "{removed}");
    assert_tree_mirrors(&sb, &store, runtime, 6);
}

/// Every file under the local `pool/` and `boxes/` trees at the same key
/// with the same bytes, `count` of them in all; no tree key beyond them.
fn assert_tree_mirrors(
    sb: &Sandbox,
    store: &AmazonS3,
    runtime: &tokio::runtime::Runtime,
    count: usize,
) {
    let mut local = Vec::new();
    for channel in ["preprod", "prod"] {
        for tree in ["pool", "boxes"] {
            let dir = sb.repo.join("public").join(channel).join(tree);
            if !dir.exists() {
                continue;
            }
            for (rel, path) in files_under(&dir) {
                let key = format!("tree/{channel}/{tree}/{rel}");
                assert!(
                    get_bytes(store, runtime, &key) == Some(std::fs::read(&path).unwrap()),
                    "{key}"
                );
                local.push(key);
            }
        }
    }
    assert_eq!(local.len(), count, "{local:?}");
    let listed: Vec<String> = runtime.block_on(async {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let prefix = Key::from("tree");
        let all: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
        all.into_iter().map(|m| m.location.to_string()).collect()
    });
    let mut tree_keys: Vec<&String> = listed
        .iter()
        .filter(|k| k.contains("/pool/") || k.contains("/boxes/"))
        .collect();
    tree_keys.sort();
    local.sort();
    assert_eq!(tree_keys, local.iter().collect::<Vec<_>>());
}

/// An upload through the API whose target cannot be reached succeeds: the
/// package is ingested and published locally, and the server logs the
/// target left behind (its refresher and the next publish catch it up).
#[test]
fn an_api_upload_succeeds_when_only_a_target_is_behind() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let settings = sb.repo.join("bess.toml");
    let mut text = std::fs::read_to_string(&settings).unwrap();
    // Port 9 (discard) is closed on loopback: every request is refused.
    text.push_str(
        "\n[[publish.target]]\ntype = \"s3\"\nname = \"offsite\"\n\
         endpoint = \"http://127.0.0.1:9\"\nbucket = \"apt\"\nretry-timeout-secs = 1\n",
    );
    std::fs::write(&settings, text).unwrap();
    let uploader = ("ci", "ci-upload-secret");
    common::server::add_user(&sb.repo, uploader, &["--upload", "preprod"]);
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let log = sb.path("serve.log");
    let server = common::server::Server::start_logged_with_env(&sb.repo, &log, &env);
    let deb = DebSpec::new("hello", "1.0", "amd64").build(&sb.path("debs"));
    let body = std::fs::read(&deb).unwrap();
    let (status, reply) = server.request("POST", "/api/v1/packages?dist=bookworm", uploader, &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let local = sb
        .repo
        .join("public/preprod/dists/bookworm/main/binary-amd64/Packages.xz");
    assert!(common::read_xz(&local).contains("Package: hello"));
    let logged = server.log();
    assert!(
        logged.contains("publish target `offsite`") && logged.contains("next `bess repo publish`"),
        "{logged}"
    );
}
