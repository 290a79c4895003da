//! The one error type of the `sign` module: every message names the file or
//! key involved and says what to do about it.

use std::io;
use std::path::PathBuf;

/// Sequoia reports failures as `anyhow::Error`, which does not implement
/// `std::error::Error` itself; boxing keeps the chain usable as `#[source]`.
pub type OpenPgpError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while managing keys, signing or verifying.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A filesystem operation on a key file or directory failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A secret key file is accessible to other users.
    #[error(
        "key file {} is readable or writable by group or others (mode {mode:04o}); \
         run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecureKeyFile { path: PathBuf, mode: u32 },

    /// The key directory is accessible to other users.
    #[error(
        "key directory {} is accessible by group or others (mode {mode:04o}); \
         run `chmod 700 {}`",
        path.display(),
        path.display()
    )]
    InsecureKeyDir { path: PathBuf, mode: u32 },

    /// A key file could not be parsed or does not hold a usable key.
    #[error("key file {} is not usable: {reason}", path.display())]
    BadKeyFile {
        path: PathBuf,
        reason: String,
        #[source]
        source: Option<OpenPgpError>,
    },

    /// A key file is already present where a new one would be written.
    #[error("key file {} already exists; refusing to overwrite it", path.display())]
    KeyExists { path: PathBuf },

    /// A fingerprint argument is not 40 hex digits.
    #[error(
        "`{fingerprint}` is not a key fingerprint (expected 40 hex digits, \
         as listed by the key list)"
    )]
    InvalidFingerprint { fingerprint: String },

    /// The named key is not one of the signing keys.
    #[error("no signing key {fingerprint} in {}", dir.display())]
    KeyNotFound { fingerprint: String, dir: PathBuf },

    /// There is no key to sign with (or to verify against).
    #[error("no signing key in {}; generate a key first", dir.display())]
    NoSigningKeys { dir: PathBuf },

    /// Retiring this key would leave the repository unsigned.
    #[error(
        "refusing to retire {fingerprint}: it is the only signing key; \
         generate its successor first"
    )]
    LastSigningKey { fingerprint: String },

    /// The user id given for a new key is unusable.
    #[error("invalid user id {user_id:?}: {reason}")]
    InvalidUserId {
        user_id: String,
        reason: &'static str,
    },

    /// The newest existing key claims to be from the future.
    #[error(
        "key {fingerprint} was created at unix time {created}, which is not in the \
         past; check the system clock before generating another key"
    )]
    ClockSkew { fingerprint: String, created: u64 },

    /// A fixed signature time predates a signing key, so every verifier
    /// would reject the signature.
    #[error(
        "signature time (unix {time}) is before key {fingerprint} was created \
         (unix {created}); use a later time"
    )]
    TimeBeforeKey {
        fingerprint: String,
        time: u64,
        created: u64,
    },

    /// Sequoia failed while generating, serializing or signing.
    #[error("OpenPGP {action} failed: {source}")]
    OpenPgp {
        action: &'static str,
        #[source]
        source: OpenPgpError,
    },

    /// A clearsigned file has text outside the signed block or a broken frame.
    #[error("malformed cleartext-signed file: {reason}")]
    Framing { reason: String },

    /// A signature is missing, bad, or made by a key that is not trusted.
    #[error("signature verification failed: {reason}")]
    Verification { reason: String },

    /// Good signatures by some signing keys, none by these: keys generated
    /// after the text was signed, until a publish or refresh signs again.
    #[error("not signed by signing key {}", fingerprints.join(", "))]
    NotSignedBy { fingerprints: Vec<String> },
}

impl SignError {
    /// Shorthand for wrapping an I/O error with the operation and path.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SignError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Shorthand for wrapping a Sequoia error.
    pub(crate) fn openpgp(action: &'static str, source: anyhow::Error) -> Self {
        SignError::OpenPgp {
            action,
            source: source.into(),
        }
    }
}
