//! Every input the fuzzers (`fuzz/run`) ever found to crash or hang bess,
//! replayed through the same entry points, plus the edges each parser
//! must survive. A panic here is a regression of a fixed fault.

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 6] = [
    ("deb_package", bess::fuzz_targets::deb_package),
    ("deb_control", bess::fuzz_targets::deb_control),
    ("deb_version", bess::fuzz_targets::deb_version),
    ("http_request", bess::fuzz_targets::http_request),
    ("settings", bess::fuzz_targets::settings),
    ("box_archive", bess::fuzz_targets::box_archive),
];

#[test]
fn every_saved_finding_is_handled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            target(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} saved findings");
}

#[test]
fn every_target_survives_the_edges() {
    let long = vec![b'7'; 1 << 20];
    let edges: [&[u8]; 8] = [
        b"",
        b"\0",
        b"!<arch>\n",
        b"!<arch>\ndebian-binary   0           0     0     100644  99999999999`\n",
        b"\xff\xfe\n\n\n\n\n",
        b"Package: a\nVersion: 1:\n",
        b"[serve]\nmax-connections = 0\n[serve.hosts]\n\"a..b\" = \"prod\"\n",
        &long,
    ];
    for (_, target) in TARGETS {
        for edge in edges {
            target(edge);
        }
    }
}
