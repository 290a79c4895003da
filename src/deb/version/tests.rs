//! Unit tests for version parsing, ordering and hashing.

use super::*;
use proptest::prelude::*;
use std::collections::hash_map::DefaultHasher;

fn v(text: &str) -> Version {
    Version::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"))
}

fn hash_of(version: &Version) -> u64 {
    let mut hasher = DefaultHasher::new();
    version.hash(&mut hasher);
    hasher.finish()
}

#[test]
fn splits_epoch_upstream_revision() {
    let version = v("1:2.30-1+deb12u1");
    assert_eq!(version.epoch(), 1);
    assert_eq!(version.upstream(), "2.30");
    assert_eq!(version.revision(), Some("1+deb12u1"));
    assert_eq!(version.without_epoch(), "2.30-1+deb12u1");
    assert_eq!(version.canonical(), "1:2.30-1+deb12u1");
    assert_eq!(version.as_str(), "1:2.30-1+deb12u1");
    assert_eq!(version.to_string(), "1:2.30-1+deb12u1");
}

#[test]
fn last_hyphen_starts_the_revision() {
    let version = v("1.0-beta-2");
    assert_eq!(version.upstream(), "1.0-beta");
    assert_eq!(version.revision(), Some("2"));
}

#[test]
fn colons_in_upstream_need_an_epoch() {
    let version = v("2:1.0:3-1");
    assert_eq!(version.epoch(), 2);
    assert_eq!(version.upstream(), "1.0:3");
    assert!(Version::parse("1.0:3").is_err());
}

#[test]
fn canonical_drops_only_a_zero_epoch() {
    assert_eq!(v("0:1.0").canonical(), "1.0");
    assert_eq!(v("000:1.0").canonical(), "1.0");
    assert_eq!(v("007:1.0-1").canonical(), "7:1.0-1");
    assert_eq!(v("1.0").canonical(), "1.0");
    assert_eq!(v("0:1.0").without_epoch(), "1.0");
    // Without its zero epoch, 0:1:2.0 would read as 1:2.0, another version.
    assert_eq!(v("0:1:2.0").canonical(), "0:1:2.0");
    assert_eq!(v("00:1:2.0").canonical(), "0:1:2.0");
    assert_ne!(v("0:1:2.0").canonical(), v("1:2.0").canonical());
}

#[test]
fn epoch_limits() {
    assert_eq!(v("2147483647:1").epoch(), 2147483647);
    assert_eq!(v("0002147483647:1").epoch(), 2147483647);
    for bad in ["2147483648:1", "99999999999999999999:1"] {
        let message = Version::parse(bad).unwrap_err().to_string();
        assert!(message.contains("larger than 2147483647"), "{message}");
    }
}

#[test]
fn refuses_each_rule() {
    let cases = [
        ("", "is empty"),
        (
            "1.0 beta",
            "`1.0 beta` is not a Debian version: whitespace is not allowed (Debian Policy 5.6.12)",
        ),
        (" 1.0", "whitespace"),
        ("1.0\n", "whitespace"),
        (
            ":1.0",
            "the epoch `` before the colon must be a decimal number",
        ),
        ("a:1.0", "the epoch `a`"),
        ("-1:1.0", "the epoch `-1`"),
        ("+1:1.0", "the epoch `+1`"),
        ("1.0:2", "the epoch `1.0`"),
        ("1:", "upstream version is empty"),
        ("1:-1", "upstream version is empty"),
        ("-1", "upstream version is empty"),
        ("a1.0", "must start with a digit, not `a`"),
        ("~1", "must start with a digit, not `~`"),
        ("1.0_1", "`_` is not allowed in the upstream"),
        ("1.0é", "`é` is not allowed in the upstream"),
        ("1.0-", "revision after the last `-` is empty"),
        ("1:1.0-1:2", "`:` is not allowed in the revision"),
        ("1.0-1:2", "the epoch `1.0-1`"),
        ("1:1.0-1_2", "`_` is not allowed in the revision"),
    ];
    for (text, expected) in cases {
        let message = Version::parse(text).unwrap_err().to_string();
        assert!(message.contains(expected), "{text:?}: {message}");
        assert!(message.contains("Policy 5.6.12"), "{message}");
    }
}

