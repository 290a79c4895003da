//! Hostile-input corpus: hand-crafted broken packages must each be refused
//! with a message that points at the actual fault, quickly and without
//! unbounded work.

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
    let header = tar_header("./bomb", Kind::File, 100 << 20);
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
