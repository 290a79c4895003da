//! Hostile-input corpus: hand-crafted broken packages must each be refused
//! with a message that points at the actual fault, quickly and without
//! unbounded work.

mod common;

#[path = "../src/deb/test_support.rs"]
mod test_support;

use bess::deb::inspect;
use proptest::prelude::*;
use std::io::Write;
use std::time::{Duration, Instant};
use test_support::*;

fn good_control_member() -> Vec<u8> {
    gzip(&control_tar(CONTROL))
}

fn good_data_member() -> Vec<u8> {
    xz(&data_tar())
}

/// A package whose control.tar.gz holds these tar entries.
fn deb_with_control_entries(entries: &[(&str, Kind, &[u8])]) -> Vec<u8> {
    deb_with(
        "control.tar.gz",
        &gzip(&tar(entries)),
        "data.tar.xz",
        &good_data_member(),
    )
}

fn refused(name: &str, deb: &[u8], expected: &str) {
    let started = Instant::now();
    let result = inspect(deb);
    let elapsed = started.elapsed();
    let message = match result {
        Ok(info) => panic!("{name}: accepted as {info:?}"),
        Err(err) => err.to_string(),
    };
    assert!(
        message.contains(expected),
        "{name}: expected {expected:?} in: {message}"
    );
    assert!(elapsed < Duration::from_secs(2), "{name}: took {elapsed:?}");
}

/// Replaces the 10-byte size field of the member whose header starts at `at`.
fn with_size_field(mut deb: Vec<u8>, at: usize, size: &str) -> Vec<u8> {
    deb[at + 48..at + 58].copy_from_slice(format!("{size:<10}").as_bytes());
    deb
}

#[test]
fn good_package_is_accepted() {
    let info = inspect(&deb(CONTROL)).unwrap();
    assert_eq!(info.package, "hello");
}

#[test]
fn broken_containers_are_refused() {
    let good = deb(CONTROL);
    let control = good_control_member();
    let data = good_data_member();
    // The control member's header starts after the magic and debian-binary.
    let control_header = 8 + 60 + 4;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty file", Vec::new(), "`!<arch>`"),
        (
            "wrong magic",
            [b"!<arck>\n", &good[8..]].concat(),
            "`!<arch>`",
        ),
        ("tar instead of ar", data_tar(), "`!<arch>`"),
        (
            "truncated in data",
            good[..good.len() - 10].to_vec(),
            "claims",
        ),
        (
            "truncated in a header",
            good[..control_header + 30].to_vec(),
            "member 1 at byte 72: only 30 bytes remain",
        ),
        (
            "size past end of file",
            with_size_field(good.clone(), control_header, "99999999"),
            "member 1 `control.tar.gz` claims 99999999 bytes",
        ),
        (
            "size not a number",
            with_size_field(good.clone(), control_header, "0x20"),
            "size field `0x20",
        ),
        (
            "trailing garbage",
            [&good[..], b"GARBAGE"].concat(),
            "member 3 at byte",
        ),
        (
            "data before control",
            ar_archive(&[
                ("debian-binary", b"2.0\n"),
                ("data.tar.xz", &data),
                ("control.tar.gz", &control),
            ]),
            "member 1 is `data.tar.xz`, expected `control.tar`",
        ),
        (
            "debian-binary not first",
            ar_archive(&[("control.tar.gz", &control), ("debian-binary", b"2.0\n")]),
            "member 0 is `control.tar.gz`, expected `debian-binary`",
        ),
        (
            "unknown member",
            ar_archive(&[
                ("debian-binary", b"2.0\n"),
                ("evil", b"x"),
                ("control.tar.gz", &control),
            ]),
            "member 1 is `evil`",
        ),
        (
            "format 3.0",
            ar_archive(&[
                ("debian-binary", b"3.0\n"),
                ("control.tar.gz", &control),
                ("data.tar.xz", &data),
            ]),
            "`debian-binary` contains `3.0\\n`",
        ),
        (
            "no data member",
            ar_archive(&[("debian-binary", b"2.0\n"), ("control.tar.gz", &control)]),
            "ends without `data.tar`",
        ),
        (
            "data.tar.xz with gzip magic",
            deb_with(
                "control.tar.gz",
                &control,
                "data.tar.xz",
                &gzip(&data_tar()),
            ),
            "`data.tar.xz` does not start with the xz signature (its first bytes are 1f8b",
        ),
        (
            "control.tar.gz holding xz",
            deb_with(
                "control.tar.gz",
                &xz(&control_tar(CONTROL)),
                "data.tar.xz",
                &data,
            ),
            "`control.tar.gz` does not start with the gzip signature",
        ),
        (
            "empty data member",
            deb_with("control.tar.gz", &control, "data.tar.xz", b""),
            "`data.tar.xz` is empty",
        ),
        (
            "truncated control stream",
            deb_with(
                "control.tar.gz",
                &control[..control.len() / 2],
                "data.tar.xz",
                &data,
            ),
            "cannot decompress or read",
        ),
    ];
    for (name, deb, expected) in cases {
        refused(name, &deb, expected);
    }
}

