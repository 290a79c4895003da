//! Debian package versions (Debian Policy 5.6.12): parsing and dpkg's ordering.
//!
//! Parsing follows dpkg's `parseversion` but is stricter where dpkg only
//! warns: a version that dpkg would merely grumble about is refused here,
//! because a repository should not publish versions that tools disagree on.
//!
//! Ordering is exactly `dpkg --compare-versions`: epochs numerically, then
//! upstream and revision with dpkg's `verrevcmp`. Distinct strings can be
//! equal under that ordering (`1.0`, `0:1.0`, `1.00`, `1.0-0`); `Eq` and
//! `Hash` follow the ordering, not the spelling. Use [`Version::as_str`] or
//! [`Version::canonical`] when the spelling matters.

use super::escape::{Escaped, EscapedChar};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// Largest epoch dpkg accepts (it stores epochs in a C `int`).
const MAX_EPOCH: u32 = i32::MAX as u32;

/// Why a string is not a Debian version. Every message quotes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error(
        "the version is empty; write at least an upstream version such as `1.0` (Debian Policy 5.6.12)"
    )]
    Empty {},
    #[error(
        "`{value}` is not a Debian version: whitespace is not allowed (Debian Policy 5.6.12)",
        value = Escaped(.value)
    )]
    Whitespace { value: String },
    #[error(
        "`{value}` is not a Debian version: the epoch `{epoch}` before the colon must be a decimal number; a colon is only allowed after a numeric epoch (Debian Policy 5.6.12)",
        value = Escaped(.value),
        epoch = Escaped(.epoch)
    )]
    EpochNotNumber { value: String, epoch: String },
    #[error(
        "`{value}` is not a Debian version: the epoch is larger than {MAX_EPOCH}, the most dpkg accepts (Debian Policy 5.6.12)",
        value = Escaped(.value)
    )]
    EpochTooLarge { value: String },
    #[error(
        "`{value}` is not a Debian version: the upstream version is empty (Debian Policy 5.6.12)",
        value = Escaped(.value)
    )]
    EmptyUpstream { value: String },
    #[error(
        "`{value}` is not a Debian version: the upstream version must start with a digit, not `{found}` (Debian Policy 5.6.12)",
        value = Escaped(.value),
        found = EscapedChar(*.found)
    )]
    UpstreamStart { value: String, found: char },
    #[error(
        "`{value}` is not a Debian version: `{found}` is not allowed in the upstream version, which may contain only letters, digits and `. + ~ -` (and `:` after an epoch) (Debian Policy 5.6.12)",
        value = Escaped(.value),
        found = EscapedChar(*.found)
    )]
    UpstreamChar { value: String, found: char },
    #[error(
        "`{value}` is not a Debian version: the revision after the last `-` is empty; drop the `-` or add a revision (Debian Policy 5.6.12)",
        value = Escaped(.value)
    )]
    EmptyRevision { value: String },
    #[error(
        "`{value}` is not a Debian version: `{found}` is not allowed in the revision, which may contain only letters, digits and `+ . ~` (Debian Policy 5.6.12)",
        value = Escaped(.value),
        found = EscapedChar(*.found)
    )]
    RevisionChar { value: String, found: char },
}

/// A parsed Debian version, kept exactly as written.
#[derive(Clone, Debug)]
pub struct Version {
    text: String,
    epoch: u32,
    /// Byte offset where the upstream part starts (after `epoch:`).
    upstream_start: usize,
    /// Byte offset of the revision's `-`, if there is a revision.
    hyphen: Option<usize>,
}

impl Version {
    /// Parses and validates a version string such as `1:2.30-1+deb12u1`.
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        if text.is_empty() {
            return Err(VersionError::Empty {});
        }
        let value = || text.to_owned();
        if text.chars().any(char::is_whitespace) {
            return Err(VersionError::Whitespace { value: value() });
        }
        let (epoch, upstream_start) = parse_epoch(text)?;
        let rest = &text[upstream_start..];
        let hyphen = rest.rfind('-').map(|at| upstream_start + at);
        let upstream = &text[upstream_start..hyphen.unwrap_or(text.len())];
        check_upstream(text, upstream)?;
        if let Some(at) = hyphen {
            check_revision(text, &text[at + 1..])?;
        }
        Ok(Version {
            text: text.to_owned(),
            epoch,
            upstream_start,
            hyphen,
        })
    }

    /// The version exactly as written in the control file.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The epoch; 0 when none is written.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The upstream part: between the epoch colon and the last hyphen.
    pub fn upstream(&self) -> &str {
        &self.text[self.upstream_start..self.hyphen.unwrap_or(self.text.len())]
    }

    /// The Debian revision after the last hyphen, if any.
    pub fn revision(&self) -> Option<&str> {
        self.hyphen.map(|at| &self.text[at + 1..])
    }

    /// `upstream[-revision]`: what goes into a pool file name, where the
    /// epoch is never written (colons are awkward in file names and URLs).
    pub fn without_epoch(&self) -> &str {
        &self.text[self.upstream_start..]
    }

    /// The spelling used as an identity key: a zero epoch is dropped
    /// (`0:1.0` → `1.0`, `00:1.0` → `1.0`), any other epoch is written in
    /// plain decimal. Everything else is kept as written, so `1.0` and
    /// `1.0-0` have different canonical forms even though they compare equal.
    /// A zero epoch stays when the upstream version has a colon: `0:1:2`
    /// without it would read as epoch 1 (found by fuzzing).
    pub fn canonical(&self) -> String {
        let rest = self.without_epoch();
        if self.epoch == 0 && !rest.contains(':') {
            rest.to_owned()
        } else {
            format!("{}:{rest}", self.epoch)
        }
    }
}