#[test]
fn dpkg_ordering_examples() {
    let ascending = [
        "0~~",
        "0~",
        "0",
        "0.0.1",
        "0.1",
        "0.1a",
        "0.1+",
        "1~rc1",
        "1",
        "1.0-0.1",
        "1.0-1~bpo1",
        "1.0-1",
        "1.0-1a",
        "1.0-1+b1",
        "1.0-1.1",
        "1.0a",
        "1.0+dfsg",
        "1.0.1",
        "1.2",
        "1.10",
        "1.10a",
        "2",
        "10",
        "1:0.1",
        "1:1.0",
        "2:0",
    ];
    for pair in ascending.windows(2) {
        assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
    }
}

#[test]
fn spellings_that_dpkg_considers_equal() {
    let groups: [&[&str]; 5] = [
        &["1.0", "0:1.0", "00:1.0", "1.00", "1.0-0", "1.0-00", "01.0"],
        &["1.", "1.0"],
        &["1.0-a", "1.0-a0", "1.0-a00"],
        &["1.0-0a", "1.0-00a"],
        &["1.0001", "1.1"],
    ];
    for group in groups {
        for a in group {
            for b in group {
                assert_eq!(v(a), v(b), "{a} == {b}");
                assert_eq!(hash_of(&v(a)), hash_of(&v(b)), "hash {a} {b}");
            }
        }
    }
    assert_ne!(v("1.0-0a"), v("1.0-a"));
    assert_ne!(v("1.0~"), v("1.0"));
}

#[test]
fn huge_digit_runs_compare_numerically() {
    let big = "123456789012345678901234567890";
    assert!(v(&format!("{big}0")) > v(big));
    assert!(v(&format!("0000{big}")) == v(big));
    assert!(v("99999999999999999999999") > v("99999999999999999999998"));
}

#[test]
fn from_str_parses() {
    let version: Version = "1.2-3".parse().unwrap();
    assert_eq!(version.revision(), Some("3"));
}

/// Versions from a small alphabet, so that near-equal pairs are common.
pub(super) fn version_strategy() -> impl Strategy<Value = String> {
    let epoch = prop_oneof![Just(String::new()), "[0-9]{1,2}:"];
    let upstream = "[0-9][0-9a-c.+~]{0,6}";
    let revision = prop_oneof![Just(String::new()), "-[0-9a-c+.~]{1,4}"];
    (epoch, upstream, revision).prop_map(|(e, u, r)| format!("{e}{u}{r}"))
}

/// Spells `text` differently without changing its value under dpkg's order.
fn respell(text: &str, zeros: usize, zero_epoch: bool, zero_revision: bool) -> String {
    let mut out = String::new();
    if zero_epoch && !text.contains(':') {
        out.push_str("0:");
    }
    let mut previous_digit = false;
    for c in text.chars() {
        if c.is_ascii_digit() && !previous_digit {
            out.extend(std::iter::repeat_n('0', zeros));
        }
        previous_digit = c.is_ascii_digit();
        out.push(c);
    }
    if zero_revision && !text.contains('-') {
        out.push_str("-0");
    }
    out
}

proptest! {
    #[test]
    fn generated_versions_parse(text in version_strategy()) {
        let version = Version::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(version.as_str(), text.as_str());
    }

    #[test]
    fn ordering_is_total_and_consistent(
        a in version_strategy(), b in version_strategy(), c in version_strategy()
    ) {
        let (a, b, c) = (v(&a), v(&b), v(&c));
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        prop_assert_eq!(a.cmp(&a), Ordering::Equal);
        prop_assert_eq!(a == b, a.cmp(&b) == Ordering::Equal);
        prop_assert_eq!(a.partial_cmp(&b), Some(a.cmp(&b)));
        if a <= b && b <= c {
            prop_assert!(a <= c, "{} <= {} <= {} but not {} <= {}", a, b, c, a, c);
        }
        if a == b {
            prop_assert_eq!(hash_of(&a), hash_of(&b));
        }
    }

    #[test]
    fn respelling_keeps_equality_and_hash(
        text in version_strategy(), zeros in 0usize..3, zero_epoch: bool, zero_revision: bool
    ) {
        let original = v(&text);
        let respelled = v(&respell(&text, zeros, zero_epoch, zero_revision));
        prop_assert_eq!(&original, &respelled);
        prop_assert_eq!(hash_of(&original), hash_of(&respelled));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[ -~é]{0,24}") {
        if let Ok(version) = Version::parse(&text) {
            prop_assert_eq!(version.to_string(), text);
        }
    }
}
