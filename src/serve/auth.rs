//! Who is asking: HTTP basic auth against argon2id hashes, a short-lived
//! cache of verified credentials (apt sends them on every request), and a
//! brake on repeated failures from one address.

use crate::catalog::UserRow;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long verified credentials are trusted without running argon2 again.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Failures from one address within [`FAILURE_WINDOW`] before it must wait.
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// `user:password` from an `Authorization: Basic …` header.
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Verified credentials and failed attempts, shared by all connections.
#[derive(Default)]
pub struct Gate {
    /// SHA-256 of the raw header value (never the password itself) → user.
    verified: Mutex<HashMap<[u8; 32], (UserRow, Instant)>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// One verification at a time per header: when a fleet of apt clients
    /// (or one client's parallel connections) arrives with the same
    /// credentials, argon2 runs once and the others wait for its verdict.
    verifying: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
}

impl Gate {
    /// The user whose credentials were verified recently under this header.
    pub fn cached(&self, header: &str) -> Option<UserRow> {
        let key = fingerprint(header);
        let mut verified = self.verified.lock().expect("gate lock");
        match verified.get(&key) {
            Some((user, at)) if at.elapsed() < CACHE_TTL => Some(user.clone()),
            Some(_) => {
                verified.remove(&key);
                None
            }
            None => None,
        }
    }

    /// The lock to hold while verifying this header.
    pub fn verification_turn(&self, header: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut verifying = self.verifying.lock().expect("gate lock");
        verifying.entry(fingerprint(header)).or_default().clone()
    }

    /// Forgets the lock of a finished verification (waiters keep their copy).
    pub fn verified(&self, header: &str) {
        self.verifying
            .lock()
            .expect("gate lock")
            .remove(&fingerprint(header));
    }

    /// Remembers a successful verification.
    pub fn remember(&self, header: &str, user: &UserRow) {
        let mut verified = self.verified.lock().expect("gate lock");
        if verified.len() > 10_000 {
            verified.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        verified.insert(fingerprint(header), (user.clone(), Instant::now()));
    }

    /// Seconds the address must wait before trying again, if it failed too often.
    pub fn retry_after(&self, ip: IpAddr) -> Option<u64> {
        let failures = self.failures.lock().expect("gate lock");
        let (count, since) = failures.get(&ip)?;
        let elapsed = since.elapsed();
        (*count >= MAX_FAILURES && elapsed < FAILURE_WINDOW)
            .then(|| (FAILURE_WINDOW - elapsed).as_secs().max(1))
    }

    /// Counts a failed attempt from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().expect("gate lock");
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

fn fingerprint(header: &str) -> [u8; 32] {
    Sha256::digest(header.as_bytes()).into()
}

/// Whether `user` may read `channel`.
pub fn may_read(user: &UserRow, channel: &str) -> bool {
    user.admin || user.read.iter().chain(&user.upload).any(|c| c == channel)
}

/// Whether `user` may upload into `channel`.
pub fn may_upload(user: &UserRow, channel: &str) -> bool {
    user.admin || user.upload.iter().any(|c| c == channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(read: &[&str]) -> UserRow {
        UserRow {
            name: "u".into(),
            password_hash: String::new(),
            read: read.iter().map(|s| s.to_string()).collect(),
            upload: Vec::new(),
            admin: false,
        }
    }

    #[test]
    fn parses_basic_credentials() {
        assert_eq!(
            basic_credentials("Basic dXNlcjpwYTpzcw=="),
            Some(("user".into(), "pa:ss".into()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }

    #[test]
    fn failures_brake_after_the_limit() {
        let gate = Gate::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILURES - 1 {
            gate.failed(ip);
        }
        assert_eq!(gate.retry_after(ip), None);
        gate.failed(ip);
        assert!(gate.retry_after(ip).is_some());
    }

    #[test]
    fn cache_and_rights() {
        let gate = Gate::default();
        gate.remember("Basic abc", &user(&["prod"]));
        assert!(gate.cached("Basic abc").is_some());
        assert!(gate.cached("Basic abd").is_none());
        assert!(may_read(&user(&["prod"]), "prod"));
        assert!(!may_read(&user(&["prod"]), "preprod"));
    }
}
