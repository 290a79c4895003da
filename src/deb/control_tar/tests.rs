//! Unit tests for extracting `control` from control.tar with size caps.

use super::*;
use crate::deb::ar::Member;
use crate::deb::test_support::*;
use std::io::Write;

fn tarball(compression: Compression, data: &[u8]) -> Tarball<'_> {
    Tarball {
        member: Member {
            index: 1,
            name: b"control.tar.x",
            data,
        },
        compression,
    }
}

fn read(compression: Compression, data: &[u8]) -> Result<Vec<u8>, ControlTarError> {
    read_control(&tarball(compression, data))
}

fn read_err(compression: Compression, data: &[u8]) -> String {
    match read(compression, data) {
        Ok(control) => panic!("accepted: {}", String::from_utf8_lossy(&control)),
        Err(err) => err.to_string(),
    }
}

#[test]
fn reads_control_from_every_compression() {
    let tar = control_tar(CONTROL);
    let cases = [
        (Compression::None, tar.clone()),
        (Compression::Gzip, gzip(&tar)),
        (Compression::Xz, xz(&tar)),
        (Compression::Zstd, zstd(&tar)),
    ];
    for (compression, data) in cases {
        assert_eq!(
            read(compression, &data).unwrap(),
            CONTROL.as_bytes(),
            "{compression:?}"
        );
    }
}

#[test]
fn accepts_plain_control_path_and_skips_other_entries() {
    let tar = tar(&[
        ("postinst", Kind::File, b"#!/bin/sh\n"),
        ("prerm", Kind::Symlink, b""),
        ("control", Kind::File, b"Package: x\n"),
    ]);
    assert_eq!(read(Compression::None, &tar).unwrap(), b"Package: x\n");
}

#[test]
fn reads_past_control_to_the_end() {
    // Whatever follows `control` is read too: a broken entry after it is
    // refused like one before it.
    let mut tar = tar(&[("./control", Kind::File, b"Package: x\n")]);
    tar.truncate(1024);
    tar.extend_from_slice(&[0xAA; 512]);
    let message = read_err(Compression::None, &tar);
    assert!(message.contains("cannot decompress or read"), "{message}");
}

