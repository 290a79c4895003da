//! Differential test: `Version`'s ordering against `dpkg --compare-versions`.

mod common;

use common::have_tool;

use bess::deb::Version;
use std::cmp::Ordering;
use std::io::Write;
use std::process::{Command, Stdio};

/// Pairs compared; each costs two or three `dpkg` runs.
const PAIRS: usize = 300;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick(&mut self, chars: &[u8]) -> char {
        chars[self.below(chars.len())] as char
    }

    fn string(&mut self, first: &[u8], rest: &[u8], max_rest: usize) -> String {
        let mut out = String::from(self.pick(first));
        for _ in 0..self.below(max_rest + 1) {
            out.push(self.pick(rest));
        }
        out
    }

    /// Versions from a small alphabet, so ties and near-ties are common.
    fn version(&mut self) -> String {
        let mut out = String::new();
        if self.below(4) == 0 {
            out.push_str(&format!("{}:", self.below(3)));
        }
        out.push_str(&self.string(b"0129", b"0019a.+~-", 6));
        if self.below(2) == 0 {
            out.push('-');
            out.push_str(&self.string(b"01a~.+", b"019ab.+~", 3));
        }
        out
    }
}

/// Compares every pair with dpkg in one shell, one answer per line.
fn dpkg_orders(pairs: &[(String, String)]) -> Vec<Ordering> {
    // Exit status 0 is true, 1 false, anything else a dpkg error.
    let script = r#"while read -r a b; do
        dpkg --compare-versions "$a" lt "$b"; lt=$?
        dpkg --compare-versions "$a" eq "$b"; eq=$?
        if [ $lt = 0 ]; then echo lt
        elif [ $lt = 1 ] && [ $eq = 0 ]; then echo eq
        elif [ $lt = 1 ] && [ $eq = 1 ]; then echo gt
        else echo "error $a $b"; fi
    done"#;
    let mut child = Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for (a, b) in pairs {
        input.push_str(&format!("{a} {b}\n"));
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let answers = String::from_utf8(out.stdout).unwrap();
    answers
        .lines()
        .map(|line| match line {
            "lt" => Ordering::Less,
            "eq" => Ordering::Equal,
            "gt" => Ordering::Greater,
            _ => panic!("dpkg refused a pair: {line}"),
        })
        .collect()
}

#[test]
fn ordering_matches_dpkg() {
    if !have_tool("dpkg") {
        return;
    }
    let mut rng = Rng(0x5eed_0000_bead_cafe);
    let mut pairs = Vec::new();
    while pairs.len() < PAIRS {
        let a = rng.version();
        // Every third pair is a small edit of the first, to get near-ties.
        let b = if rng.below(3) == 0 {
            format!("{a}{}", rng.pick(b"0~a.+"))
        } else {
            rng.version()
        };
        if Version::parse(&a).is_ok() && Version::parse(&b).is_ok() {
            pairs.push((a, b));
        }
    }
    let fixed = [
        ("1.0", "1.0-0"),
        ("1.", "1.0"),
        ("1.0~", "1.0"),
        ("0:1", "1"),
        ("1.0a", "1.0+"),
    ];
    pairs.extend(fixed.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    let expected = dpkg_orders(&pairs);
    // Guard against a degenerate run (e.g. dpkg failing on every pair).
    for order in [Ordering::Less, Ordering::Equal, Ordering::Greater] {
        assert!(expected.contains(&order), "dpkg never answered {order:?}");
    }
    assert_eq!(
        expected.len(),
        pairs.len(),
        "dpkg did not answer every pair"
    );
    let mismatches: Vec<_> = pairs
        .iter()
        .zip(&expected)
        .filter(|((a, b), dpkg)| {
            Version::parse(a).unwrap().cmp(&Version::parse(b).unwrap()) != **dpkg
        })
        .collect();
    assert!(mismatches.is_empty(), "differs from dpkg: {mismatches:?}");
}
