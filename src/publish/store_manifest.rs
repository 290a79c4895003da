//! What a publish target holds besides the dists and the objects: the
//! small JSON files the primary writes so that a stateless frontend
//! (`bess serve --from s3://…`) needs nothing but the store.
//!
//! The store layout under `<prefix>/`:
//! - `objects/<sha256>`: every pool object a channel references (packages
//!   and boxes), content-addressed, written once;
//! - `<channel>/dists/<dist>/…`: the local dists files byte for byte,
//!   by-hash copies included, `InRelease` last;
//! - `<channel>/boxes.json`: the channel's placed boxes ([`BoxIndex`]),
//!   written after their objects;
//! - `key.gpg`: the binary public keyring;
//! - `bess.json`: channels, dists, components and architectures
//!   ([`StoreManifest`]);
//! - `.bess/users.json`: users, argon2 hashes and rights ([`PublishedUsers`]),
//!   under a dot name that a bucket policy can keep private where the
//!   bucket is served directly.
//!
//! Each file carries `format`; a frontend refuses a format it does not know
//! rather than misreading it.

use serde::{Deserialize, Serialize};

/// The only format written and read so far.
pub const FORMAT: u32 = 1;

/// Key of the manifest, under the target's prefix.
pub const MANIFEST_KEY: &str = "bess.json";
/// Key of the users, under the target's prefix.
pub const USERS_KEY: &str = ".bess/users.json";
/// Key of the public keyring, under the target's prefix.
pub const KEYRING_KEY: &str = "key.gpg";

/// Key of a channel's box index, under the target's prefix.
pub fn boxes_key(channel: &str) -> String {
    format!("{channel}/boxes.json")
}

/// Key of a pool object, under the target's prefix.
pub fn object_key(sha256: &str) -> String {
    format!("objects/{sha256}")
}

/// What the repository publishes: the frontend serves these channels and
/// dists, and writes them into `bess.sources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreManifest {
    pub format: u32,
    pub channels: Vec<String>,
    pub dists: Vec<String>,
    pub components: Vec<String>,
    pub archs: Vec<String>,
}

/// One user as a frontend checks them: only an argon2 PHC hash is ever
/// published (never a password or another kind of hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedUser {
    pub name: String,
    pub password_hash: String,
    pub read: Vec<String>,
    pub upload: Vec<String>,
    pub admin: bool,
}

/// Every user of the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedUsers {
    pub format: u32,
    pub users: Vec<PublishedUser>,
}

/// One placed box: its file in the channel is
/// `boxes/<name>/<version>/<provider>-<arch>.box`, its bytes `objects/<sha256>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedBox {
    pub name: String,
    pub version: String,
    pub provider: String,
    pub arch: String,
    pub sha256: String,
    pub size: u64,
}

/// The boxes placed in one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxIndex {
    pub format: u32,
    pub boxes: Vec<PublishedBox>,
}

/// Why a published file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{key} is not valid JSON of its kind: {source}")]
    Json {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{key} has format {found}, this bess reads format {FORMAT}; upgrade the frontend to the primary's version"
    )]
    Format { key: String, found: u32 },
}

/// Parses a published JSON file of type `T`, checking its format.
pub fn parse<T: serde::de::DeserializeOwned + Formatted>(
    key: &str,
    bytes: &[u8],
) -> Result<T, ManifestError> {
    let value: T = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
        key: key.to_string(),
        source,
    })?;
    match value.format() {
        FORMAT => Ok(value),
        found => Err(ManifestError::Format {
            key: key.to_string(),
            found,
        }),
    }
}

/// A published file that states its format.
pub trait Formatted {
    fn format(&self) -> u32;
}

impl Formatted for StoreManifest {
    fn format(&self) -> u32 {
        self.format
    }
}

impl Formatted for PublishedUsers {
    fn format(&self) -> u32 {
        self.format
    }
}

impl Formatted for BoxIndex {
    fn format(&self) -> u32 {
        self.format
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_format_is_refused_with_what_to_do() {
        let text = br#"{"format":2,"channels":[],"dists":[],"components":[],"archs":[]}"#;
        let err = parse::<StoreManifest>(MANIFEST_KEY, text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("format 2") && err.contains("upgrade"), "{err}");
        let good = br#"{"format":1,"channels":["prod"],"dists":["bookworm"],"components":["main"],"archs":["amd64"]}"#;
        let manifest = parse::<StoreManifest>(MANIFEST_KEY, good).unwrap();
        assert_eq!(manifest.channels, ["prod"]);
    }
}
