//! Publication checked by the real clients: apt-get, apt-cache, gpgv, sqv
//! and apt-ftparchive read what bess writes.

mod common;

use common::apt::AptRoot;
use common::{DebSpec, Sandbox, have_tool};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tools(names: &[&str]) -> bool {
    names.iter().all(|t| have_tool(t))
}

/// A repository with three versions of `app`, an `all` package and a lib.
fn populated() -> (Sandbox, PathBuf) {
    let sb = Sandbox::new("bookworm,jammy", "amd64,arm64");
    let input = sb.path("in");
    for v in ["1.0-1", "1.1-1", "2:0.9-1"] {
        DebSpec::new("app", v, "amd64")
            .field("Depends", "libc6 (>= 2.34), app-data (>= 1.1) | other")
            .build(&input);
    }
    DebSpec::new("app-data", "1.1-1", "all").build(&input);
    DebSpec::new("libacme1", "0.3-2", "arm64")
        .field("Source", "libacme (0.3-2)")
        .build(&input);
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    let key = sb.path("key.gpg");
    std::fs::write(&key, sb.bess(&["key", "export"]).stdout).unwrap();
    (sb, key)
}

fn channel_uri(sb: &Sandbox, channel: &str) -> String {
    format!("file:{}", sb.repo.join("public").join(channel).display())
}

#[test]
fn apt_updates_lists_every_version_and_downloads_exact_bytes() {
    if !tools(&["dpkg-deb", "apt-get"]) {
        return;
    }
    let (sb, key) = populated();
    let apt = AptRoot::new("amd64", "");
    apt.add_source("bess", &channel_uri(&sb, "preprod"), "bookworm", &key);
    apt.update(&[]);
    assert_eq!(apt.versions("app"), ["2:0.9-1", "1.1-1", "1.0-1"]);
    assert_eq!(
        apt.versions("app-data"),
        ["1.1-1"],
        "`all` packages are in the amd64 index"
    );
    assert!(
        apt.versions("libacme1").is_empty(),
        "arm64 packages stay out of amd64"
    );
    let original = std::fs::read(sb.path("in").join("app_1.0-1_amd64.deb")).unwrap();
    assert_eq!(
        apt.download("app=1.0-1"),
        original,
        "rollback gets the exact uploaded bytes"
    );

    let forced = AptRoot::new("arm64", "Acquire::By-Hash \"force\";");
    forced.add_source("bess", &channel_uri(&sb, "preprod"), "jammy", &key);
    forced.update(&[]);
    assert_eq!(forced.versions("libacme1"), ["0.3-2"]);
    assert_eq!(forced.versions("app-data"), ["1.1-1"]);
}

#[test]
fn prod_clients_see_promotions_only() {
    if !tools(&["dpkg-deb", "apt-get"]) {
        return;
    }
    let (sb, key) = populated();
    let apt = AptRoot::new("amd64", "");
    apt.add_source("bess", &channel_uri(&sb, "prod"), "bookworm", &key);
    apt.update(&[]);
    assert!(apt.versions("app").is_empty(), "prod starts empty");
    sb.ok(&["repo", "promote", "app=1.1-1"]);
    apt.update(&[]);
    assert_eq!(apt.versions("app"), ["1.1-1"]);
    sb.ok(&["repo", "promote", "app"]);
    apt.update(&["-o", "Acquire::By-Hash=force"]);
    assert_eq!(apt.versions("app"), ["2:0.9-1", "1.1-1"]);
    sb.ok(&["repo", "remove", "app=1.1-1", "--channel", "prod"]);
    apt.update(&[]);
    assert_eq!(apt.versions("app"), ["2:0.9-1"]);
}