#[test]
fn broken_control_archives_are_refused() {
    let big = vec![b'x'; 2 << 20];
    let mut short = tar(&[("./control", Kind::File, CONTROL.as_bytes())]);
    short.truncate(512 + 20);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "control missing",
            deb_with_control_entries(&[("./", Kind::Dir, b""), ("./md5sums", Kind::File, b"")]),
            "no `control` file",
        ),
        (
            "control as symlink",
            deb_with_control_entries(&[("./control", Kind::Symlink, b"")]),
            "`./control` is a symbolic link, not a regular file",
        ),
        (
            "control as hardlink",
            deb_with_control_entries(&[("./control", Kind::Hardlink, b"")]),
            "`./control` is a hard link",
        ),
        (
            "control as directory",
            deb_with_control_entries(&[("./control/", Kind::Dir, b"")]),
            "`./control/` is a directory",
        ),
        (
            "fifo in control.tar",
            deb_with_control_entries(&[("./fifo", Kind::Fifo, b"")]),
            "`./fifo` is a named pipe",
        ),
        (
            "control over 1 MiB",
            deb_with_control_entries(&[("./control", Kind::File, &big)]),
            "more than the 1 MiB allowed",
        ),
        (
            "control cut short",
            deb_with("control.tar", &short, "data.tar.xz", &good_data_member()),
            "cannot decompress or read",
        ),
    ];
    for (name, deb, expected) in cases {
        refused(name, &deb, expected);
    }
}

#[test]
fn broken_control_files_are_refused() {
    let with = |extra: &str| deb(&format!("{CONTROL}{extra}"));
    let replaced = |from: &str, to: &str| deb(&CONTROL.replace(from, to));
    let mut invalid_utf8 = CONTROL.as_bytes().to_vec();
    invalid_utf8.extend_from_slice(b"X-Bad: \xc3\x28\n");
    let utf8_offset = format!(
        "not valid UTF-8 (first bad byte at offset {})",
        CONTROL.len() + 7
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "duplicate field",
            with("Version: 2\n"),
            "line 7: field `Version` appears a second time (first on line 2)",
        ),
        ("NUL byte", with("X: a\0b\n"), "line 7: contains a NUL byte"),
        (
            "invalid UTF-8",
            deb_with_control_entries(&[("./control", Kind::File, &invalid_utf8)]),
            &utf8_offset,
        ),
        (
            "comment line",
            with("# built by hand\n"),
            "line 7: comment line",
        ),
        (
            "two paragraphs",
            with("\nPackage: other\n"),
            "line 7: blank line inside the paragraph",
        ),
        (
            "CRLF",
            deb(&CONTROL.replace('\n', "\r\n")),
            "line 1: contains a carriage return",
        ),
        (
            "missing Maintainer",
            replaced("Maintainer: A <a@example.org>\n", ""),
            "lacks the required field `Maintainer`",
        ),
        (
            "bad package name",
            replaced("Package: hello", "Package: Hello_World"),
            "field `Package`: `Hello_World` is not a valid package name",
        ),
        (
            "bad version",
            replaced("1:2.10-3", "1.0 beta"),
            "field `Version`: `1.0 beta` is not a Debian version: whitespace is not allowed (Debian Policy 5.6.12)",
        ),
        (
            "version without digit",
            replaced("1:2.10-3", "latest"),
            "field `Version`: `latest` is not a Debian version: the upstream version must start with a digit",
        ),
        (
            "huge epoch",
            replaced("1:2.10-3", "99999999999:1"),
            "larger than 2147483647",
        ),
        (
            "wildcard architecture",
            replaced("amd64", "linux-any"),
            "field `Architecture`: `linux-any` is not a binary architecture",
        ),
        (
            "bad architecture",
            replaced("amd64", "AMD64"),
            "field `Architecture`: `AMD64` is not a valid architecture name",
        ),
        (
            "bad source version",
            with("Source: hello (1.0 beta)\n"),
            "field `Source`: `1.0 beta` is not a Debian version",
        ),
        (
            "bad source syntax",
            with("Source: hello (1.0\n"),
            "field `Source`: `hello (1.0` is neither",
        ),
    ];
    for (name, deb, expected) in cases {
        refused(name, &deb, expected);
    }
}

