//! Stateless frontends (`bess serve --from s3://…`) on a real SeaweedFS
//! cluster: a primary publishes 2,000 packages and two boxes to the store;
//! two frontends, with no repository, serve them to the real `apt-get` and
//! `vagrant`; a promotion reaches both within their reload interval; a
//! volume server lost during a publish never shows apt a broken
//! publication; rights hold (a prod-only user gets 403 on preprod); and
//! writes are redirected to the primary.
//!
//! One cluster and one primary serve every step in turn: building 2,000
//! packages and starting a cluster cost seconds, and CI has two cores.

mod common;

use common::apt::AptRoot;
use common::seaweed::{ACCESS_KEY, SECRET_KEY, Seaweed, held_objects};
use common::server::{Server, add_user, host_arch};
use common::vagrant::{Vagrant, make_box};
use common::{DebSpec, Sandbox, have_tool};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const OPS: (&str, &str) = ("ops", "ops-reads-every-channel");
const PROD_ONLY: (&str, &str) = ("web01", "web01-reads-prod-only");
const PACKAGES: usize = 2000;
/// The frontends' `reload-interval-secs`.
const INTERVAL: u64 = 2;

#[test]
fn frontends_serve_what_the_primary_publishes_to_the_store() {
    if !have_tool("dpkg-deb") || !have_tool("apt-get") {
        return;
    }
    let Some(mut cluster) = Seaweed::start("apt") else {
        return;
    };
    let start = Instant::now();
    let sb = primary(&cluster);
    let debs = build_debs(&sb, "pkg", PACKAGES);
    ingest(&sb, &debs);
    let (base_box, base_image) = make_box(&sb, "base-1.0.0.box", "libvirt", "base one");
    let (db_box, _) = make_box(&sb, "db-1.0.0.box", "libvirt", "db one");
    for (name, file) in [("acme/base", &base_box), ("acme/db", &db_box)] {
        let file = file.to_str().unwrap();
        sb.ok(&["box", "add", name, "1.0.0", file, "--provider", "libvirt"]);
        sb.ok(&["box", "promote", &format!("{name}=1.0.0")]);
    }
    let promoted: Vec<String> = (0..20).map(|i| format!("pkg{i}=1.0")).collect();
    let mut args = vec!["repo", "promote"];
    args.extend(promoted.iter().map(String::as_str));
    sb.ok(&args);
    let report = sb.json(&["repo", "publish"]);
    assert!(report["targets"][0]["error"].is_null(), "{report}");
    eprintln!(
        "{:?}: primary published {PACKAGES} packages and two boxes",
        start.elapsed()
    );

    // The primary serves too: its box-token key is made on start, and
    // writes sent to a frontend are redirected to it.
    let primary_server = Server::start(&sb.repo);
    // The second keeps nothing: pool and box files are streamed from the store.
    let fronts = [
        frontend(&sb, &cluster, &primary_server, "one", 1),
        frontend(&sb, &cluster, &primary_server, "two", 0),
    ];
    for (front, name) in fronts.iter().zip(["one", "two"]) {
        apt_through(&sb, front, &debs);
        eprintln!("{:?}: apt through frontend {name}", start.elapsed());
    }
    // Frontend two served its packages without keeping them.
    let kept = walkdir::WalkDir::new(sb.path("front-two/cache/objects"))
        .into_iter()
        .filter(|e| e.as_ref().unwrap().file_type().is_file())
        .count();
    assert!(kept <= 1, "a cache of 0 GiB keeps {kept} files");
    ranges_from_the_store(&sb, &fronts);
    vagrant_through(&fronts[0], &base_image);
    rights_and_redirects(&fronts[1], &primary_server);
    new_user_reaches_frontends(&sb, &fronts);
    eprintln!(
        "{:?}: vagrant, rights and redirects checked",
        start.elapsed()
    );
    promotion_reaches_both(&sb, &fronts);
    eprintln!("{:?}: promotion seen by both frontends", start.elapsed());
    lost_volume_during_publish(&sb, &mut cluster, &fronts[0]);
    eprintln!("{:?}: lost volume server checked", start.elapsed());
}

