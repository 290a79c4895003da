//! Test helpers that build `.deb` files byte by byte, broken ones included.
//!
//! Used by the unit tests and, through `#[path]`, by the integration tests,
//! so it depends only on external crates.
#![allow(dead_code)]

use std::io::Write;

/// One `ar` member: header, data, and the newline padding to an even offset.
pub fn ar_member(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
        name,
        0,
        0,
        0,
        100644,
        data.len()
    )
    .into_bytes();
    assert_eq!(out.len(), 60, "member name {name:?} too long");
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
    out
}

/// An `ar` archive of the given members, in order.
pub fn ar_archive(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        out.extend(ar_member(name, data));
    }
    out
}

/// What kind of tar entry to write.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Fifo,
}

/// A tar archive. Paths are written verbatim: the `tar` crate's own path
/// setter would strip the `./` that dpkg-deb writes.
pub fn tar(entries: &[(&str, Kind, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for &(path, kind, data) in entries {
        let header = tar_header(path, kind, data.len() as u64);
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A GNU tar header for `path` with a declared `size`.
pub fn tar_header(path: &str, kind: Kind, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.as_mut_bytes()[..path.len()].copy_from_slice(path.as_bytes());
    let (entry_type, mode) = match kind {
        Kind::File => (tar::EntryType::Regular, 0o644),
        Kind::Dir => (tar::EntryType::Directory, 0o755),
        Kind::Symlink => (tar::EntryType::Symlink, 0o777),
        Kind::Hardlink => (tar::EntryType::Link, 0o644),
        Kind::Fifo => (tar::EntryType::Fifo, 0o644),
    };
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_size(size);
    if matches!(kind, Kind::Symlink | Kind::Hardlink) {
        header.set_link_name("./target").unwrap();
        header.set_size(0);
    }
    header.set_cksum();
    header
}

/// A control.tar as dpkg-deb writes it: `./`, then `./control`.
pub fn control_tar(control: &str) -> Vec<u8> {
    tar(&[
        ("./", Kind::Dir, b""),
        ("./control", Kind::File, control.as_bytes()),
        (
            "./md5sums",
            Kind::File,
            b"d41d8cd98f00b204e9800998ecf8427e  usr/x\n",
        ),
    ])
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut encoder = xz2::write::XzEncoder::new(Vec::new(), 6);
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

/// A small data.tar with one file.
pub fn data_tar() -> Vec<u8> {
    tar(&[
        ("./", Kind::Dir, b""),
        ("./usr/", Kind::Dir, b""),
        ("./usr/x", Kind::File, b"hello\n"),
    ])
}

pub const CONTROL: &str = "Package: hello\nVersion: 1:2.10-3\nArchitecture: amd64\nMaintainer: A <a@example.org>\nDescription: greet\n the world\n";

/// A well-formed package from the given members' contents.
pub fn deb_with(
    control_name: &str,
    control_member: &[u8],
    data_name: &str,
    data: &[u8],
) -> Vec<u8> {
    ar_archive(&[
        ("debian-binary", b"2.0\n"),
        (control_name, control_member),
        (data_name, data),
    ])
}

/// A well-formed package with the given control file text.
pub fn deb(control: &str) -> Vec<u8> {
    deb_with(
        "control.tar.gz",
        &gzip(&control_tar(control)),
        "data.tar.xz",
        &xz(&data_tar()),
    )
}