#[test]
fn signatures_verify_with_gpgv_and_sqv() {
    if !tools(&["dpkg-deb", "gpgv", "sqv"]) {
        return;
    }
    let (sb, key) = populated();
    for channel in ["preprod", "prod"] {
        for dist in ["bookworm", "jammy"] {
            let dir = sb
                .repo
                .join("public")
                .join(channel)
                .join("dists")
                .join(dist);
            let gpgv = |args: &[&Path]| {
                Command::new("gpgv")
                    .arg("--keyring")
                    .arg(&key)
                    .args(args)
                    .output()
                    .unwrap()
            };
            assert!(
                gpgv(&[&dir.join("InRelease")]).status.success(),
                "gpgv InRelease {channel}/{dist}"
            );
            assert!(
                gpgv(&[&dir.join("Release.gpg"), &dir.join("Release")])
                    .status
                    .success()
            );
            let sqv = Command::new("sqv")
                .arg("--keyring")
                .arg(&key)
                .arg(dir.join("Release.gpg"))
                .arg(dir.join("Release"))
                .output()
                .unwrap();
            assert!(
                sqv.status.success(),
                "sqv: {}",
                String::from_utf8_lossy(&sqv.stderr)
            );
        }
    }
    // A tampered Release must not verify.
    let dir = sb.repo.join("public/preprod/dists/bookworm");
    let mut release = std::fs::read(dir.join("Release")).unwrap();
    release[0] ^= 1;
    let tampered = sb.path("Release");
    std::fs::write(&tampered, release).unwrap();
    let out = Command::new("gpgv")
        .arg("--keyring")
        .arg(&key)
        .arg(dir.join("Release.gpg"))
        .arg(&tampered)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn republishing_without_change_rewrites_nothing() {
    if !tools(&["dpkg-deb"]) {
        return;
    }
    let (sb, _) = populated();
    let release = sb.repo.join("public/preprod/dists/bookworm/Release");
    let before = (
        std::fs::read(&release).unwrap(),
        std::fs::canonicalize(&release).unwrap(),
    );
    let out = sb.json(&["repo", "publish", "--channel", "preprod"]);
    assert!(
        out["published"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["written"] == false),
        "{out}"
    );
    let after = (
        std::fs::read(&release).unwrap(),
        std::fs::canonicalize(&release).unwrap(),
    );
    assert_eq!(before, after);
    let refreshed = sb.json(&[
        "repo",
        "publish",
        "--refresh",
        "--channel",
        "preprod",
        "--dist",
        "bookworm",
    ]);
    assert_eq!(refreshed["published"][0]["written"], true);
    assert_ne!(
        std::fs::canonicalize(&release).unwrap(),
        before.1,
        "a refresh is a new generation"
    );
}

#[test]
fn no_publish_defers_until_repo_publish() {
    if !tools(&["dpkg-deb", "apt-get"]) {
        return;
    }
    let (sb, key) = populated();
    let deb = DebSpec::new("late", "1.0", "amd64").build(&sb.path("late"));
    sb.ok(&["repo", "ingest", "--no-publish", deb.to_str().unwrap()]);
    let apt = AptRoot::new("amd64", "");
    apt.add_source("bess", &channel_uri(&sb, "preprod"), "bookworm", &key);
    apt.update(&[]);
    assert!(apt.versions("late").is_empty(), "not published yet");
    let check = sb.ok(&["repo", "check"]);
    assert!(check.contains("waiting for `bess repo publish`"), "{check}");
    let published = sb.json(&["repo", "publish"]);
    let pairs: Vec<String> = published["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["channel"].as_str().unwrap(),
                p["dist"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(pairs, ["preprod/bookworm", "preprod/jammy"]);
    apt.update(&[]);
    assert_eq!(apt.versions("late"), ["1.0"]);
    assert_eq!(
        sb.json(&["repo", "publish"])["published"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "nothing left pending"
    );
}

#[test]
fn the_uncompressed_index_is_listed_always_and_stored_on_request() {
    if !tools(&["dpkg-deb", "apt-get"]) {
        return;
    }
    let (sb, key) = populated();
    let binary = sb
        .repo
        .join("public/preprod/dists/bookworm/main/binary-amd64");
    let release =
        std::fs::read_to_string(sb.repo.join("public/preprod/dists/bookworm/Release")).unwrap();
    assert!(
        release.contains(" main/binary-amd64/Packages\n"),
        "{release}"
    );
    assert!(!binary.join("Packages").exists(), "not stored by default");
    let settings = sb.repo.join("bess.toml");
    let toml = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(
        &settings,
        toml.replace("uncompressed-index = false", "uncompressed-index = true"),
    )
    .unwrap();
    sb.ok(&["repo", "publish", "--refresh"]);
    let plain = std::fs::read_to_string(binary.join("Packages")).unwrap();
    assert_eq!(plain, common::read_xz(&binary.join("Packages.xz")));
    sb.ok(&["repo", "check"]);
    let apt = AptRoot::new(
        "amd64",
        "Acquire::CompressionTypes::Order:: \"uncompressed\";",
    );
    apt.add_source("bess", &channel_uri(&sb, "preprod"), "bookworm", &key);
    apt.update(&[]);
    assert_eq!(apt.versions("app"), ["2:0.9-1", "1.1-1", "1.0-1"]);
}

#[test]
fn by_hash_keeps_the_configured_generations() {
    if !tools(&["dpkg-deb"]) {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let mut packages_hashes = Vec::new();
    for i in 0..5 {
        let deb = DebSpec::new(&format!("p{i}"), "1.0", "amd64").build(&sb.path(&format!("in{i}")));
        sb.ok(&["repo", "ingest", deb.to_str().unwrap()]);
        let data = std::fs::read(
            sb.repo
                .join("public/preprod/dists/bookworm/main/binary-amd64/Packages.xz"),
        )
        .unwrap();
        use sha2::Digest;
        packages_hashes.push(hex::encode(sha2::Sha256::digest(&data)));
    }
    let by_hash = sb
        .repo
        .join("public/preprod/dists/bookworm/main/binary-amd64/by-hash/SHA256");
    let present: Vec<bool> = packages_hashes
        .iter()
        .map(|h| by_hash.join(h).is_file())
        .collect();
    assert_eq!(
        present,
        [false, false, true, true, true],
        "default: 3 generations kept"
    );
    let check = sb.bess(&["repo", "check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// Parses a Packages text into stanzas keyed by Package and Version.
fn stanzas(text: &str) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n").filter(|s| !s.trim().is_empty()) {
        let mut fields = BTreeMap::new();
        let mut last = String::new();
        for line in stanza.lines() {
            if line.starts_with(' ') {
                fields.entry(last.clone()).and_modify(|v: &mut String| {
                    v.push('\n');
                    v.push_str(line);
                });
            } else if let Some((k, v)) = line.split_once(':') {
                last = k.to_string();
                fields.insert(last.clone(), v.trim().to_string());
            }
        }
        out.insert(
            (fields["Package"].clone(), fields["Version"].clone()),
            fields,
        );
    }
    out
}

#[test]
fn packages_agree_with_apt_ftparchive_field_for_field() {
    if !tools(&["dpkg-deb", "apt-ftparchive"]) {
        return;
    }
    let (sb, _) = populated();
    let channel = sb.repo.join("public/preprod");
    let ours = common::read_xz(&channel.join("dists/bookworm/main/binary-amd64/Packages.xz"));
    // Debian's archive's checksums, which bess lists by default.
    let out = Command::new("apt-ftparchive")
        .args(["-o", "APT::FTPArchive::SHA1=false"])
        .args(["-o", "APT::FTPArchive::SHA512=false"])
        .args(["packages", "pool/main"])
        .current_dir(&channel)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut theirs = stanzas(&String::from_utf8(out.stdout).unwrap());
    // apt-ftparchive indexes the whole pool; the amd64 index lists amd64 and all.
    theirs.retain(|_, f| f["Architecture"] == "amd64" || f["Architecture"] == "all");
    let ours = stanzas(&ours);
    assert_eq!(ours.len(), 4);
    assert_eq!(ours, theirs);
}

/// `SHA256` lines of a Release file for the index files of one directory.
fn index_hashes(sb: &Sandbox, dir: &str) -> BTreeMap<String, String> {
    let release =
        std::fs::read_to_string(sb.repo.join("public/preprod/dists/bookworm/Release")).unwrap();
    release
        .split("SHA256:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| l.starts_with(' '))
        .filter_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            parts[2]
                .starts_with(dir)
                .then(|| (parts[2].to_string(), parts[0].to_string()))
        })
        .collect()
}

#[test]
fn incremental_publishes_reuse_published_chunks_and_match_a_full_rebuild() {
    if !tools(&["dpkg-deb", "apt-get", "gpgv"]) {
        return;
    }
    // Two architectures: the `all` packages are a section of their own, so
    // the amd64 index has at least two chunks whatever the packages' hashes.
    let sb = Sandbox::new("bookworm", "amd64,arm64");
    let batch = |from: usize, to: usize| {
        let input = sb.path(&format!("in-{from}"));
        for i in from..to {
            let arch = if i % 5 == 0 { "all" } else { "amd64" };
            DebSpec::new(&format!("pkg{i}"), "1.0-1", arch)
                .field("Description", &format!("package {i}\n long text {i}"))
                .build(&input);
        }
        sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    };
    // Chunks of 256 stanzas on average, then additions that rewrite only
    // the amd64 section's last one, reading the others back from the
    // published files.
    batch(0, 300);
    batch(300, 340);
    batch(340, 341);
    let incremental = index_hashes(&sb, "main/binary-amd64/Packages");
    assert_eq!(incremental.len(), 3, "{incremental:?}");
    assert!(
        !sb.repo.join("cache/chunks").exists(),
        "no separate chunk cache"
    );

    // Without manifests, everything is compressed again from the catalog:
    // the same bytes must come out.
    std::fs::remove_dir_all(sb.repo.join("cache/manifests")).unwrap();
    sb.ok(&["repo", "publish", "--refresh"]);
    assert_eq!(index_hashes(&sb, "main/binary-amd64/Packages"), incremental);

    let key = sb.path("key.gpg");
    std::fs::write(&key, sb.bess(&["key", "export"]).stdout).unwrap();
    let apt = AptRoot::new("amd64", "");
    apt.add_source("bess", &channel_uri(&sb, "preprod"), "bookworm", &key);
    apt.update(&[]);
    assert_eq!(apt.versions("pkg0"), ["1.0-1"]);
    assert_eq!(apt.versions("pkg340"), ["1.0-1"]);
}

#[test]
fn architectures_share_their_all_packages_through_incremental_publishes() {
    if !tools(&["dpkg-deb", "apt-get", "gpgv"]) {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64,arm64");
    let arch_of = |i: usize| match i % 4 {
        0 => "all",
        1 | 2 => "amd64",
        _ => "arm64",
    };
    let batch = |from: usize, to: usize| {
        let input = sb.path(&format!("in-{from}"));
        for i in from..to {
            DebSpec::new(&format!("pkg{i}"), "1.0-1", arch_of(i))
                .field("Description", &format!("package {i}\n long text {i}"))
                .build(&input);
        }
        sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    };
    // Architecture-specific and `all` packages interleaved in the catalog;
    // the later batches add to the end of both indices, one of them an
    // `all` package alone and one an arm64 package alone.
    batch(0, 240);
    batch(240, 260);
    batch(260, 261);
    batch(263, 264);
    let both = |sb: &Sandbox| {
        let mut hashes = index_hashes(sb, "main/binary-amd64/Packages");
        hashes.extend(index_hashes(sb, "main/binary-arm64/Packages"));
        hashes
    };
    let incremental = both(&sb);
    assert_eq!(incremental.len(), 6, "{incremental:?}");

    // Each index lists its own architecture and every `all` package, once.
    let dist = sb.repo.join("public/preprod/dists/bookworm/main");
    for arch in ["amd64", "arm64"] {
        let text = common::read_xz(&dist.join(format!("binary-{arch}/Packages.xz")));
        let mut listed: Vec<usize> = stanzas(&text)
            .keys()
            .map(|(name, _)| name.trim_start_matches("pkg").parse().unwrap())
            .collect();
        listed.sort_unstable();
        let count = text.split("\n\n").filter(|s| !s.trim().is_empty()).count();
        assert_eq!(count, listed.len(), "binary-{arch}: no package twice");
        let wanted: Vec<usize> = (0..261)
            .chain([263])
            .filter(|i| arch_of(*i) == arch || arch_of(*i) == "all")
            .collect();
        assert_eq!(listed, wanted, "binary-{arch}");
        assert_eq!(
            common::read_gz(&dist.join(format!("binary-{arch}/Packages.gz"))),
            text,
            "binary-{arch}: gz and xz agree"
        );
    }

    // Rebuilt from the catalog alone, the same bytes come out.
    std::fs::remove_dir_all(sb.repo.join("cache/manifests")).unwrap();
    sb.ok(&["repo", "publish", "--refresh"]);
    assert_eq!(both(&sb), incremental);
    sb.ok(&["repo", "check"]);

    let key = sb.path("key.gpg");
    std::fs::write(&key, sb.bess(&["key", "export"]).stdout).unwrap();
    // apt takes the .xz by default; told to prefer .gz, it fetches the
    // gzip members (by hash: the URI it names has the .gz file's SHA256,
    // the strongest hash Release lists by default).
    let prefer_gz = "Acquire::CompressionTypes::Order:: \"gz\";";
    let release =
        std::fs::read_to_string(sb.repo.join("public/preprod/dists/bookworm/Release")).unwrap();
    for (arch, extra) in [("amd64", ""), ("arm64", ""), ("amd64", prefer_gz)] {
        let apt = AptRoot::new(arch, &format!("Acquire::By-Hash \"force\";\n{extra}"));
        apt.add_source("bess", &channel_uri(&sb, "preprod"), "bookworm", &key);
        let log = apt.update(&["-o", "Debug::pkgAcquire::Worker=true"]);
        assert_eq!(apt.versions("pkg0"), ["1.0-1"], "{arch}: an all package");
        assert_eq!(apt.versions("pkg260"), ["1.0-1"], "{arch}: added alone");
        let gz = listed(
            &release,
            "SHA256",
            &format!("main/binary-{arch}/Packages.gz"),
        );
        let fetched_gz = log.contains(&format!("by-hash/SHA256/{gz}"));
        assert_eq!(fetched_gz, !extra.is_empty(), "{arch} {extra}:\n{log}");
    }
}

/// The checksum of kind `section` a Release lists for `path`.
fn listed(release: &str, section: &str, path: &str) -> String {
    let list = release
        .split(&format!("\n{section}:\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {section} list:\n{release}"));
    list.lines()
        .take_while(|l| l.starts_with(' '))
        .map(str::split_whitespace)
        .find_map(|mut fields| {
            let (hash, _, name) = (fields.next()?, fields.next()?, fields.next()?);
            (name == path).then(|| hash.to_string())
        })
        .unwrap_or_else(|| panic!("{path} is not listed:\n{release}"))
}

/// Writes `bess.toml` with `from` replaced by `to`.
fn edit_settings(sb: &Sandbox, from: &str, to: &str) {
    let settings = sb.repo.join("bess.toml");
    let toml = std::fs::read_to_string(&settings).unwrap();
    assert!(toml.contains(from), "bess.toml has no {from:?}");
    std::fs::write(&settings, toml.replace(from, to)).unwrap();
}

#[test]
fn release_lists_debians_hashes_and_more_on_request() {
    if !tools(&["dpkg-deb", "apt-get"]) {
        return;
    }
    let (sb, key) = populated();
    let dist = sb.repo.join("public/preprod/dists/bookworm");
    let sections = |release: &str| -> Vec<String> {
        release
            .lines()
            .filter(|l| l.ends_with(':') && !l.starts_with(' '))
            .map(|l| l.trim_end_matches(':').to_string())
            .collect()
    };
    let by_hash_kinds = || -> Vec<String> {
        let mut kinds: Vec<String> = std::fs::read_dir(dist.join("main/binary-amd64/by-hash"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        kinds.sort();
        kinds
    };
    let release = std::fs::read_to_string(dist.join("Release")).unwrap();
    assert_eq!(sections(&release), ["MD5Sum", "SHA256"]);
    assert_eq!(by_hash_kinds(), ["MD5Sum", "SHA256"]);
    let packages = common::read_xz(&dist.join("main/binary-amd64/Packages.xz"));
    let stanza = packages.split("\n\n").next().unwrap();
    let fields: Vec<&str> = stanza
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, _)| k)
        .collect();
    assert!(
        fields.ends_with(&["Filename", "Size", "MD5sum", "SHA256"]),
        "{stanza}"
    );

    edit_settings(
        &sb,
        "hashes = [\"MD5Sum\", \"SHA256\"]",
        "hashes = [\"SHA512\", \"SHA256\", \"SHA1\", \"MD5Sum\"]",
    );
    sb.ok(&["repo", "publish", "--refresh"]);
    let release = std::fs::read_to_string(dist.join("Release")).unwrap();
    assert_eq!(sections(&release), ["MD5Sum", "SHA1", "SHA256", "SHA512"]);
    assert_eq!(by_hash_kinds(), ["MD5Sum", "SHA1", "SHA256", "SHA512"]);
    let packages = common::read_xz(&dist.join("main/binary-amd64/Packages.xz"));
    let stanza = packages.split("\n\n").next().unwrap();
    let fields: Vec<&str> = stanza
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, _)| k)
        .collect();
    assert!(
        fields.ends_with(&["MD5sum", "SHA1", "SHA256", "SHA512"]),
        "{stanza}"
    );
    sb.ok(&["repo", "check"]);
    // apt fetches by the strongest hash listed, which now is SHA512.
    let apt = AptRoot::new("amd64", "Acquire::By-Hash \"force\";");
    apt.add_source("bess", &channel_uri(&sb, "preprod"), "bookworm", &key);
    let log = apt.update(&["-o", "Debug::pkgAcquire::Worker=true"]);
    let xz = listed(&release, "SHA512", "main/binary-amd64/Packages.xz");
    assert!(log.contains(&format!("by-hash/SHA512/{xz}")), "{log}");
    assert_eq!(apt.versions("app"), ["2:0.9-1", "1.1-1", "1.0-1"]);

    edit_settings(&sb, "\"SHA1\", \"MD5Sum\"]", "\"SHA3\"]");
    let error = sb.fails(&["repo", "publish"]);
    assert!(error.contains("bess.toml"), "names the file: {error}");
    assert!(
        error.contains("`SHA3` is not a checksum apt reads"),
        "{error}"
    );
}

/// Damages `len` bytes of `path` in place, `back` bytes before its end.
fn damage(path: &Path, back: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let at = file.metadata().unwrap().len() - back;
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(&[0x55; 4]).unwrap();
}

#[test]
fn a_damaged_stored_chunk_stops_the_publish_and_the_served_generation_stays() {
    if !tools(&["dpkg-deb", "apt-get"]) {
        return;
    }
    // With two architectures, the `all` packages are a chunk of their own
    // at the end of the amd64 index: adding an amd64 package rewrites the
    // chunk before it and reuses that one from the published files.
    let sb = Sandbox::new("bookworm", "amd64,arm64");
    let input = sb.path("in");
    for i in 0..3 {
        DebSpec::new(&format!("tool{i}"), "1.0", "amd64").build(&input);
        DebSpec::new(&format!("doc{i}"), "1.0", "all").build(&input);
    }
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    let key = sb.path("key.gpg");
    std::fs::write(&key, sb.bess(&["key", "export"]).stdout).unwrap();
    let dist = sb.repo.join("public/preprod/dists/bookworm");
    let served = std::fs::canonicalize(&dist).unwrap();
    // The last gzip member (the `all` chunk), inside its deflate data: apt
    // reads the .xz, so clients still update while it is damaged.
    let gz = dist.join("main/binary-amd64/Packages.gz");
    damage(&gz, 20);

    let late = DebSpec::new("late", "1.0", "amd64").build(&sb.path("late"));
    let error = sb.fails(&["repo", "ingest", late.to_str().unwrap()]);
    let release = std::fs::read_to_string(dist.join("Release")).unwrap();
    let stored = sb
        .repo
        .join("public/preprod/.dists/bookworm/by-hash/main/binary-amd64/SHA256")
        .join(listed(&release, "SHA256", "main/binary-amd64/Packages.gz"));
    assert!(error.contains("main/binary-amd64: chunk "), "{error}");
    assert!(error.contains("of the published Packages.gz"), "{error}");
    assert!(
        error.contains(stored.to_str().unwrap()),
        "names the stored file: {error}"
    );
    assert!(
        error.contains("damaged on disk") && error.contains("nothing was switched"),
        "{error}"
    );
    assert_eq!(
        std::fs::canonicalize(&dist).unwrap(),
        served,
        "the same generation"
    );
    let apt = AptRoot::new("amd64", "");
    apt.add_source("bess", &channel_uri(&sb, "preprod"), "bookworm", &key);
    apt.update(&[]);
    assert_eq!(apt.versions("doc1"), ["1.0"]);
    assert!(apt.versions("late").is_empty(), "not switched to");
    let check = sb.bess(&["repo", "check"]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        !check.status.success() && report.contains("Packages.gz does not match"),
        "{report}"
    );

    // The repair compresses the damaged chunk again from the catalog.
    sb.ok(&["repo", "publish", "--refresh"]);
    sb.ok(&["repo", "check"]);
    apt.update(&["-o", "Acquire::By-Hash=force"]);
    assert_eq!(apt.versions("late"), ["1.0"]);
    let gz_apt = AptRoot::new("amd64", "Acquire::CompressionTypes::Order:: \"gz\";");
    gz_apt.add_source("bess", &channel_uri(&sb, "preprod"), "bookworm", &key);
    gz_apt.update(&[]);
    assert_eq!(gz_apt.versions("doc2"), ["1.0"]);
}

/// Rewrites the catalog as a bess before Debian's pool layout left it:
/// `<prefix>/<file>` names, with their files queued and dists pending, so
/// that a plain publish links the flat files and lists them.
fn flatten_pool_names(sb: &Sandbox) {
    let catalog = rusqlite::Connection::open(sb.repo.join("catalog/catalog.db")).unwrap();
    let rows: Vec<(i64, String, String)> = catalog
        .prepare("SELECT id, name, pool_name FROM packages")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (id, name, pool_name) in rows {
        let prefix = if name.starts_with("lib") {
            &name[..4]
        } else {
            &name[..1]
        };
        let file = pool_name.rsplit('/').next().unwrap();
        catalog
            .execute(
                "UPDATE packages SET pool_name = ?2 WHERE id = ?1",
                rusqlite::params![id, format!("{prefix}/{file}")],
            )
            .unwrap();
    }
    catalog
        .execute_batch(
            "INSERT INTO tree_queue (channel, component, package_id)
                 SELECT DISTINCT channel, component, package_id FROM placements;
             INSERT OR REPLACE INTO pending_publications (channel, dist, seq)
                 SELECT DISTINCT channel, dist, 1 FROM placements;",
        )
        .unwrap();
}

/// Every `.deb` under a channel's pool, relative to it.
fn pool_files(sb: &Sandbox, channel: &str) -> Vec<String> {
    let root = sb.repo.join("public").join(channel).join("pool");
    let mut files: Vec<String> = walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(&root).unwrap().display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn refresh_moves_an_earlier_flat_pool_to_debians_layout() {
    if !tools(&["dpkg-deb", "apt-get"]) {
        return;
    }
    let (sb, key) = populated();
    let debian = pool_files(&sb, "preprod");
    assert!(
        debian.contains(&"main/a/app/app_0.9-1_amd64.deb".to_string()),
        "{debian:?}"
    );
    assert!(
        debian.contains(&"main/liba/libacme/libacme1_0.3-2_arm64.deb".to_string()),
        "{debian:?}"
    );

    // What an earlier bess published: flat names, in the files and the indices.
    flatten_pool_names(&sb);
    std::fs::remove_dir_all(sb.repo.join("cache/manifests")).unwrap();
    sb.ok(&["repo", "publish"]);
    std::fs::remove_dir_all(sb.repo.join("public/preprod/pool/main/a/app")).unwrap();
    std::fs::remove_dir_all(sb.repo.join("public/preprod/pool/main/a/app-data")).unwrap();
    std::fs::remove_dir_all(sb.repo.join("public/preprod/pool/main/liba/libacme")).unwrap();
    let flat = pool_files(&sb, "preprod");
    assert!(
        flat.contains(&"main/a/app_0.9-1_amd64.deb".to_string()),
        "{flat:?}"
    );
    let packages = common::read_xz(
        &sb.repo
            .join("public/preprod/dists/bookworm/main/binary-amd64/Packages.xz"),
    );
    assert!(
        packages.contains("Filename: pool/main/a/app_1.0-1_amd64.deb\n"),
        "{packages}"
    );
    let check = sb.ok(&["repo", "check"]);
    assert!(check.contains("outside Debian's pool layout"), "{check}");

    sb.ok(&["repo", "publish", "--refresh"]);
    assert_eq!(
        pool_files(&sb, "preprod"),
        debian,
        "moved, and nothing left behind"
    );
    let packages = common::read_xz(
        &sb.repo
            .join("public/preprod/dists/bookworm/main/binary-amd64/Packages.xz"),
    );
    assert!(
        packages.contains("Filename: pool/main/a/app/app_1.0-1_amd64.deb\n"),
        "{packages}"
    );
    let check = sb.ok(&["repo", "check"]);
    assert!(!check.contains("outside Debian's pool layout"), "{check}");
    let apt = AptRoot::new("amd64", "");
    apt.add_source("bess", &channel_uri(&sb, "preprod"), "bookworm", &key);
    apt.update(&[]);
    let original = std::fs::read(sb.path("in").join("app_1.0-1_amd64.deb")).unwrap();
    assert_eq!(apt.download("app=1.0-1"), original);
}

/// `repo check` compares each index with what the catalog renders (in
/// batches, as streams) and finds a stanza that differs and a published
/// file that went missing.
#[test]
fn check_finds_an_index_that_differs_from_the_catalog_and_a_missing_file() {
    if !tools(&["dpkg-deb"]) {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    for i in 0..5 {
        DebSpec::new(&format!("tool{i}"), "1.0", "amd64").build(&input);
    }
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    sb.ok(&["repo", "check"]);

    let catalog = rusqlite::Connection::open(sb.repo.join("catalog/catalog.db")).unwrap();
    let edited = catalog
        .execute(
            "UPDATE controls SET control = control || 'X-Edited: yes\n' \
             WHERE package_id = (SELECT id FROM packages WHERE name = 'tool3')",
            [],
        )
        .unwrap();
    assert_eq!(edited, 1);
    drop(catalog);
    let pool = sb.repo.join("public/preprod/pool/main/t/tool1");
    let deb = std::fs::read_dir(&pool)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&deb).unwrap();

    let check = sb.bess(&["repo", "check"]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success(), "{report}");
    for expected in [
        "main/binary-amd64/Packages: Release disagrees with the catalog",
        "main/binary-amd64/Packages.gz does not decompress to what the catalog lists",
        "main/binary-amd64/Packages.xz does not decompress to what the catalog lists",
        &format!("{} is not published", deb.display()),
    ] {
        assert!(report.contains(expected), "{expected}:\n{report}");
    }
}

/// `repo check` names a placed package whose pool object is gone, a
/// published file whose bytes are not its object's, and notes an object
/// nothing references.
#[test]
fn check_finds_a_missing_object_a_copied_file_and_an_orphan() {
    if !tools(&["dpkg-deb"]) {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    for i in 0..3 {
        DebSpec::new(&format!("tool{i}"), "1.0", "amd64").build(&input);
    }
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    sb.ok(&["repo", "check"]);
    let sha = |p: &Path| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
    };
    let object = |hash: &str| sb.repo.join("pool").join(&hash[..2]).join(hash);
    let published = |name: &str| {
        let dir = sb.repo.join("public/preprod/pool/main/t").join(name);
        std::fs::read_dir(dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    };
    // tool0's object goes; tool1's published file is replaced.
    let gone = sha(&published("tool0"));
    std::fs::remove_file(object(&gone)).unwrap();
    let copied = published("tool1");
    std::fs::remove_file(&copied).unwrap();
    std::fs::write(&copied, b"other bytes").unwrap();
    // An object of a package that was never placed.
    let stray = DebSpec::new("stray", "1.0", "amd64").build(&sb.path("stray"));
    let stray_sha = sha(&stray);
    std::fs::create_dir_all(object(&stray_sha).parent().unwrap()).unwrap();
    std::fs::copy(&stray, object(&stray_sha)).unwrap();

    let check = sb.bess(&["repo", "check"]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success(), "{report}");
    for expected in [
        format!("tool0 1.0 (amd64) is placed but its pool object {gone} is missing"),
        format!("{} is not a link to pool object", copied.display()),
        "1 pool object(s) are referenced by no placement".to_string(),
    ] {
        assert!(report.contains(&expected), "{expected}:\n{report}");
    }
}