/// Writes a control.tar whose first entry claims 100 MiB of zeros, without
/// ever holding those zeros in memory.
fn write_bomb<W: Write>(mut writer: W) -> W {
    let header = tar_header("./md5sums", Kind::File, 100 << 20);
    writer.write_all(header.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..100 {
        writer.write_all(&zeros).unwrap();
    }
    writer
}

#[test]
fn decompression_bombs_stop_early() {
    let gz = write_bomb(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ))
    .finish()
    .unwrap();
    let zst = write_bomb(zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap())
        .finish()
        .unwrap();
    assert!(
        gz.len() < 1 << 20,
        "the gzip bomb should be small: {} bytes",
        gz.len()
    );
    let data = good_data_member();
    let gz_deb = deb_with("control.tar.gz", &gz, "data.tar.xz", &data);
    refused("gzip bomb", &gz_deb, "decompresses to more than 16 MiB");
    let zst_deb = deb_with("control.tar.zst", &zst, "data.tar.xz", &data);
    refused("zstd bomb", &zst_deb, "decompresses to more than 16 MiB");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Damaged packages are refused or accepted, never a panic.
    #[test]
    fn mutations_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate: bool,
    ) {
        let mut deb = deb(CONTROL);
        for (at, byte) in flips {
            let at = at.index(deb.len());
            deb[at] = byte;
        }
        if truncate {
            deb.truncate(cut.index(deb.len()));
        }
        let _ = inspect(&deb);
    }
}

/// Control archives built by the real `tar`, packed by the real `ar`
/// around the data member of a `dpkg-deb` package, and offered to `bess
/// repo ingest`. dpkg installs the last of two `./control` members while
/// apt would be told about the first; it extracts absolute and `..` paths
/// wherever they point, and refuses directories in its metadata.
mod control_members {
    use super::common::{DebSpec, Sandbox, have_tool};
    use super::test_support::{Kind, tar, tar_header};
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn skip() -> bool {
        !["dpkg-deb", "tar", "ar", "gzip", "mkfifo"]
            .iter()
            .all(|tool| have_tool(tool))
    }

