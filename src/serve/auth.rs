//! Who is asking: HTTP basic auth against argon2id hashes, a short-lived
//! cache of verified credentials (apt sends them on every request) that
//! every change to users empties at once, and the brake on guessing.

use super::brake::Brake;
use super::verifier::{Busy, Directory, Lookup, PublishedDirectory, Verifier};
use crate::catalog::UserRow;
use crate::serial::SerialWatch;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long verified credentials are trusted without running argon2 again
/// (a change to users ends the trust at once, see [`Gate::cached`]).
const CACHE_TTL: Duration = Duration::from_secs(60);

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

/// Why a request was not let in.
#[derive(Debug)]
pub enum Refusal {
    /// No credentials, or wrong ones.
    Unauthorized,
    /// Too many failures from this address or for this name: retry after this long.
    Throttled(Duration),
    /// Every password-checking thread is busy with a queue behind it.
    Busy,
}

/// Who may come in: verified credentials, the brake on guessing and the
/// threads that check passwords, shared by all connections.
pub struct Gate {
    /// SHA-256 of the raw header value (never the password itself) → user,
    /// and the users serial it was verified under.
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    /// One verification at a time per header: when a fleet of apt clients
    /// (or one client's parallel connections) arrives with the same
    /// credentials, argon2 runs once and the others wait for its verdict.
    verifying: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    brake: Brake,
    verifier: Verifier,
    /// Lookups without a password (the holder of a box token), through
    /// one connection kept open.
    lookups: Mutex<Lookup>,
    /// Bumped by every change to users.
    users: Option<UsersSerial>,
}

/// What says users changed: the catalog's users serial (bumped by
/// `bess user …` in any process), or the frontend's reloads.
enum UsersSerial {
    Catalog(SerialWatch),
    Published(Arc<PublishedDirectory>),
}

impl UsersSerial {
    fn current(&self) -> u64 {
        match self {
            UsersSerial::Catalog(watch) => watch.current(),
            UsersSerial::Published(published) => published.serial(),
        }
    }
}

/// Drops the lock of a finished verification (waiters keep their copy).
struct ForgetTurn<'a>(&'a Gate, [u8; 32]);

impl Drop for ForgetTurn<'_> {
    fn drop(&mut self) {
        self.0.verifying.lock().expect("gate lock").remove(&self.1);
    }
}

struct Verified {
    user: UserRow,
    at: Instant,
    serial: u64,
}

impl Gate {
    /// A gate for the users of the catalog in `layout`, counting password
    /// checks in `checks`.
    pub fn open(
        layout: &crate::config::Layout,
        checks: Arc<std::sync::atomic::AtomicU64>,
    ) -> anyhow::Result<Gate> {
        let serial = layout.users_serial();
        // Without the serial, changes to users could not be noticed: then
        // nothing is cached and every request is checked afresh.
        let users = SerialWatch::open(&serial)
            .map_err(|e| {
                eprintln!(
                    "warning: cannot map {} ({e}); every request's credentials are checked with argon2",
                    serial.display()
                )
            })
            .ok();
        let directory = Directory::Catalog(layout.catalog_file());
        Gate::with_directory(directory, users.map(UsersSerial::Catalog), checks)
    }

    /// A gate for the users a frontend reads from the store.
    pub fn published(
        users: Arc<PublishedDirectory>,
        checks: Arc<std::sync::atomic::AtomicU64>,
    ) -> anyhow::Result<Gate> {
        let serial = UsersSerial::Published(users.clone());
        Gate::with_directory(Directory::Published(users), Some(serial), checks)
    }

    fn with_directory(
        directory: Directory,
        users: Option<UsersSerial>,
        checks: Arc<std::sync::atomic::AtomicU64>,
    ) -> anyhow::Result<Gate> {
        Ok(Gate {
            verified: Mutex::default(),
            verifying: Mutex::default(),
            brake: Brake::default(),
            verifier: Verifier::start(&directory, checks)?,
            lookups: Mutex::new(Lookup::new(directory)),
            users,
        })
    }

