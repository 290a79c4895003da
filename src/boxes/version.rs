//! Box versions as Vagrant reads them: RubyGems' `Gem::Version` ordering,
//! so `bess box list` and the catalog order versions the way
//! `vagrant box outdated` compares them.

use std::cmp::Ordering;

/// One piece of a version: a run of digits or a run of letters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Digits without leading zeros (`"0"` is the empty string), so numbers
    /// of any length compare without overflow.
    Number(String),
    Text(String),
}

impl Segment {
    fn zero() -> Segment {
        Segment::Number(String::new())
    }

    fn is_zero(&self) -> bool {
        matches!(self, Segment::Number(n) if n.is_empty())
    }
}

/// The segments `Gem::Version` compares: `-` reads as `.pre.`, and trailing
/// zeros of the release part and of the prerelease part are dropped, so
/// `1.2.0` equals `1.2`.
fn canonical_segments(version: &str) -> Vec<Segment> {
    let text = version.trim().replace('-', ".pre.");
    let mut segments = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if !c.is_ascii_alphanumeric() {
            chars.next();
            continue;
        }
        let digits = c.is_ascii_digit();
        let mut run = String::new();
        while let Some(&c) = chars.peek() {
            let same = if digits {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            };
            if !same {
                break;
            }
            run.push(c);
            chars.next();
        }
        segments.push(if digits {
            Segment::Number(run.trim_start_matches('0').to_string())
        } else {
            Segment::Text(run)
        });
    }
    let text_start = segments
        .iter()
        .position(|s| matches!(s, Segment::Text(_)))
        .unwrap_or(segments.len());
    let mut prerelease = segments.split_off(text_start);
    drop_trailing_zeros(&mut segments);
    drop_trailing_zeros(&mut prerelease);
    segments.extend(prerelease);
    segments
}

fn drop_trailing_zeros(segments: &mut Vec<Segment>) {
    while segments.last().is_some_and(Segment::is_zero) {
        segments.pop();
    }
}

fn compare_segments(a: &Segment, b: &Segment) -> Ordering {
    match (a, b) {
        (Segment::Number(x), Segment::Number(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
        (Segment::Text(x), Segment::Text(y)) => x.cmp(y),
        (Segment::Text(_), Segment::Number(_)) => Ordering::Less,
        (Segment::Number(_), Segment::Text(_)) => Ordering::Greater,
    }
}

/// Compares two versions as `Gem::Version#<=>` does: a prerelease (any
/// letter) sorts before its release, `1.10` after `1.9`.
pub fn compare_box_versions(a: &str, b: &str) -> Ordering {
    let (a, b) = (canonical_segments(a), canonical_segments(b));
    let zero = Segment::zero();
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i).unwrap_or(&zero), b.get(i).unwrap_or(&zero));
        match compare_segments(x, y) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    Ordering::Equal
}

/// The identity of a version: two spellings Vagrant considers equal
/// (`1.2` and `1.2.0`) have the same key, so they cannot name two boxes.
pub fn version_key(version: &str) -> String {
    let segments = canonical_segments(version);
    if segments.is_empty() {
        return "0".to_string();
    }
    let parts: Vec<&str> = segments
        .iter()
        .map(|s| match s {
            Segment::Number(n) if n.is_empty() => "0",
            Segment::Number(n) | Segment::Text(n) => n.as_str(),
        })
        .collect();
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gem_version_examples() {
        let ascending = [
            "0.9", "1.0.a", "1.0.b1", "1.0-rc1", "1.0", "1.0.1", "1.2", "1.9", "1.10", "2",
        ];
        for pair in ascending.windows(2) {
            assert_eq!(
                compare_box_versions(pair[0], pair[1]),
                Ordering::Less,
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
        assert_eq!(compare_box_versions("1.2.0", "1.2"), Ordering::Equal);
        assert_eq!(compare_box_versions("01.2", "1.2"), Ordering::Equal);
        assert_eq!(version_key("1.2.0"), "1.2");
        assert_eq!(version_key("0.0"), "0");
        assert_eq!(version_key("1.0-rc1"), version_key("1.0.pre.rc1"));
    }

    proptest! {
        #[test]
        fn equal_keys_mean_equal_versions(a in "[0-9]{1,3}(\\.[0-9a-c]{1,2}){0,3}", b in "[0-9]{1,3}(\\.[0-9a-c]{1,2}){0,3}") {
            let same_key = version_key(&a) == version_key(&b);
            prop_assert_eq!(same_key, compare_box_versions(&a, &b) == Ordering::Equal);
            prop_assert_eq!(compare_box_versions(&a, &b), compare_box_versions(&b, &a).reverse());
        }
    }
}