    /// Runs `program` in `dir`; it must succeed.
    fn run(program: &str, args: &[&str], dir: &Path) {
        let out = Command::new(program)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    const SHOWN: &str = "Package: shown\nVersion: 1.0\nArchitecture: all\nMaintainer: T <t@example.org>\nDescription: what apt would be told\n";
    const HIDDEN: &str = "Package: hidden\nVersion: 9.0\nArchitecture: all\nMaintainer: T <t@example.org>\nDescription: what dpkg would install\n";

    /// A fresh directory `dir/name/` holding `control`.
    fn staging(dir: &Path, name: &str, control: &str) -> PathBuf {
        let at = dir.join(name);
        fs::create_dir_all(&at).unwrap();
        fs::write(at.join("control"), control).unwrap();
        at
    }

    /// Runs `tar -cf control.tar ARGS` in `at` (root-owned entries, as
    /// dpkg-deb writes them) and returns where the archive is.
    fn real_tar(at: &Path, args: &[&str]) -> PathBuf {
        let mut all = vec!["--owner=0", "--group=0", "-cf", "control.tar"];
        all.extend_from_slice(args);
        run("tar", &all, at);
        at.join("control.tar")
    }

    /// `debian-binary`, the gzipped `control_tar` and the data member of a
    /// real package, packed by `ar` into `dir/<name>.deb`.
    fn pack(dir: &Path, name: &str, control_tar: &Path) -> PathBuf {
        let donor = DebSpec::new("donor", "1.0", "all").build(&dir.join("donor"));
        let parts = dir.join(format!("{name}.parts"));
        fs::create_dir_all(&parts).unwrap();
        run("ar", &["x", donor.to_str().unwrap()], &parts);
        fs::copy(control_tar, parts.join("control.tar")).unwrap();
        run("gzip", &["-n", "control.tar"], &parts);
        let deb = dir.join(format!("{name}.deb"));
        let deb_arg = deb.to_str().unwrap();
        let members = ["debian-binary", "control.tar.gz", "data.tar.xz"];
        run("ar", &[&["rcD", deb_arg][..], &members].concat(), &parts);
        deb
    }

    /// Each hostile package and what the refusal must say.
    fn hostile(dir: &Path) -> Vec<(&'static str, PathBuf, Vec<&'static str>)> {
        let mut cases = Vec::new();

        let first = staging(dir, "twice", SHOWN);
        let tar_path = real_tar(&first, &["./control"]);
        let second = staging(dir, "twice-second", HIDDEN);
        run(
            "tar",
            &["-rf", tar_path.to_str().unwrap(), "./control"],
            &second,
        );
        let expected = vec!["`./control` appears twice (tar entries 0 and 1)"];
        cases.push(("twice", tar_path, expected));

        let absolute = staging(dir, "absolute", SHOWN);
        fs::write(absolute.join("evil"), "* * * * * root id\n").unwrap();
        let rename = "s,^\\./evil$,/etc/cron.d/evil,";
        let args = ["-P", "--transform", rename, "./control", "./evil"];
        let expected = vec!["`/etc/cron.d/evil` is an absolute path"];
        cases.push(("absolute", real_tar(&absolute, &args), expected));

        let parent = staging(dir, "parent", SHOWN);
        fs::write(parent.join("evil"), "x\n").unwrap();
        let rename = "s,^\\./evil$,./../../etc/evil,";
        let args = ["-P", "--transform", rename, "./control", "./evil"];
        let expected = vec!["`./../../etc/evil` has a `..` component"];
        cases.push(("parent", real_tar(&parent, &args), expected));

        let linked = staging(dir, "linked", SHOWN);
        fs::hard_link(linked.join("control"), linked.join("md5sums")).unwrap();
        let expected = vec!["tar entry `./md5sums` is a hard link"];
        let tar_path = real_tar(&linked, &["./control", "./md5sums"]);
        cases.push(("hard link", tar_path, expected));

        let fifo = staging(dir, "fifo", SHOWN);
        run("mkfifo", &["triggers"], &fifo);
        let expected = vec!["tar entry `./triggers` is a named pipe"];
        cases.push((
            "fifo",
            real_tar(&fifo, &["./control", "./triggers"]),
            expected,
        ));

        let unknown = staging(dir, "unknown", SHOWN);
        fs::write(unknown.join("evil"), "#!/bin/sh\n").unwrap();
        let expected = vec![
            "tar entry `./evil` is not a control file dpkg knows",
            "control, md5sums, conffiles",
        ];
        cases.push((
            "unknown",
            real_tar(&unknown, &["./control", "./evil"]),
            expected,
        ));

        let symlink = staging(dir, "symlink", SHOWN);
        std::os::unix::fs::symlink("/etc/shadow", symlink.join("conffiles")).unwrap();
        let expected = vec!["tar entry `./conffiles` is a symbolic link"];
        let tar_path = real_tar(&symlink, &["./control", "./conffiles"]);
        cases.push(("symlinked conffiles", tar_path, expected));

        let nested = staging(dir, "nested", SHOWN);
        fs::create_dir_all(nested.join("sub")).unwrap();
        fs::write(nested.join("sub/postinst"), "#!/bin/sh\n").unwrap();
        let expected = vec!["tar entry `./sub/` is a directory"];
        cases.push((
            "subdirectory",
            real_tar(&nested, &["./control", "./sub"]),
            expected,
        ));

        // Device nodes need root to make: the tar crate writes the entry.
        let device = dir.join("device");
        fs::create_dir_all(&device).unwrap();
        let mut entries = tar(&[("./control", Kind::File, SHOWN.as_bytes())]);
        entries.truncate(entries.len() - 1024);
        let mut header = tar_header("./preinst", Kind::File, 0);
        header.set_entry_type(tar::EntryType::Char);
        header.set_cksum();
        entries.extend_from_slice(header.as_bytes());
        entries.extend_from_slice(&[0; 1024]);
        fs::write(device.join("control.tar"), entries).unwrap();
        let expected = vec!["tar entry `./preinst` is a character device"];
        cases.push(("device", device.join("control.tar"), expected));

        cases
            .into_iter()
            .map(|(name, tar, expected)| (name, pack(dir, name, &tar), expected))
            .collect()
    }

    #[test]
    fn hostile_control_archives_are_refused_by_ingest() {
        if skip() {
            return;
        }
        let sb = Sandbox::new("bookworm", "amd64");
        for (name, deb, expected) in hostile(&sb.path("hostile")) {
            let stderr = sb.fails(&["repo", "ingest", deb.to_str().unwrap()]);
            assert!(
                stderr.contains(deb.to_str().unwrap()) && stderr.contains("control.tar.gz"),
                "{name}: the message names the file and the member: {stderr}"
            );
            for fragment in expected {
                assert!(
                    stderr.contains(fragment),
                    "{name}: {fragment:?} in: {stderr}"
                );
            }
        }
        let listed = sb.json(&["repo", "list"]);
        assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed:#}");
    }

    /// A package as dpkg-deb builds it from `DEBIAN/` with these extra files.
    fn dpkg_built(dir: &Path, name: &str, extra: &[(&str, &str)]) -> PathBuf {
        let root = dir.join(name);
        let debian = root.join("DEBIAN");
        fs::create_dir_all(&debian).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc").join(format!("{name}.conf")), "x\n").unwrap();
        let control = SHOWN.replace("shown", name);
        fs::write(debian.join("control"), control).unwrap();
        for (file, text) in extra {
            let path = debian.join(file);
            if let Some(target) = text.strip_prefix("->") {
                std::os::unix::fs::symlink(target, &path).unwrap();
                continue;
            }
            fs::write(&path, text.replace("NAME", name)).unwrap();
            let script = ["preinst", "postinst", "prerm", "postrm", "config"].contains(file);
            let mode = if script { 0o755 } else { 0o644 };
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        }
        let deb = dir.join(format!("{name}.deb"));
        let args = ["--root-owner-group", "--build", name, deb.to_str().unwrap()];
        run("dpkg-deb", &args, dir);
        deb
    }

    #[test]
    fn every_control_file_dpkg_knows_is_accepted_and_scripts_may_be_symlinks() {
        if skip() {
            return;
        }
        let sb = Sandbox::new("bookworm", "amd64");
        let dir = sb.path("built");
        let script = "#!/bin/sh\nexit 0\n";
        let full = dpkg_built(
            &dir,
            "full",
            &[
                (
                    "md5sums",
                    "d41d8cd98f00b204e9800998ecf8427e  etc/NAME.conf\n",
                ),
                ("conffiles", "/etc/NAME.conf\n"),
                ("preinst", script),
                ("postinst", script),
                ("prerm", script),
                ("postrm", script),
                ("config", script),
                (
                    "templates",
                    "Template: NAME/q\nType: boolean\nDescription: q?\n",
                ),
                ("shlibs", "libNAME 1 NAME\n"),
                ("symbols", "libNAME.so.1 NAME #MINVER#\n f@Base 1.0\n"),
                ("triggers", "interest-noawait /usr/lib/NAME\n"),
                ("clilibs", "NAME.dll NAME\n"),
            ],
        );
        // dpkg-deb --build lets maintainer scripts be symbolic links.
        let linked = dpkg_built(&dir, "linked", &[("postinst", "->/bin/true")]);
        for deb in [&full, &linked] {
            sb.ok(&["repo", "ingest", deb.to_str().unwrap()]);
        }
        let listed = sb.json(&["repo", "list"]);
        assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed:#}");
    }
}
