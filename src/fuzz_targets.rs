//! Entry points of the coverage-guided fuzzers under `fuzz/` and of the
//! regression tests made from what they found (`tests/fuzz_regressions.rs`).
//!
//! Each takes arbitrary bytes and must return, whatever they hold: no
//! panic, no hang, no allocation beyond the parser's own caps. Where a
//! parser's answer can be checked against itself (a version's ordering,
//! a range inside its file), the entry asserts it.

use std::cmp::Ordering;

/// A whole `.deb` held in memory: ar, the control archive in every
/// compression, the control paragraph, names and versions.
pub fn deb_package(data: &[u8]) {
    if let Ok(info) = crate::deb::inspect(data) {
        assert!(!info.package.is_empty() && !info.architecture.is_empty());
    }
}

/// A control paragraph, then the checks of a package's fields.
pub fn deb_control(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(control) = crate::deb::Control::parse(text) {
        let _ = crate::deb::DebInfo::from_control(control);
    }
}

/// Two versions (split at the first newline): parsing, and an ordering
/// that is antisymmetric and agrees with the canonical form.
pub fn deb_version(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\n').unwrap_or((text, text));
    let (Ok(a), Ok(b)) = (crate::deb::Version::parse(a), crate::deb::Version::parse(b)) else {
        return;
    };
    assert_eq!(a.cmp(&b), b.cmp(&a).reverse(), "{a} vs {b}");
    // One way only: dpkg orders `01` like `1` and `1.0` like `1.0-0`,
    // while the identity (`canonical`) keeps such spellings apart.
    if a.canonical() == b.canonical() {
        assert_eq!(a.cmp(&b), Ordering::Equal, "{a} vs {b}");
    }
    let again = crate::deb::Version::parse(&a.canonical()).expect("a canonical version parses");
    assert_eq!(
        again.cmp(&a),
        Ordering::Equal,
        "{a} vs its canonical {again}"
    );
    assert_eq!(again.canonical(), a.canonical(), "{a}");
}

/// The parts of an HTTP request a client controls (see `serve::fuzz_request`).
pub fn http_request(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        crate::serve::fuzz_request(text);
    }
}

/// `bess.toml`, then the same text as `dists.list` and `archs.list`.
pub fn settings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::config::Settings::parse(text);
    let _ = crate::config::parse_list(text, crate::config::check_dist_name);
    let _ = crate::config::parse_list(text, crate::config::check_arch_name);
}

/// A `.box` (tar, tar.gz or zip with `metadata.json`), from a file as the
/// box reader takes it.
pub fn box_archive(data: &[u8]) {
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if std::io::Write::write_all(&mut file, data).is_ok() {
        let _ = crate::boxes::inspect(file.path(), "libvirt");
    }
}
