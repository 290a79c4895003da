//! Publishing to S3-compatible storage, on a real SeaweedFS cluster
//! (`tests/common/seaweed.rs`): every referenced pool object lands once
//! under `objects/<sha256>`, the dists match the local tree byte for byte,
//! a publish after one new package sends little, a lost volume server
//! leaves the local publication intact and the next publish completes, and
//! a publish killed part-way is resumed with only what was missing. And,
//! without a cluster, secrets are kept out of bess.toml and private.
//!
//! One cluster serves every scenario in turn (a bucket each): starting
//! one costs seconds, and CI machines have two cores.

mod common;

use common::seaweed::{ACCESS_KEY, SECRET_KEY, Seaweed};
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
/// back, the next publish completes the upload.
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
    let report = publish_json(&sb);
    assert!(
        report["targets"][0]["error"].is_null(),
        "{report}\n{}",
        cluster.logs()
    );
    let store = client(cluster, "degraded");
    assert_store_mirrors(&sb, &store, "degraded", &debs, runtime);
}

/// `bess repo publish` killed (SIGKILL) part-way through its uploads: the
/// next publish sends exactly the objects the ledger lacks.
fn killed_publish_resumes(cluster: &Seaweed, runtime: &tokio::runtime::Runtime) {
    cluster.create_bucket("killed");
    let sb = repository_with_target_in(cluster, "killed", "killed");
    let debs = build_debs(&sb, "many", 80, 32 << 10);
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
        held < 80,
        "the publish finished before it was killed ({held} held)"
    );
    let resumed = publish_json(&sb);
    let report = &resumed["targets"][0];
    assert!(report["error"].is_null(), "{resumed}");
    assert_eq!(report["objects_uploaded"], 80 - held, "{resumed}");
    // One PUT per key sent: the missing objects, then the dists files the
    // killed run never reached (uploads and server-side copies), nothing more.
    let count = |name: &str| report[name].as_u64().unwrap();
    assert_eq!(
        count("puts"),
        80 - held + count("files_uploaded") + count("files_copied"),
        "{resumed}"
    );
    eprintln!("after a kill with {held} of 80 objects held: {report}");
    let store = client(cluster, "killed");
    assert_store_mirrors(&sb, &store, "killed", &debs, runtime);
}

/// A repository whose bess.toml names a target on the cluster's bucket.
fn repository_with_target(cluster: &Seaweed, prefix: &str) -> Sandbox {
    repository_with_target_in(cluster, &cluster.bucket.clone(), prefix)
}

fn repository_with_target_in(cluster: &Seaweed, bucket: &str, prefix: &str) -> Sandbox {
    let mut sb = Sandbox::new("bookworm,jammy", "amd64");
    let settings = sb.repo.join("bess.toml");
    let mut text = std::fs::read_to_string(&settings).unwrap();
    text.push_str(&format!(
        "\n[[publish.target]]\ntype = \"s3\"\nname = \"cluster\"\nendpoint = \"{}\"\n\
         bucket = \"{bucket}\"\nprefix = \"{prefix}\"\nretry-timeout-secs = 3\n\
         request-timeout-secs = 3\n\
         multipart-threshold-mib = 1\n",
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
fn held_objects(ledger: &Path) -> u64 {
    let Ok(db) =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    db.query_row(
        "SELECT count(*) FROM held WHERE key LIKE '%/objects/%'",
        [],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

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