#[test]
fn a_damaged_control_is_caught_by_the_stream_checksum() {
    let tar = control_tar(CONTROL);
    // Change one byte of a stored (level 0) copy of `control`: the tar
    // headers stay intact, only the gzip CRC at the end can tell.
    let mut stored = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    stored.write_all(&tar).unwrap();
    let mut gz = stored.finish().unwrap();
    let at = find(&gz, b"Package: hello").unwrap();
    gz[at] = b'p';
    let message = read_err(Compression::Gzip, &gz);
    assert!(message.contains("corrupt"), "{message}");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn refuses_entries_dpkg_does_not_expect() {
    let control = ("./control", Kind::File, CONTROL.as_bytes());
    let cases: [(Vec<u8>, &str); 7] = [
        (
            tar(&[control, ("./control", Kind::File, b"Package: other\n")]),
            "`./control` appears twice (tar entries 0 and 1)",
        ),
        (
            tar(&[
                control,
                ("./md5sums", Kind::File, b""),
                ("md5sums", Kind::File, b""),
            ]),
            "`md5sums` appears twice (tar entries 1 and 2)",
        ),
        (
            tar(&[control, ("/etc/cron.d/evil", Kind::File, b"x")]),
            "tar entry `/etc/cron.d/evil` is an absolute path",
        ),
        (
            tar(&[control, ("./../evil", Kind::File, b"x")]),
            "tar entry `./../evil` has a `..` component",
        ),
        (
            tar(&[control, ("./sub/postinst", Kind::File, b"x")]),
            "tar entry `./sub/postinst` is in a subdirectory",
        ),
        (
            tar(&[control, ("./evil", Kind::File, b"x")]),
            "tar entry `./evil` is not a control file dpkg knows (control, md5sums, conffiles, preinst",
        ),
        (
            tar(&[control, ("./conffiles", Kind::Symlink, b"")]),
            "tar entry `./conffiles` is a symbolic link; a control archive holds regular files, and maintainer scripts (preinst, postinst, prerm, postrm, config) may be symbolic links",
        ),
    ];
    for (data, expected) in cases {
        let message = read_err(Compression::None, &data);
        assert!(message.contains(expected), "{expected}: {message}");
        assert!(message.contains("dpkg-deb --build"), "{message}");
    }
}

#[test]
fn accepts_every_known_member_and_symlinked_scripts() {
    let mut entries = vec![("./", Kind::Dir, &b""[..])];
    let names: Vec<String> = members::KNOWN.iter().map(|n| format!("./{n}")).collect();
    for name in &names {
        let data = if name == "./control" {
            CONTROL.as_bytes()
        } else {
            b"x\n"
        };
        entries.push((name, Kind::File, data));
    }
    assert_eq!(
        read(Compression::None, &tar(&entries)).unwrap(),
        CONTROL.as_bytes()
    );
    for script in members::SCRIPTS {
        let link = format!("./{script}");
        let data = tar(&[
            ("./control", Kind::File, b"Package: x\n"),
            (&link, Kind::Symlink, b""),
        ]);
        assert!(read(Compression::None, &data).is_ok(), "{script}");
    }
}

#[test]
fn refuses_missing_or_special_control() {
    let cases: [(Vec<u8>, &str); 6] = [
        (
            tar(&[("./md5sums", Kind::File, b"")]),
            "member 1 `control.tar.x`: there is no `control` file",
        ),
        (
            tar(&[("./control", Kind::Symlink, b"")]),
            "`./control` is a symbolic link, not a regular file",
        ),
        (
            tar(&[("./control", Kind::Hardlink, b"")]),
            "`./control` is a hard link",
        ),
        (
            tar(&[("./control/", Kind::Dir, b"")]),
            "`./control/` is a directory",
        ),
        (
            tar(&[("./fifo", Kind::Fifo, b"")]),
            "tar entry `./fifo` is a named pipe",
        ),
        (
            tar(&[("./hard", Kind::Hardlink, b"")]),
            "tar entry `./hard` is a hard link",
        ),
    ];
    for (data, expected) in cases {
        let message = read_err(Compression::None, &data);
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

#[test]
fn refuses_corrupt_streams() {
    let tar = control_tar(CONTROL);
    // Cut before `control` ends.
    let gz = gzip(&tar)[..40].to_vec();
    let mut bad_checksum = tar.clone();
    bad_checksum[0] = b'X';
    let cases = [
        (Compression::Gzip, gz, "cannot decompress or read"),
        (
            Compression::Xz,
            xz(&tar)[..40].to_vec(),
            "cannot decompress or read",
        ),
        (
            Compression::Zstd,
            b"not zstd".to_vec(),
            "cannot decompress or read",
        ),
        (Compression::None, bad_checksum, "checksum"),
        (
            Compression::None,
            tar[..1100].to_vec(),
            "cannot decompress or read",
        ),
    ];
    for (compression, data, expected) in cases {
        let message = read_err(compression, &data);
        assert!(message.contains(expected), "{compression:?}: {message}");
    }
}

#[test]
fn refuses_oversized_control() {
    let big = vec![b'x'; (CONTROL_LIMIT + 1) as usize];
    let data = gzip(&tar(&[("./control", Kind::File, &big)]));
    let message = read_err(Compression::Gzip, &data);
    assert!(
        message.contains("`control` file is 1048577 bytes, more than the 1 MiB"),
        "{message}"
    );
}

#[test]
fn stops_a_decompression_bomb_early() {
    // A 64 MiB entry must be cut off at the 16 MiB cap, before `control`
    // or after it (the whole archive is read).
    let control = tar(&[("./control", Kind::File, CONTROL.as_bytes())]);
    let after_control = &control[..control.len() - 1024];
    for before in [&b""[..], after_control] {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(before).unwrap();
        let header = tar_header("./md5sums", Kind::File, 64 << 20);
        encoder.write_all(header.as_bytes()).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        let data = encoder.finish().unwrap();
        let message = read_err(Compression::Gzip, &data);
        assert!(
            message.contains("decompresses to more than 16 MiB"),
            "{message}"
        );
    }
}

#[test]
fn capped_reader_fails_past_its_limit() {
    let mut reader = CappedReader {
        inner: &[1u8; 10][..],
        remaining: 4,
        exceeded: false,
    };
    let mut buf = [0; 8];
    assert_eq!(reader.read(&mut buf).unwrap(), 4);
    assert!(reader.read(&mut buf).is_err());
    assert!(reader.exceeded);
}
