//! The repository engine through the real binary: init, ingest, list,
//! versions, diff, promote, remove, with packages built by dpkg-deb.

mod common;

use common::{DebSpec, Sandbox, have_tool, inode, rows};
use std::path::Path;

fn skip() -> bool {
    !have_tool("dpkg-deb")
}

#[test]
fn init_writes_lists_and_refuses_to_overwrite() {
    let sb = Sandbox::new("bookworm,jammy", "amd64,arm64");
    let dists = std::fs::read_to_string(sb.repo.join("dists.list")).unwrap();
    let names: Vec<&str> = dists.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(names, ["bookworm", "jammy"]);
    assert!(sb.repo.join("archs.list").is_file() && sb.repo.join("bess.toml").is_file());
    let err = sb.fails(&["init", sb.repo.to_str().unwrap()]);
    assert!(err.contains("already holds a bess repository"), "{err}");
}

#[test]
fn commands_outside_a_repository_say_how_to_find_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bess"))
        .args(["--repo", dir.path().to_str().unwrap(), "repo", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a bess repository") && err.contains("bess init"),
        "{err}"
    );
}

#[test]
fn ingest_every_compression_into_every_dist_as_hard_links() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm,jammy", "amd64,arm64");
    let input = sb.path("in");
    for (name, comp) in [
        ("hello-gz", "gzip"),
        ("hello-xz", "xz"),
        ("hello-zst", "zstd"),
    ] {
        DebSpec::new(name, "1.0-1", "amd64")
            .compression(comp)
            .build(&input);
    }
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    let listed = rows(&sb.json(&["repo", "list"]));
    assert_eq!(listed.len(), 6, "3 packages × 2 dists: {listed:?}");
    assert!(listed.iter().all(|r| r.3 == "preprod" && r.1 == "1.0-1"));
    assert_eq!(sb.pool_objects().len(), 3, "each package stored once");
    let published = sb.published("preprod", "main/h/hello-xz/hello-xz_1.0-1_amd64.deb");
    let object = sb
        .pool_objects()
        .into_iter()
        .find(|p| inode(p) == inode(&published))
        .expect("published file is a hard link to a pool object");
    assert_eq!(
        std::fs::read(&object).unwrap(),
        std::fs::read(input.join("hello-xz_1.0-1_amd64.deb")).unwrap()
    );
}

#[test]
fn epochs_arch_all_and_lib_prefixes_in_the_pool_layout() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    DebSpec::new("tool", "2:1.5-3", "amd64").build(&input);
    DebSpec::new("data-common", "0.1", "all").build(&input);
    DebSpec::new("libfoo1", "1.2-1", "amd64")
        .field("Source", "libfoo (1.2-1)")
        .build(&input);
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    let listed = rows(&sb.json(&["repo", "list", "--channel", "preprod"]));
    let versions: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str()))
        .collect();
    assert_eq!(
        versions,
        [
            ("data-common", "0.1", "all"),
            ("libfoo1", "1.2-1", "amd64"),
            ("tool", "2:1.5-3", "amd64")
        ]
    );
    for rel in [
        "main/t/tool/tool_1.5-3_amd64.deb",
        "main/d/data-common/data-common_0.1_all.deb",
        "main/libf/libfoo/libfoo1_1.2-1_amd64.deb",
    ] {
        assert!(sb.published("preprod", rel).is_file(), "{rel} is published");
    }
}

#[test]
fn dist_specific_packages_by_flag_and_by_rule() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm,jammy", "amd64");
    let settings = sb.repo.join("bess.toml");
    let mut toml = std::fs::read_to_string(&settings).unwrap();
    toml.push_str("\n[[dist-rule]]\nversion-contains = \"~jammy\"\ndists = [\"jammy\"]\n");
    std::fs::write(&settings, toml).unwrap();
    let input = sb.path("in");
    let php = DebSpec::new("php8.2-cli", "8.2.7-1+deb12u1", "amd64").build(&input);
    let jammy = DebSpec::new("php8.2-cli", "8.2.7-1~jammy1", "amd64").build(&sb.path("in2"));
    sb.ok(&[
        "repo",
        "ingest",
        "--dist",
        "bookworm",
        php.to_str().unwrap(),
    ]);
    sb.ok(&["repo", "ingest", jammy.to_str().unwrap()]);
    let listed = rows(&sb.json(&["repo", "list"]));
    let placed: Vec<(&str, &str)> = listed
        .iter()
        .map(|r| (r.1.as_str(), r.4.as_str()))
        .collect();
    assert_eq!(
        placed,
        [("8.2.7-1~jammy1", "jammy"), ("8.2.7-1+deb12u1", "bookworm")]
    );
    let err = sb.fails(&["repo", "ingest", "--dist", "trixie", php.to_str().unwrap()]);
    assert!(
        err.contains("unknown dist `trixie`") && err.contains("dists.list"),
        "{err}"
    );
}

