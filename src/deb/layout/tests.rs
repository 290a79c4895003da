//! Unit tests for the deb(5) member layout.

use super::*;
use crate::deb::test_support::*;

fn layout_err(deb: &[u8]) -> String {
    match read_layout(deb) {
        Ok(layout) => panic!("accepted: {layout:?}"),
        Err(err) => err.to_string(),
    }
}

fn good_control() -> Vec<u8> {
    gzip(&control_tar(CONTROL))
}

#[test]
fn finds_control_and_data_with_optional_members() {
    let control = good_control();
    let data = xz(&data_tar());
    let deb = ar_archive(&[
        ("debian-binary", b"2.0\n"),
        ("_gpgorigin", b"sig"),
        ("control.tar.gz", &control),
        ("_extra", b""),
        ("data.tar.xz", &data),
        ("anything", b"ignored after data"),
    ]);
    let layout = read_layout(&deb).unwrap();
    assert_eq!(layout.control.member.index, 2);
    assert_eq!(layout.control.compression, Compression::Gzip);
    assert_eq!(layout.control.member.data, &control[..]);
}

#[test]
fn accepts_every_announced_compression() {
    let tar = data_tar();
    let mut lzma = vec![0x5d, 0, 0, 0x80, 0];
    lzma.extend([0xff; 8]);
    let bzip2 = b"BZh91AY&SY".to_vec();
    let cases: [(&str, Vec<u8>); 6] = [
        ("data.tar", tar.clone()),
        ("data.tar.gz", gzip(&tar)),
        ("data.tar.xz", xz(&tar)),
        ("data.tar.zst", zstd(&tar)),
        ("data.tar.bz2", bzip2),
        ("data.tar.lzma", lzma),
    ];
    for (name, data) in cases {
        let deb = deb_with("control.tar", &control_tar(CONTROL), name, &data);
        read_layout(&deb).unwrap_or_else(|err| panic!("{name}: {err}"));
    }
    for (name, control) in [
        ("control.tar.xz", xz(&control_tar(CONTROL))),
        ("control.tar.zst", zstd(&control_tar(CONTROL))),
    ] {
        let deb = deb_with(name, &control, "data.tar", &tar);
        read_layout(&deb).unwrap_or_else(|err| panic!("{name}: {err}"));
    }
}

#[test]
fn refuses_wrong_order_and_names() {
    let control = good_control();
    let data = xz(&data_tar());
    type Members<'a> = Vec<(&'a str, &'a [u8])>;
    let cases: Vec<(Members, &str)> = vec![
        (vec![], "ends without `debian-binary`"),
        (
            vec![("control.tar.gz", &control)],
            "member 0 is `control.tar.gz`, expected `debian-binary`",
        ),
        (
            vec![("debian-binary", b"2.0\n")],
            "ends without `control.tar`",
        ),
        (
            vec![("debian-binary", b"2.0\n"), ("foo", b"x")],
            "member 1 is `foo`, expected `control.tar`, `control.tar.gz`",
        ),
        (
            vec![
                ("debian-binary", b"2.0\n"),
                ("data.tar.xz", &data),
                ("control.tar.gz", &control),
            ],
            "member 1 is `data.tar.xz`, expected `control.tar`",
        ),
        (
            vec![("debian-binary", b"2.0\n"), ("control.tar.bz2", b"BZh9")],
            "member 1 is `control.tar.bz2`",
        ),
        (
            vec![("debian-binary", b"2.0\n"), ("control.tar.gz", &control)],
            "ends without `data.tar`, `data.tar.gz`",
        ),
        (
            vec![
                ("debian-binary", b"2.0\n"),
                ("control.tar.gz", &control),
                ("control.tar.gz", &control),
            ],
            "member 2 is `control.tar.gz`, expected `data.tar`",
        ),
        (
            vec![
                ("debian-binary", b"2.0\n"),
                ("control.tar.gz", &control),
                ("data.tar.7z", b"7z"),
            ],
            "member 2 is `data.tar.7z`, expected",
        ),
    ];
    for (members, expected) in cases {
        let message = layout_err(&ar_archive(&members));
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

#[test]
fn refuses_bad_format_version() {
    for content in [&b"3.0\n"[..], b"2.0", b"", b"1.0\n", b"2\n"] {
        let deb = ar_archive(&[("debian-binary", content)]);
        let message = layout_err(&deb);
        assert!(
            message.contains("member 0 `debian-binary` contains"),
            "{message}"
        );
    }
    let message = layout_err(&ar_archive(&[("debian-binary", &[b'x'; 100])]));
    assert!(
        message.contains(&format!("contains `{}`", "x".repeat(16))),
        "{message}"
    );
}

#[test]
fn accepts_later_format_lines() {
    let deb = ar_archive(&[("debian-binary", b"2.1\nextra\n")]);
    // Fails later for lack of control, not for the format version.
    assert!(layout_err(&deb).contains("ends without `control.tar`"));
}

#[test]
fn refuses_mislabelled_members() {
    let tar = data_tar();
    let control = control_tar(CONTROL);
    let cases: [(&str, Vec<u8>, &str); 8] = [
        (
            "data.tar.xz",
            gzip(&tar),
            "member 2 `data.tar.xz` does not start with the xz signature (its first bytes are 1f8b",
        ),
        ("data.tar.gz", xz(&tar), "gzip signature"),
        ("data.tar.zst", tar.clone(), "zstd signature"),
        ("data.tar.bz2", gzip(&tar), "bzip2 signature"),
        ("data.tar.lzma", vec![0xff; 20], "lzma signature"),
        (
            "data.tar",
            gzip(&tar),
            "tar (`ustar` at offset 257) signature",
        ),
        ("data.tar", tar[..300].to_vec(), "tar (`ustar`"),
        ("data.tar.xz", Vec::new(), "member 2 `data.tar.xz` is empty"),
    ];
    for (name, data, expected) in cases {
        let deb = deb_with("control.tar", &control, name, &data);
        let message = layout_err(&deb);
        assert!(message.contains(expected), "{name}: {message}");
    }
    let deb = deb_with("control.tar.zst", &gzip(&control), "data.tar", &tar);
    assert!(
        layout_err(&deb)
            .contains("member 1 `control.tar.zst` does not start with the zstd signature")
    );
}

#[test]
fn trailing_garbage_after_data_is_refused() {
    let mut deb = deb(CONTROL);
    deb.extend_from_slice(b"garbage");
    assert!(
        layout_err(&deb).contains("member 3 at byte"),
        "{}",
        layout_err(&deb)
    );
}