impl Version {
    /// The revision for comparison: dpkg treats a missing one as empty.
    fn revision_bytes(&self) -> &[u8] {
        self.revision().unwrap_or("").as_bytes()
    }
}

/// Splits off `epoch:` if there is a colon; returns (epoch, upstream start).
fn parse_epoch(text: &str) -> Result<(u32, usize), VersionError> {
    let Some(colon) = text.find(':') else {
        return Ok((0, 0));
    };
    let digits = &text[..colon];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VersionError::EpochNotNumber {
            value: text.to_owned(),
            epoch: digits.to_owned(),
        });
    }
    // Leading zeros are allowed by dpkg; only the value has to fit.
    let significant = digits.trim_start_matches('0');
    let epoch = match significant.parse::<u32>() {
        _ if significant.is_empty() => 0,
        Ok(epoch) if epoch <= MAX_EPOCH => epoch,
        _ => {
            return Err(VersionError::EpochTooLarge {
                value: text.to_owned(),
            });
        }
    };
    Ok((epoch, colon + 1))
}

fn check_upstream(text: &str, upstream: &str) -> Result<(), VersionError> {
    let Some(first) = upstream.chars().next() else {
        return Err(VersionError::EmptyUpstream {
            value: text.to_owned(),
        });
    };
    if !first.is_ascii_digit() {
        return Err(VersionError::UpstreamStart {
            value: text.to_owned(),
            found: first,
        });
    }
    // A `-` cannot reach here (the last one splits off the revision, earlier
    // ones are fine); `:` can only follow an epoch, since the first colon
    // always ends the epoch.
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".+~-:".contains(c);
    match upstream.chars().find(|&c| !allowed(c)) {
        Some(found) => Err(VersionError::UpstreamChar {
            value: text.to_owned(),
            found,
        }),
        None => Ok(()),
    }
}

fn check_revision(text: &str, revision: &str) -> Result<(), VersionError> {
    if revision.is_empty() {
        return Err(VersionError::EmptyRevision {
            value: text.to_owned(),
        });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+.~".contains(c);
    match revision.chars().find(|&c| !allowed(c)) {
        Some(found) => Err(VersionError::RevisionChar {
            value: text.to_owned(),
            found,
        }),
        None => Ok(()),
    }
}

/// dpkg's `order()`: `~` sorts before everything, even the end of the
/// string; the end and digits (which end a non-digit run) come next, then
/// letters, then all other characters.
fn order(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: alternate non-digit runs (compared with [`order`])
/// and digit runs (compared numerically, of any length).
fn compare_part(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let is_digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !is_digit(a, i)) || (j < b.len() && !is_digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        let (a_run, next_i) = digit_run(a, i);
        let (b_run, next_j) = digit_run(b, j);
        let by_value = a_run.len().cmp(&b_run.len()).then_with(|| a_run.cmp(b_run));
        if by_value != Ordering::Equal {
            return by_value;
        }
        (i, j) = (next_i, next_j);
    }
    Ordering::Equal
}

/// The digit run starting at `from` without its leading zeros, and the
/// offset just past it. Comparing such runs by (length, bytes) compares
/// them numerically without any overflow.
fn digit_run(s: &[u8], from: usize) -> (&[u8], usize) {
    let end = from + s[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let run = &s[from..end];
    let zeros = run.iter().take_while(|&&b| b == b'0').count();
    (&run[zeros..], end)
}

/// Feeds `part` to `state` so that parts equal under [`compare_part`] hash
/// alike: digit runs lose their leading zeros, and a part that is nothing
/// but zeros hashes like the empty part (`1.0-0` equals `1.0`).
fn hash_part<H: Hasher>(part: &[u8], state: &mut H) {
    if part.iter().all(|&b| b == b'0') {
        state.write_usize(0);
        return;
    }
    let mut at = 0;
    let mut runs = 0;
    while at < part.len() {
        let letters = part[at..]
            .iter()
            .take_while(|b| !b.is_ascii_digit())
            .count();
        part[at..at + letters].hash(state);
        let (digits, next) = digit_run(part, at + letters);
        digits.hash(state);
        at = next;
        runs += 1;
    }
    state.write_usize(runs);
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(self.upstream().as_bytes(), other.upstream().as_bytes()))
            .then_with(|| compare_part(self.revision_bytes(), other.revision_bytes()))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.epoch.hash(state);
        hash_part(self.upstream().as_bytes(), state);
        hash_part(self.revision_bytes(), state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Version, VersionError> {
        Version::parse(text)
    }
}

#[cfg(test)]
mod tests;
