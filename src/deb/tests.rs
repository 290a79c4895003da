//! Unit tests for `inspect` and the checks on the control fields.

use super::test_support::*;
use super::*;

fn info(control: &str) -> DebInfo {
    inspect(&deb(control)).unwrap_or_else(|err| panic!("{control:?}: {err}"))
}

fn error(control: &str) -> String {
    match inspect(&deb(control)) {
        Ok(info) => panic!("accepted: {info:?}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn inspects_a_good_package() {
    let info = info(CONTROL);
    assert_eq!(info.package, "hello");
    assert_eq!(info.version.as_str(), "1:2.10-3");
    assert_eq!(info.architecture, "amd64");
    assert_eq!(info.source, "hello");
    assert_eq!(info.control.get("Description"), Some("greet\n the world"));
    assert_eq!(info.control.len(), 5);
}

#[test]
fn source_field_forms() {
    let with = |source: &str| info(&format!("{CONTROL}Source: {source}\n")).source;
    assert_eq!(with("hello-src"), "hello-src");
    assert_eq!(with("hello-src (1.2-3)"), "hello-src");
    assert_eq!(with("hello-src(1:1.2)"), "hello-src");
    assert_eq!(with("hello-src  ( 1.2 )"), "hello-src");
}

#[test]
fn drops_computed_fields_silently() {
    let control = format!(
        "{CONTROL}filename: pool/x.deb\nSize: 1\nmd5sum: x\nSHA1: x\nSha256: x\nSHA512: x\nHomepage: h\n"
    );
    let info = info(&control);
    let names: Vec<_> = info.control.fields().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            "Package",
            "Version",
            "Architecture",
            "Maintainer",
            "Description",
            "Homepage"
        ]
    );
}

#[test]
fn refuses_bad_fields() {
    let without = |field: &str| {
        CONTROL
            .lines()
            .filter(|line| {
                !(line.starts_with(field) || field == "Description" && line.starts_with(' '))
            })
            .map(|line| format!("{line}\n"))
            .collect::<String>()
    };
    let replace = |from: &str, to: &str| CONTROL.replace(from, to);
    let cases = [
        (without("Package"), "lacks the required field `Package`"),
        (without("Version"), "lacks the required field `Version`"),
        (
            without("Architecture"),
            "lacks the required field `Architecture`",
        ),
        (
            without("Maintainer"),
            "lacks the required field `Maintainer`",
        ),
        (
            without("Description"),
            "lacks the required field `Description`",
        ),
        (
            replace("Maintainer: A <a@example.org>", "Maintainer:"),
            "`Maintainer`",
        ),
        (
            replace("Package: hello", "Package: Hello"),
            "field `Package`: `Hello` is not a valid package name",
        ),
        (
            replace("1:2.10-3", "1.0 beta"),
            "field `Version`: `1.0 beta` is not a Debian version: whitespace is not allowed (Debian Policy 5.6.12)",
        ),
        (
            replace("1:2.10-3", "1.0\n more"),
            "field `Version`: `1.0\\n more` is not a Debian version: whitespace",
        ),
        (
            replace("amd64", "any"),
            "field `Architecture`: `any` is not a binary architecture",
        ),
        (
            format!("{CONTROL}Source: Foo\n"),
            "field `Source`: `Foo` is not a valid package name",
        ),
        (
            format!("{CONTROL}Source: foo (1.0\n"),
            "field `Source`: `foo (1.0` is neither",
        ),
        (
            format!("{CONTROL}Source: foo (1.0) x\n"),
            "is neither `name` nor `name (version)`",
        ),
        (
            format!("{CONTROL}Source: foo (x1)\n"),
            "field `Source`: `x1` is not a Debian version",
        ),
        (
            format!("{CONTROL}Source: foo bar\n"),
            "field `Source`: `foo bar`",
        ),
        (
            format!("{CONTROL}package: again\n"),
            "control file, line 7: field `package` appears a second time",
        ),
        (
            format!("{CONTROL}X: a\0b\n"),
            "control file, line 7: contains a NUL byte",
        ),
    ];
    for (control, expected) in cases {
        let message = error(&control);
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

#[test]
fn refuses_non_utf8_control() {
    let mut bytes = CONTROL.as_bytes().to_vec();
    bytes.splice(9..9, [0xff, 0xfe]);
    let control = gzip(&tar(&[("./control", Kind::File, &bytes)]));
    let deb = deb_with("control.tar.gz", &control, "data.tar.xz", &xz(&data_tar()));
    let message = inspect(&deb).unwrap_err().to_string();
    assert!(
        message.contains("not valid UTF-8 (first bad byte at offset 9)"),
        "{message}"
    );
}

#[test]
fn split_source_parts() {
    assert_eq!(split_source("a"), Some(("a", None)));
    assert_eq!(split_source("a (1)"), Some(("a", Some("1"))));
    assert_eq!(split_source("a (1"), None);
    assert_eq!(split_source("a\n (1)"), Some(("a\n", Some("1"))));
}