    /// The user behind an `Authorization` header, for a request from `client`.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        client: IpAddr,
    ) -> Result<UserRow, Refusal> {
        let header = header.ok_or(Refusal::Unauthorized)?;
        if let Some(user) = self.cached(header) {
            return Ok(user);
        }
        let turn = self.verification_turn(header);
        let _turn = turn.lock().await;
        if let Some(user) = self.cached(header) {
            return Ok(user);
        }
        // Also when the client goes away mid-check and this future is dropped.
        let _forget = ForgetTurn(self, fingerprint(header));
        self.verify(header, client).await
    }

    /// Checks the password (after the brake), and remembers a success.
    async fn verify(&self, header: &str, client: IpAddr) -> Result<UserRow, Refusal> {
        let Some((name, password)) = basic_credentials(header) else {
            self.brake.malformed(client);
            return Err(Refusal::Unauthorized);
        };
        // Read before the catalog is: a change committed after this read
        // makes the entry stale at once.
        let serial = self.users_serial();
        let admitted = self
            .brake
            .admit(client, Some(&name))
            .map_err(Refusal::Throttled)?;
        match self.verifier.verify(&name, &password).await {
            Ok(Some(user)) => {
                self.brake.succeeded(admitted);
                if let Some(serial) = serial {
                    self.remember(header, &user, serial);
                }
                Ok(user)
            }
            Ok(None) => Err(Refusal::Unauthorized),
            Err(Busy) => {
                // Not checked, so not a failure.
                self.brake.succeeded(admitted);
                Err(Refusal::Busy)
            }
        }
    }

    /// The user named `name` as they are now (blocking: a catalog read).
    pub fn current_user(&self, name: &str) -> Option<UserRow> {
        self.lookups.lock().expect("gate lock").user(name)
    }

    fn users_serial(&self) -> Option<u64> {
        self.users.as_ref().map(UsersSerial::current)
    }

    /// The user whose credentials were verified recently under this
    /// header, unless users changed since.
    fn cached(&self, header: &str) -> Option<UserRow> {
        let serial = self.users_serial()?;
        let key = fingerprint(header);
        let mut verified = self.verified.lock().expect("gate lock");
        match verified.get(&key) {
            Some(entry) if entry.at.elapsed() < CACHE_TTL && entry.serial == serial => {
                Some(entry.user.clone())
            }
            Some(_) => {
                verified.remove(&key);
                None
            }
            None => None,
        }
    }

    /// The lock to hold while verifying this header.
    fn verification_turn(&self, header: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut verifying = self.verifying.lock().expect("gate lock");
        verifying.entry(fingerprint(header)).or_default().clone()
    }

    /// Remembers a successful verification.
    fn remember(&self, header: &str, user: &UserRow, serial: u64) {
        let mut verified = self.verified.lock().expect("gate lock");
        if verified.len() > 10_000 {
            verified.retain(|_, entry| entry.at.elapsed() < CACHE_TTL && entry.serial == serial);
        }
        let entry = Verified {
            user: user.clone(),
            at: Instant::now(),
            serial,
        };
        verified.insert(fingerprint(header), entry);
    }
}

fn fingerprint(header: &str) -> [u8; 32] {
    Sha256::digest(header.as_bytes()).into()
}

/// Whether `user` may read `channel`.
pub fn may_read(user: &UserRow, channel: &str) -> bool {
    user.admin || user.read.iter().chain(&user.upload).any(|c| c == channel)
}

/// Whether `user` may create and destroy environments of `platform`.
pub fn may_manage_environments(user: &UserRow, platform: &str) -> bool {
    user.admin || user.env.iter().any(|p| p == platform)
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
            env: Vec::new(),
            environment: None,
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
    fn rights() {
        assert!(may_read(&user(&["prod"]), "prod"));
        assert!(!may_read(&user(&["prod"]), "preprod"));
    }
}
