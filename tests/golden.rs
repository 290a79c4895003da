//! Byte-exact publication output for a fixed clock.

mod common;

use common::{DebSpec, Sandbox, have_tool};
use std::path::Path;

/// The Release text up to the checksums, and the index files, are
/// byte-for-byte what tests/golden holds for a fixed clock and packages
/// built with a fixed SOURCE_DATE_EPOCH. Regenerate with
/// `BESS_UPDATE_GOLDEN=1 cargo test --test golden`.
#[test]
fn golden_release_and_packages_with_a_fixed_clock() {
    if !have_tool("dpkg-deb") {
        return;
    }
    // dpkg-deb clamps mtimes to SOURCE_DATE_EPOCH; bess dates the Release with it.
    let epoch = "1700000000";
    let mut sb = Sandbox::new("bookworm", "amd64");
    sb.env.push(("SOURCE_DATE_EPOCH".into(), epoch.into()));
    let input = sb.path("in");
    DebSpec::new("golden", "1:2.0-1", "amd64")
        .field("Depends", "libc6 (>= 2.36)")
        .field(
            "Description",
            "a golden package\n with a long description\n .\n and a second paragraph",
        )
        .epoch(epoch)
        .build(&input);
    DebSpec::new("golden-doc", "2.0-1", "all")
        .epoch(epoch)
        .build(&input);
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    let dist = sb.repo.join("public/preprod/dists/bookworm");
    let release = std::fs::read_to_string(dist.join("Release")).unwrap();
    let packages = common::read_xz(&dist.join("main/binary-amd64/Packages.xz"));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for (name, actual) in [("Release", release), ("Packages", packages)] {
        let path = golden.join(name);
        if std::env::var("BESS_UPDATE_GOLDEN").is_ok() {
            std::fs::create_dir_all(&golden).unwrap();
            std::fs::write(&path, &actual).unwrap();
        }
        let expected =
            std::fs::read_to_string(&path).expect("golden file; see the test's doc comment");
        assert_eq!(actual, expected, "{name} differs from tests/golden/{name}");
    }
}
