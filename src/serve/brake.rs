//! The brake on password guessing: per client address and per user name,
//! counted when a check starts.
//!
//! Counting only finished checks let hundreds of guesses through at once:
//! none had failed yet when the next arrived. Here every check counts as
//! a failure the moment it is admitted, and a success takes its count
//! back. After [`MAX_FAILURES`] within [`WINDOW`], an address or name is
//! throttled, not locked out: one check per [`THROTTLED_INTERVAL`] still
//! goes through, so correct credentials sent from an address where someone
//! else mistyped (a reverse proxy, an office NAT) are still checked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed (or pending) checks within [`WINDOW`] before throttling starts.
pub const MAX_FAILURES: u32 = 10;
/// How long failures are remembered.
pub const WINDOW: Duration = Duration::from_secs(60);
/// While throttled, one check per this interval.
pub const THROTTLED_INTERVAL: Duration = Duration::from_secs(2);
/// Tallies kept at most; beyond it expired ones are dropped, then the
/// oldest, so a stream of made-up user names cannot grow memory.
const MAX_TALLIES: usize = 100_000;

/// What is counted: where a guess comes from, and whom it is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    User(String),
}

#[derive(Debug)]
struct Tally {
    count: u32,
    since: Instant,
    /// The last check let through while throttled.
    last_throttled: Option<Instant>,
}

impl Tally {
    fn fresh(now: Instant) -> Tally {
        Tally {
            count: 0,
            since: now,
            last_throttled: None,
        }
    }

    fn throttled(&self) -> bool {
        self.count >= MAX_FAILURES
    }

    /// How long until a throttled check may go through.
    fn wait(&self, now: Instant) -> Option<Duration> {
        let last = self.last_throttled?;
        THROTTLED_INTERVAL.checked_sub(now.duration_since(last))
    }
}

/// The counts of every address and user name.
#[derive(Default)]
pub struct Brake {
    tallies: Mutex<HashMap<Key, Tally>>,
}

/// A check that was admitted and counted; hand it back with
/// [`Brake::succeeded`] when the credentials were right.
#[derive(Debug)]
pub struct Admitted {
    keys: Vec<Key>,
}

impl Brake {
    /// Admits a check of `user`'s password from `address` and counts it as
    /// a failure until told otherwise, or says how long to wait.
    pub fn admit(&self, address: IpAddr, user: Option<&str>) -> Result<Admitted, Duration> {
        let now = Instant::now();
        let mut keys = vec![Key::Address(address)];
        keys.extend(user.map(|u| Key::User(u.to_string())));
        let mut tallies = self.tallies.lock().expect("brake lock");
        trim(&mut tallies, now);
        for key in &keys {
            let tally = tallies
                .entry(key.clone())
                .or_insert_with(|| Tally::fresh(now));
            if now.duration_since(tally.since) >= WINDOW {
                *tally = Tally::fresh(now);
            }
        }
        let wait = keys
            .iter()
            .filter_map(|k| tallies.get(k))
            .filter(|t| t.throttled())
            .filter_map(|t| t.wait(now))
            .max();
        if let Some(wait) = wait {
            return Err(wait.max(Duration::from_secs(1)));
        }
        for key in &keys {
            let tally = tallies.get_mut(key).expect("inserted above");
            if tally.throttled() {
                tally.last_throttled = Some(now);
            }
            tally.count += 1;
        }
        Ok(Admitted { keys })
    }

    /// Counts a failure that needed no password check (credentials that
    /// are not even well-formed).
    pub fn malformed(&self, address: IpAddr) {
        let now = Instant::now();
        let mut tallies = self.tallies.lock().expect("brake lock");
        trim(&mut tallies, now);
        let tally = tallies
            .entry(Key::Address(address))
            .or_insert_with(|| Tally::fresh(now));
        if now.duration_since(tally.since) >= WINDOW {
            *tally = Tally::fresh(now);
        }
        tally.count += 1;
    }

    /// The check was right: it was no failure after all.
    pub fn succeeded(&self, admitted: Admitted) {
        let mut tallies = self.tallies.lock().expect("brake lock");
        for key in admitted.keys {
            if let Some(tally) = tallies.get_mut(&key) {
                tally.count = tally.count.saturating_sub(1);
            }
        }
    }

    /// Whether `address` is throttled now.
    #[cfg(test)]
    pub fn is_throttled(&self, address: IpAddr) -> bool {
        let tallies = self.tallies.lock().expect("brake lock");
        tallies
            .get(&Key::Address(address))
            .is_some_and(|t| t.throttled() && t.since.elapsed() < WINDOW)
    }
}

/// Keeps the map bounded: expired tallies go first, then the oldest.
fn trim(tallies: &mut HashMap<Key, Tally>, now: Instant) {
    if tallies.len() < MAX_TALLIES {
        return;
    }
    tallies.retain(|_, t| now.duration_since(t.since) < WINDOW);
    if tallies.len() >= MAX_TALLIES {
        let mut ages: Vec<Instant> = tallies.values().map(|t| t.since).collect();
        ages.sort_unstable();
        let cutoff = ages[ages.len() / 2];
        tallies.retain(|_, t| t.since > cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn checks_count_when_they_start() {
        let brake = Brake::default();
        let pending: Vec<_> = (0..MAX_FAILURES)
            .map(|_| brake.admit(ip("10.0.0.1"), Some("ops")).unwrap())
            .collect();
        // None has finished, yet the address is throttled: one more goes
        // through (the throttled allowance), the next must wait.
        assert!(brake.is_throttled(ip("10.0.0.1")));
        assert!(brake.admit(ip("10.0.0.1"), Some("ops")).is_ok());
        let wait = brake.admit(ip("10.0.0.1"), Some("ops")).unwrap_err();
        assert!(wait >= Duration::from_secs(1) && wait <= THROTTLED_INTERVAL);
        drop(pending);
    }

    #[test]
    fn successes_take_their_count_back() {
        let brake = Brake::default();
        for _ in 0..MAX_FAILURES * 3 {
            let admitted = brake.admit(ip("10.0.0.2"), Some("ops")).unwrap();
            brake.succeeded(admitted);
        }
        assert!(!brake.is_throttled(ip("10.0.0.2")));
    }

    #[test]
    fn a_guessed_name_is_throttled_from_every_address() {
        let brake = Brake::default();
        for n in 0..=MAX_FAILURES {
            let _ = brake
                .admit(ip(&format!("10.0.1.{n}")), Some("admin"))
                .unwrap();
        }
        assert!(brake.admit(ip("10.0.2.1"), Some("admin")).is_err());
        // Another name from a fresh address is untouched.
        assert!(brake.admit(ip("10.0.2.1"), Some("ci")).is_ok());
    }

    #[test]
    fn malformed_credentials_count_for_the_address() {
        let brake = Brake::default();
        for _ in 0..MAX_FAILURES {
            brake.malformed(ip("10.0.0.3"));
        }
        assert!(brake.is_throttled(ip("10.0.0.3")));
    }
}