#[test]
fn reingest_is_a_noop_and_different_bytes_are_refused() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let first = DebSpec::new("app", "1.0", "amd64")
        .payload("one")
        .build(&sb.path("a"));
    let other = DebSpec::new("app", "1.0", "amd64")
        .payload("two")
        .build(&sb.path("b"));
    sb.ok(&["repo", "ingest", first.to_str().unwrap()]);
    let again = sb.json(&["repo", "ingest", first.to_str().unwrap()]);
    assert_eq!(again[0]["new"], false);
    assert_eq!(again[0]["placements_added"], 0);
    let err = sb.fails(&["repo", "ingest", other.to_str().unwrap()]);
    let sha = |p: &Path| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
    };
    assert!(
        err.contains("app 1.0 (amd64)") && err.contains(&sha(&first)) && err.contains(&sha(&other)),
        "{err}"
    );
    assert_eq!(
        sb.pool_objects().len(),
        1,
        "the refused upload stored nothing"
    );
    assert_eq!(
        std::fs::read_dir(sb.repo.join("tmp")).unwrap().count(),
        0,
        "no temp file left"
    );
}

#[test]
fn two_spellings_of_one_version_are_refused() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let first = DebSpec::new("app", "1.0", "amd64").build(&sb.path("a"));
    sb.ok(&["repo", "ingest", first.to_str().unwrap()]);
    // dpkg orders 1.0-0 like 1.0: apt would see two equal versions.
    let respelled = DebSpec::new("app", "1.0-0", "amd64").build(&sb.path("b"));
    let err = sb.fails(&["repo", "ingest", respelled.to_str().unwrap()]);
    assert!(
        err.contains("app 1.0-0 (amd64)") && err.contains("as 1.0 (already in the repository)"),
        "{err}"
    );
    // Within one upload too, and nothing of it is taken.
    let both = sb.path("c");
    DebSpec::new("tool", "01", "amd64").build(&both);
    DebSpec::new("tool", "1", "amd64").build(&both);
    let err = sb.fails(&["repo", "ingest", both.to_str().unwrap()]);
    assert!(
        err.contains("tool ") && err.contains("spelled differently"),
        "{err}"
    );
    assert_eq!(rows(&sb.json(&["repo", "list"])).len(), 1, "only app 1.0");
    // A version that sorts apart is fine.
    let next = DebSpec::new("app", "1.0-1", "amd64").build(&sb.path("d"));
    sb.ok(&["repo", "ingest", next.to_str().unwrap()]);
}

/// Within one upload, across the batches an ingest reads its files in:
/// the same file twice is taken once, and two different files claiming
/// one identity refuse the whole upload, naming both.
#[test]
fn duplicates_within_one_upload_across_batches() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let upload = sb.path("upload");
    // More files than one batch (512), the twins in different batches.
    for i in 0..600 {
        DebSpec::new(&format!("pkg{i:03}"), "1.0", "amd64").build(&upload.join("a"));
    }
    let twin = DebSpec::new("twin", "2.0", "amd64").build(&upload.join("a"));
    std::fs::create_dir_all(upload.join("z")).unwrap();
    std::fs::copy(&twin, upload.join("z/twin-copy.deb")).unwrap();
    let landed = sb.json(&["repo", "ingest", upload.to_str().unwrap()]);
    assert_eq!(
        landed.as_array().unwrap().len(),
        601,
        "the copy is taken once"
    );
    assert_eq!(rows(&sb.json(&["repo", "list"])).len(), 601);

    let clash = sb.path("clash");
    let one = DebSpec::new("app", "3.0", "amd64")
        .payload("one")
        .build(&clash.join("a"));
    for i in 0..600 {
        DebSpec::new(&format!("more{i:03}"), "1.0", "amd64").build(&clash.join("b"));
    }
    let two = DebSpec::new("app", "3.0", "amd64")
        .payload("two")
        .build(&clash.join("c"));
    let objects = sb.pool_objects().len();
    let err = sb.fails(&["repo", "ingest", clash.to_str().unwrap()]);
    assert!(
        err.contains(one.to_str().unwrap())
            && err.contains(two.to_str().unwrap())
            && err.contains("but differ"),
        "{err}"
    );
    assert_eq!(
        rows(&sb.json(&["repo", "list"])).len(),
        601,
        "nothing of it"
    );
    assert_eq!(sb.pool_objects().len(), objects, "nothing stored");
    assert_eq!(std::fs::read_dir(sb.repo.join("tmp")).unwrap().count(), 0);
}

