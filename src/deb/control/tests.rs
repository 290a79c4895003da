//! Unit tests for the control paragraph parser.

use super::*;
use proptest::prelude::*;

fn parse_ok(text: &str) -> Control {
    Control::parse(text).unwrap_or_else(|err| panic!("{text:?}: {err}"))
}

fn parse_err(text: &str) -> String {
    match Control::parse(text) {
        Ok(control) => panic!("{text:?} parsed as {control:?}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn keeps_order_and_values() {
    let control =
        parse_ok("Package: foo\nVersion:  1.0 \nDescription: short\n long line\n .\n more\n");
    let fields: Vec<_> = control.fields().collect();
    assert_eq!(
        fields,
        [
            ("Package", "foo"),
            ("Version", "1.0"),
            ("Description", "short\n long line\n .\n more"),
        ]
    );
    assert_eq!(control.len(), 3);
}

#[test]
fn empty_first_line_value() {
    let control = parse_ok("Package: foo\nConffiles:\n /etc/x 123\n /etc/y 456\n");
    assert_eq!(control.get("conffiles"), Some("\n /etc/x 123\n /etc/y 456"));
    let mut out = String::new();
    control.write_to(&mut out);
    assert_eq!(out, "Package: foo\nConffiles:\n /etc/x 123\n /etc/y 456\n");
}

#[test]
fn empty_value_round_trips() {
    let control = parse_ok("Package: foo\nEmpty:\nTabbed:\t\n");
    assert_eq!(control.get("Empty"), Some(""));
    assert_eq!(control.get("Tabbed"), Some(""));
    let mut out = String::new();
    control.write_to(&mut out);
    assert_eq!(out, "Package: foo\nEmpty:\nTabbed:\n");
}

#[test]
fn continuation_trailing_whitespace_trimmed_leading_kept() {
    let control = parse_ok("Description: x  \n\tindented by tab \t\n  two\n");
    assert_eq!(
        control.get("Description"),
        Some("x\n\tindented by tab\n  two")
    );
}

#[test]
fn get_and_remove_are_case_insensitive() {
    let mut control = parse_ok("Package: foo\nMD5sum: abc\nSize: 3\n");
    assert_eq!(control.get("PACKAGE"), Some("foo"));
    assert_eq!(control.remove("md5SUM"), Some("abc".to_owned()));
    assert_eq!(control.remove("md5sum"), None);
    assert_eq!(
        control.fields().map(|(n, _)| n).collect::<Vec<_>>(),
        ["Package", "Size"]
    );
    assert!(!control.is_empty());
}

#[test]
fn blank_lines_around_the_paragraph_are_fine() {
    let control = parse_ok("\n\nPackage: foo\n\n \n\t\n");
    assert_eq!(control.len(), 1);
    parse_ok("Package: foo");
}

#[test]
fn value_colons_and_odd_names() {
    let control = parse_ok("X-Url: http://x:80/\nX-Odd!Name~: v\n");
    assert_eq!(control.get("x-url"), Some("http://x:80/"));
    assert_eq!(control.get("X-Odd!Name~"), Some("v"));
}

#[test]
fn refuses_every_malformation() {
    let cases = [
        ("", "no fields"),
        ("\n \n", "no fields"),
        ("Package: foo\nVersion: 1\0\n", "line 2: contains a NUL"),
        ("Package: foo\r\n", "line 1: contains a carriage return"),
        (
            "Package: foo\n# comment\n",
            "line 2: comment line `# comment`",
        ),
        ("# comment\nPackage: foo\n", "line 1: comment"),
        ("Package: foo\n\nVersion: 1\n", "line 2: blank line inside"),
        (
            "Package: foo\n \t\nVersion: 1\n",
            "line 2: blank line inside",
        ),
        (
            " leading\nPackage: foo\n",
            "line 1: continuation line ` leading`",
        ),
        ("Package: foo\nnonsense\n", "line 2: `nonsense` is neither"),
        ("Package foo\n", "line 1: `Package foo` is neither"),
        (
            ": value\n",
            "line 1: `` is not a valid field name: the name before the colon is empty",
        ),
        ("-Field: x\n", "must not start with `-`"),
        ("Pack age: x\n", "contain no spaces"),
        ("Package : x\n", "colon must follow the name"),
        ("Paquête: x\n", "printable US-ASCII"),
        (
            "Package: a\npackage: b\n",
            "line 2: field `package` appears a second time (first on line 1)",
        ),
    ];
    for (text, expected) in cases {
        let message = parse_err(text);
        assert!(message.contains(expected), "{text:?}: {message}");
    }
}

#[test]
fn long_lines_are_shortened_in_messages() {
    let text = format!("Package: foo\n{}\n", "x".repeat(500));
    let message = parse_err(&text);
    assert!(message.contains('…'), "{message}");
    assert!(message.len() < 300, "{message}");
}

/// A field name per deb822 that cannot be confused with a comment.
fn field_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][!-9;-~]{0,12}"
}

/// A value as `parse` produces it: first line trimmed, continuation lines
/// starting with whitespace, not blank, without trailing whitespace.
fn field_value() -> impl Strategy<Value = String> {
    let first = prop_oneof!["", "[!-~]([ -~]{0,20}[!-~])?", "[^\\s\\x00]{1,10}"];
    let continuation = "[ \t][ -~]{0,20}[!-~]";
    (first, prop::collection::vec(continuation, 0..4)).prop_map(|(first, rest)| {
        let mut value = first;
        for line in rest {
            value.push('\n');
            value.push_str(&line);
        }
        value
    })
}

fn paragraph() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((field_name(), field_value()), 1..8).prop_map(|mut fields| {
        let mut seen = Vec::<String>::new();
        fields.retain(|(name, _)| {
            let fresh = !seen.iter().any(|s| s.eq_ignore_ascii_case(name));
            seen.push(name.clone());
            fresh
        });
        fields
    })
}

proptest! {
    #[test]
    fn write_then_parse_round_trips(fields in paragraph()) {
        let mut text = String::new();
        for (name, value) in &fields {
            text.push_str(name);
            text.push_str(": ");
            text.push_str(value);
            text.push('\n');
        }
        let control = Control::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let parsed: Vec<(String, String)> =
            control.fields().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
        prop_assert_eq!(&parsed, &fields);

        let mut rendered = String::new();
        control.write_to(&mut rendered);
        let again = Control::parse(&rendered).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again, &control);
        let mut rendered_again = String::new();
        again.write_to(&mut rendered_again);
        prop_assert_eq!(rendered_again, rendered);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\t\n\r\0é#:-]{0,80}") {
        let _ = Control::parse(&text);
    }
}