/// A repository publishing to the cluster's bucket, with a user reading
/// every channel and one reading prod only.
fn primary(cluster: &Seaweed) -> Sandbox {
    let mut sb = Sandbox::new("bookworm", &host_arch());
    add_user(&sb.repo, OPS, &["--read", "preprod,prod"]);
    add_user(&sb.repo, PROD_ONLY, &["--read", "prod"]);
    std::fs::create_dir_all(sb.path("keys")).unwrap();
    let settings = sb.repo.join("bess.toml");
    let mut text = std::fs::read_to_string(&settings).unwrap();
    text.push_str(&format!(
        "\n[[publish.target]]\ntype = \"s3\"\nname = \"cluster\"\nendpoint = \"{}\"\n\
         bucket = \"{}\"\nprefix = \"company\"\nretry-timeout-secs = 3\n\
         request-timeout-secs = 3\nmultipart-threshold-mib = 1\n",
        cluster.endpoint(),
        cluster.bucket
    ));
    std::fs::write(&settings, text).unwrap();
    sb.env.push(("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()));
    sb.env
        .push(("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()));
    sb
}

/// `count` packages `<name><i>` 1.0, built on two threads.
fn build_debs(sb: &Sandbox, name: &str, count: usize) -> Vec<PathBuf> {
    let out = sb.path(&format!("debs-{name}"));
    let build = |range: std::ops::Range<usize>| -> Vec<PathBuf> {
        range
            .map(|i| {
                DebSpec::new(&format!("{name}{i}"), "1.0", "all")
                    .field("Description", &format!("package {i} of the frontend test"))
                    .payload(&format!("{name} {i}\n"))
                    .build(&out)
            })
            .collect()
    };
    std::thread::scope(|scope| {
        let half = count / 2;
        let first = scope.spawn(move || build(0..half));
        let mut debs = build(half..count);
        let mut all = first.join().unwrap();
        all.append(&mut debs);
        all
    })
}

fn ingest(sb: &Sandbox, debs: &[PathBuf]) {
    let dir = debs[0].parent().unwrap();
    sb.ok(&["repo", "ingest", "--no-publish", dir.to_str().unwrap()]);
}

/// A frontend of the cluster's bucket with its own cache of `cache_gib`,
/// sharing the primary's box-token key.
fn frontend(
    sb: &Sandbox,
    cluster: &Seaweed,
    primary: &Server,
    name: &str,
    cache_gib: u64,
) -> Server {
    let dir = sb.path(&format!("front-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let credentials = dir.join("s3.credentials");
    std::fs::write(
        &credentials,
        format!("AWS_ACCESS_KEY_ID = {ACCESS_KEY}\nAWS_SECRET_ACCESS_KEY = {SECRET_KEY}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    let token_key = dir.join("box-token.secret");
    std::fs::copy(sb.repo.join("keys/box-token.secret"), &token_key).unwrap();
    std::fs::set_permissions(&token_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.join("frontend.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nendpoint = \"{}\"\ncredentials-file = \"{}\"\n\n[serve]\n\
             primary = \"{}\"\ncache-dir = \"{}\"\ncache-max-gib = {cache_gib}\n\
             reload-interval-secs = {INTERVAL}\nbox-token-key = \"{}\"\n",
            cluster.endpoint(),
            credentials.display(),
            primary.url(),
            dir.join("cache").display(),
            token_key.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_bess"));
    command
        .env_remove("BESS_REPO")
        .current_dir(&dir)
        .args(["serve", "--from"])
        .arg(format!("s3://{}/company", cluster.bucket))
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"]);
    Server::from_command(command, Some(dir.join("serve.log")))
}

/// `apt-get update`, `apt-get install` and a download through `front`,
/// in both channels.
fn apt_through(sb: &Sandbox, front: &Server, debs: &[PathBuf]) {
    let apt = front.apt("preprod", "bookworm", OPS, &sb.path("keys"));
    apt.update(&[]);
    let last = PACKAGES - 1;
    assert_eq!(apt.versions(&format!("pkg{last}")), ["1.0"]);
    assert_eq!(
        apt.download(&format!("pkg{last}=1.0")),
        std::fs::read(&debs[index_of(debs, last)]).unwrap()
    );
    let prod = front.apt("prod", "bookworm", OPS, &sb.path("keys"));
    prod.update(&[]);
    assert_eq!(prod.versions("pkg3"), ["1.0"]);
    assert!(
        prod.versions(&format!("pkg{last}")).is_empty(),
        "not promoted"
    );
    install(&prod, "pkg3");
}

/// A file streamed from the store (the second frontend keeps none)
/// answers a byte range with 206 and those bytes, a range past its end
/// with 416, and its own ETag with 304: what apt and vagrant resume with.
/// Its ETag is the one the first frontend gives from its cache (the
/// content's hash), so a CDN in front of both caches the file once.
fn ranges_from_the_store(sb: &Sandbox, fronts: &[Server; 2]) {
    let deb = walkdir::WalkDir::new(sb.repo.join("public/prod/pool"))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("pkg3_")
        })
        .unwrap();
    let bytes = std::fs::read(&deb).unwrap();
    let path = deb
        .strip_prefix(sb.repo.join("public"))
        .unwrap()
        .display()
        .to_string();
    let ask_of = |front: &Server, extra: &str| {
        let request = format!(
            "GET /{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n{extra}Connection: close\r\n\r\n",
            common::server::basic(OPS.0, OPS.1)
        );
        front.exchange("127.0.0.1", request.as_bytes())
    };
    let ask = |extra: &str| ask_of(&fronts[1], extra);
    let part = ask("Range: bytes=10-19\r\n");
    assert_eq!(part.status, 206, "{}", part.text());
    assert_eq!(part.body, bytes[10..20]);
    let whole = format!("bytes 10-19/{}", bytes.len());
    assert_eq!(part.header("content-range"), Some(whole.as_str()));
    let past = ask(&format!("Range: bytes={}-\r\n", bytes.len()));
    assert_eq!(past.status, 416);
    let etag = part.header("etag").unwrap().to_string();
    assert_eq!(ask(&format!("If-None-Match: {etag}\r\n")).status, 304);
    let full = ask("");
    assert_eq!((full.status, full.body), (200, bytes));
    let cached = ask_of(&fronts[0], "");
    assert_eq!(cached.header("etag"), Some(etag.as_str()));
}

/// Where `pkg<i>` is in the list built (two threads built it in halves).
fn index_of(debs: &[PathBuf], i: usize) -> usize {
    debs.iter()
        .position(|d| {
            d.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("pkg{i}_"))
        })
        .unwrap()
}

/// `apt-get install` into the apt root's own dpkg database: the package
/// is fetched through the frontend, checked and unpacked.
fn install(apt: &AptRoot, package: &str) {
    let root = apt.root.display().to_string();
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"] {
        std::fs::create_dir_all(apt.root.join(dir)).unwrap();
    }
    let out = apt.run(
        "apt-get",
        &[
            "install",
            "-y",
            "-o",
            &format!("DPkg::Options::=--root={root}"),
            "-o",
            &format!("DPkg::Options::=--log={root}/var/log/dpkg.log"),
            "-o",
            "DPkg::Options::=--force-script-chrootless",
            "-o",
            "DPkg::Options::=--force-not-root",
            package,
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "apt-get install {package}:\n{text}");
    let status = std::fs::read_to_string(apt.root.join("var/lib/dpkg/status")).unwrap();
    assert!(
        status.contains(&format!("Package: {package}\nStatus: install ok installed")),
        "{status}"
    );
}

/// `vagrant box add` from a frontend's catalog: the box file comes by the
/// token of the catalog's URL, with the bytes the primary published.
fn vagrant_through(front: &Server, image: &[u8]) {
    if !have_tool("vagrant") {
        return;
    }
    let vagrant = Vagrant::new();
    let url = format!(
        "http://{}:{}@127.0.0.1:{}/prod/boxes/acme/base",
        OPS.0, OPS.1, front.port
    );
    let added = vagrant.ok(&["box", "add", "--provider", "libvirt", &url]);
    assert!(
        added.contains("Successfully added box 'acme/base' (v1.0.0)"),
        "{added}"
    );
    let unpacked = vagrant.unpacked("acme/base", "1.0.0").join("box.img");
    assert_eq!(std::fs::read(unpacked).unwrap(), image);
    let log = front.log();
    assert!(
        log.contains("ops/token \"GET /prod/boxes/acme/base/1.0.0/libvirt-amd64.box\" 200"),
        "{log}"
    );
}

/// A prod-only user is refused preprod; anonymous users are asked for
/// credentials; uploads and the API go to the primary.
fn rights_and_redirects(front: &Server, primary: &Server) {
    let inrelease = "/preprod/dists/bookworm/InRelease";
    assert_eq!(front.get(inrelease, Some(PROD_ONLY)).0, 403);
    assert_eq!(front.get(inrelease, None).0, 401);
    assert_eq!(front.get(inrelease, Some(OPS)).0, 200);
    assert_eq!(
        front
            .get("/prod/dists/bookworm/InRelease", Some(PROD_ONLY))
            .0,
        200
    );
    let reply = front.exchange(
        "127.0.0.1",
        b"POST /api/v1/packages?dist=bookworm HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(reply.status, 307, "{}", reply.text());
    assert_eq!(
        reply.header("location"),
        Some(format!("{}/api/v1/packages?dist=bookworm", primary.url()).as_str())
    );
}

/// A user added on the primary (which puts the users to the store at
/// once) can log in on a frontend within its reload interval; the
/// frontend's `bess.sources` names it and carries the signing key.
fn new_user_reaches_frontends(sb: &Sandbox, fronts: &[Server; 2]) {
    const LATE: (&str, &str) = ("late-reader", "late-reader-password");
    let add = ["user", "add", LATE.0, "--password-stdin", "--read", "prod"];
    assert!(sb.bess_with_input(&add, LATE.1).status.success());
    let added = Instant::now();
    for front in fronts {
        while front.get("/prod/bess.sources", Some(LATE)).0 != 200 {
            assert!(
                added.elapsed() < Duration::from_secs(INTERVAL + 5),
                "the new user is still refused after {:?}:\n{}",
                added.elapsed(),
                front.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    eprintln!(
        "a new user logged in on both frontends {:?} after `bess user add`",
        added.elapsed()
    );
    let (_, sources) = fronts[0].get("/prod/bess.sources", Some(LATE));
    let sources = String::from_utf8(sources).unwrap();
    // The test client sends `Host: x`: the URI is built from it.
    assert!(sources.contains("URIs: http://x/prod\n"), "{sources}");
    assert!(sources.contains("Suites: bookworm\n"), "{sources}");
    assert!(
        sources.contains(" -----BEGIN PGP PUBLIC KEY BLOCK-----"),
        "{sources}"
    );
}

/// A promotion published by the primary is served by both frontends
/// within their reload interval (plus the time of one look).
fn promotion_reaches_both(sb: &Sandbox, fronts: &[Server; 2]) {
    let switches: Vec<u64> = fronts
        .iter()
        .map(|f| metric(f, "bess_frontend_publication_switches_total"))
        .collect();
    sb.ok(&["repo", "promote", "pkg100=1.0"]);
    let wanted = std::fs::read(sb.repo.join("public/prod/dists/bookworm/InRelease")).unwrap();
    let published = Instant::now();
    for front in fronts {
        loop {
            let (status, body) = front.get("/prod/dists/bookworm/InRelease", Some(OPS));
            if status == 200 && body == wanted {
                break;
            }
            // The interval, and time for one look on a loaded machine.
            assert!(
                published.elapsed() < Duration::from_secs(INTERVAL + 5),
                "a frontend still serves the old InRelease after {:?}:\n{}",
                published.elapsed(),
                front.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    eprintln!(
        "both frontends served the new InRelease {:?} after the publish (interval {INTERVAL} s)",
        published.elapsed()
    );
    for (front, before) in fronts.iter().zip(switches) {
        let after = metric(front, "bess_frontend_publication_switches_total");
        assert_eq!(after, before + 1, "prod/bookworm alone changed");
        assert!(metric(front, "bess_frontend_cache_misses_total") > 0);
        assert!(metric(front, "bess_frontend_cache_bytes") > 0);
    }
}

/// A value of the frontend's `/metrics`.
fn metric(front: &Server, name: &str) -> u64 {
    let (status, body) = front.get("/metrics", None);
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

/// A volume server dies while a publish uploads: `apt-get update`
/// through a frontend, run over and over meanwhile, always succeeds (a
/// whole old or new publication), and the next publish completes once
/// the server is back.
fn lost_volume_during_publish(sb: &Sandbox, cluster: &mut Seaweed, front: &Server) {
    let debs = build_debs(sb, "late", 400);
    ingest(sb, &debs);
    let apt = front.apt("preprod", "bookworm", OPS, &sb.path("keys"));
    let stop = Arc::new(AtomicBool::new(false));
    let updates = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut count = 0;
            while !stop.load(Ordering::Relaxed) {
                apt.update(&[]);
                count += 1;
            }
            count
        });
        let ledger = sb.repo.join("targets/cluster.db");
        let before = held_objects(&ledger);
        let mut publish = Command::new(env!("CARGO_BIN_EXE_bess"))
            .env("BESS_REPO", &sb.repo)
            .envs(sb.env.iter().map(|(k, v)| (k, v)))
            .args(["repo", "publish", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Killed once the store acknowledged some of the new objects: the
        // rest of the upload runs with one replica gone.
        while held_objects(&ledger) < before + 20 {
            assert!(
                publish.try_wait().unwrap().is_none(),
                "the publish ended before the store acknowledged 20 objects"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        cluster.kill_volume(1);
        let out = publish.wait_with_output().unwrap();
        eprintln!(
            "publish with a volume server killed part-way: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.start_volume(1);
        cluster.wait_for_replicated_writes();
        let report = sb.json(&["repo", "publish"]);
        assert!(report["targets"][0]["error"].is_null(), "{report}");
        std::thread::sleep(Duration::from_secs(INTERVAL * 2));
        stop.store(true, Ordering::Relaxed);
        watcher.join().unwrap()
    });
    assert!(updates > 0);
    apt.update(&[]);
    assert_eq!(apt.versions("late399"), ["1.0"], "{}", front.log());
    eprintln!("{updates} apt-get updates during the publish, all complete");
}