#[test]
fn versions_diff_promote_remove() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm,jammy", "amd64");
    let input = sb.path("in");
    for v in ["1.0-1", "1.10-1", "1.9-1", "1:0.1-1"] {
        DebSpec::new("app", v, "amd64").build(&input);
    }
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    let versions = sb.json(&["repo", "versions", "app"]);
    let order: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["1:0.1-1", "1.10-1", "1.9-1", "1.0-1"],
        "newest first, dpkg order"
    );

    assert_eq!(
        sb.json(&["repo", "diff", "preprod", "prod"])
            .as_array()
            .unwrap()
            .len(),
        8
    );
    sb.ok(&["repo", "promote", "app=1.9-1"]);
    sb.ok(&["repo", "promote", "app=1.10-1", "--dist", "jammy"]);
    let prod = rows(&sb.json(&["repo", "list", "--channel", "prod"]));
    let prod: Vec<(&str, &str)> = prod.iter().map(|r| (r.1.as_str(), r.4.as_str())).collect();
    assert_eq!(
        prod,
        [
            ("1.9-1", "bookworm"),
            ("1.9-1", "jammy"),
            ("1.10-1", "jammy")
        ]
    );
    let pre = sb.published("preprod", "main/a/app/app_1.9-1_amd64.deb");
    let live = sb.published("prod", "main/a/app/app_1.9-1_amd64.deb");
    assert_eq!(inode(&pre), inode(&live), "promotion stores no new byte");

    let diff = rows(&sb.json(&["repo", "diff", "preprod", "prod", "--dist", "bookworm"]));
    let diff: Vec<&str> = diff.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(diff, ["1.0-1", "1.10-1", "1:0.1-1"]);

    sb.ok(&["repo", "promote", "app"]);
    let newest = rows(&sb.json(&["repo", "list", "--channel", "prod"]));
    assert!(
        newest.iter().any(|r| r.1 == "1:0.1-1" && r.4 == "bookworm"),
        "PKG alone promotes the newest"
    );

    sb.ok(&["repo", "remove", "app=1.9-1", "--channel", "preprod"]);
    assert!(!pre.exists(), "no dist of preprod needs the file any more");
    assert!(live.is_file(), "prod keeps its copy");
    let err = sb.fails(&["repo", "remove", "app=1.9-1", "--channel", "preprod"]);
    assert!(
        err.contains("app=1.9-1") && err.contains("preprod"),
        "{err}"
    );
    let err = sb.fails(&["repo", "promote", "app=7.0"]);
    assert!(err.contains("not in channel `preprod`"), "{err}");
    let err = sb.fails(&["repo", "versions", "nope"]);
    assert!(err.contains("no package named `nope`"), "{err}");
}

#[test]
fn remove_keeps_the_file_while_another_dist_needs_it() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm,jammy", "amd64");
    let deb = DebSpec::new("app", "1.0", "amd64").build(&sb.path("in"));
    sb.ok(&["repo", "ingest", deb.to_str().unwrap()]);
    sb.ok(&[
        "repo",
        "remove",
        "app=1.0",
        "--channel",
        "preprod",
        "--dist",
        "jammy",
    ]);
    assert!(
        sb.published("preprod", "main/a/app/app_1.0_amd64.deb")
            .is_file()
    );
    let left = rows(&sb.json(&["repo", "list"]));
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].4, "bookworm");
}

#[test]
fn concurrent_ingests_all_land() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm,jammy", "amd64");
    let shared = DebSpec::new("shared", "1.0", "all").build(&sb.path("shared"));
    let uploads: Vec<_> = (0..8)
        .map(|i| {
            let dir = sb.path(&format!("batch{i}"));
            for j in 0..5 {
                DebSpec::new(&format!("pkg{i}-{j}"), "1.0", "amd64").build(&dir);
            }
            // Every batch also carries the same bytes of one shared package.
            std::fs::copy(&shared, dir.join("shared_1.0_all.deb")).unwrap();
            dir
        })
        .collect();
    let children: Vec<_> = uploads
        .iter()
        .map(|dir| {
            std::process::Command::new(env!("CARGO_BIN_EXE_bess"))
                .env("BESS_REPO", &sb.repo)
                .args(["repo", "ingest", dir.to_str().unwrap()])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = rows(&sb.json(&["repo", "list"]));
    assert_eq!(listed.len(), (8 * 5 + 1) * 2);
    let objects = sb.pool_objects();
    assert_eq!(
        objects.len(),
        8 * 5 + 1,
        "the shared package is stored once"
    );
    let published = sb.published("preprod", "main/s/shared/shared_1.0_all.deb");
    assert!(
        objects.iter().any(|o| inode(o) == inode(&published)),
        "still a link to the pool object"
    );
}

#[test]
fn bad_files_refuse_the_whole_upload_and_name_the_file() {
    if skip() {
        return;
    }
    let sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    DebSpec::new("good", "1.0", "amd64").build(&input);
    std::fs::write(input.join("broken.deb"), b"!<arch>\nnot really").unwrap();
    DebSpec::new("riscy", "1.0", "riscv64").build(&input);
    let err = sb.fails(&["repo", "ingest", input.to_str().unwrap()]);
    assert!(err.contains("broken.deb"), "{err}");
    assert!(
        err.contains("riscv64") && err.contains("archs.list"),
        "{err}"
    );
    assert!(err.contains("nothing was ingested"), "{err}");
    assert!(sb.pool_objects().is_empty());
    assert!(rows(&sb.json(&["repo", "list"])).is_empty());
    assert_eq!(std::fs::read_dir(sb.repo.join("tmp")).unwrap().count(), 0);
}
