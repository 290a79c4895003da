//! Differential test: packages built by the real `dpkg-deb` must inspect to
//! exactly what `dpkg-deb -f` reports, field by field.

mod common;

use common::have_tool;

use bess::deb::{DebInfo, inspect};
use std::fs;
use std::path::Path;
use std::process::Command;

struct Case {
    compression: &'static str,
    control: &'static str,
    package: &'static str,
    version: &'static str,
    architecture: &'static str,
    source: &'static str,
}

const CASES: &[Case] = &[
    Case {
        compression: "gzip",
        control: "Package: hello\nVersion: 2.10-3\nArchitecture: amd64\nMaintainer: Jane Doe <jane@example.org>\nInstalled-Size: 12\nDepends: libc6 (>= 2.34)\nSection: misc\nPriority: optional\nDescription: greet the world\n GNU hello prints a greeting.\n .\n It is an example.\n",
        package: "hello",
        version: "2.10-3",
        architecture: "amd64",
        source: "hello",
    },
    Case {
        compression: "xz",
        control: "Package: libfoo1\nSource: foo (1.2-3)\nVersion: 1:1.2-3+b1\nArchitecture: arm64\nMulti-Arch: same\nMaintainer: José Núñez <jose@example.org>\nPre-Depends: libc6 (>= 2.36)\nX-Odd: ${misc:Pre-Depends} : x\nDescription: foo library\n  indented twice\n\tand a tab\n",
        package: "libfoo1",
        version: "1:1.2-3+b1",
        architecture: "arm64",
        source: "foo",
    },
    Case {
        compression: "zstd",
        control: "Package: foo-data\nVersion: 0:3.0~rc1\nArchitecture: all\nSource: foo\nMaintainer: A <a@example.org>\nX-Empty-First:\n first\n second\nHomepage: https://example.org:8080/x\nDescription: data for foo\n",
        package: "foo-data",
        version: "0:3.0~rc1",
        architecture: "all",
        source: "foo",
    },
    Case {
        compression: "none",
        control: "Package: g++-12\nVersion: 12.2.0-14\nArchitecture: hurd-i386\nMaintainer: B <b@example.org>\nDescription: plain tar members\n",
        package: "g++-12",
        version: "12.2.0-14",
        architecture: "hurd-i386",
        source: "g++-12",
    },
];

fn build(dir: &Path, case: &Case) -> Vec<u8> {
    let root = dir.join(case.compression);
    fs::create_dir_all(root.join("DEBIAN")).unwrap();
    fs::create_dir_all(root.join("usr/share/doc/x")).unwrap();
    fs::write(root.join("DEBIAN/control"), case.control).unwrap();
    fs::write(root.join("usr/share/doc/x/README"), "hello\n").unwrap();
    let deb = dir.join(format!("{}.deb", case.compression));
    let status = Command::new("dpkg-deb")
        .args([
            "--root-owner-group",
            &format!("-Z{}", case.compression),
            "--build",
        ])
        .arg(&root)
        .arg(&deb)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "dpkg-deb --build failed for {}",
        case.compression
    );
    fs::read(deb).unwrap()
}

/// `dpkg-deb -f DEB [FIELD]`: one field's value, or the whole control file.
fn dpkg_fields(deb: &Path, field: Option<&str>) -> String {
    let out = Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .args(field)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-deb -f {field:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn check_against_dpkg(deb: &Path, info: &DebInfo, case: &Case) {
    for (name, value) in info.control.fields() {
        // dpkg reformats the version it parsed, dropping a zero epoch.
        let ours = match name {
            "Version" => info.version.canonical(),
            _ => value.to_owned(),
        };
        let theirs = dpkg_fields(deb, Some(name));
        assert_eq!(
            theirs,
            format!("{ours}\n"),
            "{}: field {name}",
            case.compression
        );
    }
    // Without field names dpkg-deb prints the control file as stored.
    let mut rendered = String::new();
    info.control.write_to(&mut rendered);
    assert_eq!(dpkg_fields(deb, None), rendered, "{}", case.compression);
}

#[test]
fn agrees_with_dpkg_deb() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for case in CASES {
        let bytes = build(dir.path(), case);
        let info = inspect(&bytes).unwrap_or_else(|err| panic!("{}: {err}", case.compression));
        assert_eq!(info.package, case.package);
        assert_eq!(info.version.as_str(), case.version);
        assert_eq!(info.architecture, case.architecture);
        assert_eq!(info.source, case.source);
        let written = case
            .control
            .lines()
            .filter(|line| !line.starts_with([' ', '\t']))
            .count();
        assert_eq!(info.control.len(), written, "{}", case.compression);
        check_against_dpkg(
            &dir.path().join(format!("{}.deb", case.compression)),
            &info,
            case,
        );
    }
}

#[test]
fn drops_computed_fields_that_dpkg_deb_keeps() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let case = Case {
        compression: "gzip",
        control: "Package: sneaky\nVersion: 1.0\nArchitecture: all\nMaintainer: M <m@example.org>\nSize: 99\nMD5sum: abc\nsha256: def\nFilename: pool/evil.deb\nDescription: claims its own hashes\n",
        package: "sneaky",
        version: "1.0",
        architecture: "all",
        source: "sneaky",
    };
    let bytes = build(dir.path(), &case);
    let info = inspect(&bytes).unwrap();
    let names: Vec<_> = info.control.fields().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            "Package",
            "Version",
            "Architecture",
            "Maintainer",
            "Description"
        ]
    );
    // dpkg-deb itself kept them: the package really carries them.
    let stored = dpkg_fields(&dir.path().join("gzip.deb"), None);
    assert!(stored.contains("\nFilename: pool/evil.deb\n"), "{stored}");
}
