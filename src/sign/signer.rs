//! Producing InRelease (cleartext) and Release.gpg (detached, armored)
//! signatures with every current signing key.

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use sequoia_openpgp as openpgp;

use openpgp::armor;
use openpgp::crypto::KeyPair;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::serialize::stream::{self, Armorer, Message};
use openpgp::types::{HashAlgorithm, SignatureType};

use super::error::SignError;

/// The secret signing keys of a repository, loaded once for many signatures.
///
/// Each call produces one signature per key, in key order (oldest first).
#[derive(Clone)]
pub struct Signer {
    /// (primary fingerprint, signing keypair), oldest key first; never empty.
    keys: Vec<(String, KeyPair)>,
    /// Fixed signature creation time; `None` means "now" at each signature.
    time: Option<SystemTime>,
}

impl fmt::Debug for Signer {
    // Hand-written so that no secret key material can end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("fingerprints", &self.fingerprints())
            .field("time", &self.time)
            .finish()
    }
}

impl Signer {
    /// Wraps loaded keypairs; the caller guarantees `keys` is not empty.
    pub(crate) fn new(keys: Vec<(String, KeyPair)>) -> Signer {
        debug_assert!(!keys.is_empty(), "a Signer needs at least one key");
        Signer { keys, time: None }
    }

    /// The primary-key fingerprints of the keys that sign, oldest first.
    pub fn fingerprints(&self) -> Vec<&str> {
        self.keys.iter().map(|(fpr, _)| fpr.as_str()).collect()
    }

    /// Uses `t` as the creation time of every signature instead of the
    /// current time.  `t` must not predate the signing keys, or verifiers
    /// reject the signatures.
    pub fn with_time(self, t: SystemTime) -> Signer {
        Signer {
            time: Some(t),
            ..self
        }
    }

    /// InRelease: `text` in the cleartext signature framework, signed with
    /// SHA-512 by every key.  Output starts with the `-----BEGIN PGP SIGNED
    /// MESSAGE-----` line and ends with the armor's END line and a newline.
    ///
    /// The framework does not sign trailing spaces and tabs, so they are
    /// removed from the emitted lines as well; a final newline of `text` is
    /// preserved and signed (a blank line then precedes the signature).
    pub fn clearsign(&self, text: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut out = Vec::new();
        let message = Message::new(&mut out);
        let mut writer = self
            .stream_signer(message, SignatureType::Text)?
            .cleartext()
            .build()
            .map_err(|e| SignError::openpgp("cleartext signing", e))?;
        writer
            .write_all(text)
            .map_err(|e| SignError::openpgp("cleartext signing", e.into()))?;
        writer
            .finalize()
            .map_err(|e| SignError::openpgp("cleartext signing", e))?;
        Ok(out)
    }

    /// Release.gpg: ASCII-armored detached binary-mode signatures (SHA-512)
    /// over the exact bytes of `data`, one per key, in one armor block.
    pub fn detached(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut out = Vec::new();
        let message = Message::new(&mut out);
        let message = Armorer::new(message)
            .kind(armor::Kind::Signature)
            .build()
            .map_err(|e| SignError::openpgp("detached signing", e))?;
        let mut writer = self
            .stream_signer(message, SignatureType::Binary)?
            .detached()
            .build()
            .map_err(|e| SignError::openpgp("detached signing", e))?;
        writer
            .write_all(data)
            .map_err(|e| SignError::openpgp("detached signing", e.into()))?;
        writer
            .finalize()
            .map_err(|e| SignError::openpgp("detached signing", e))?;
        Ok(out)
    }

    /// A streaming signer with every key, SHA-512 and the fixed time if any.
    fn stream_signer<'a>(
        &self,
        message: Message<'a>,
        typ: SignatureType,
    ) -> Result<stream::Signer<'a>, SignError> {
        self.check_time()?;
        let fail = |e| SignError::openpgp("signer setup", e);
        let (first, rest) = self.keys.split_first().expect("Signer::new requires keys");
        let template = SignatureBuilder::new(typ);
        let mut signer =
            stream::Signer::with_template(message, first.1.clone(), template).map_err(fail)?;
        for (_, keypair) in rest {
            signer = signer.add_signer(keypair.clone()).map_err(fail)?;
        }
        // Explicit: apt's verifiers accept SHA-512 everywhere, and the
        // default would follow Sequoia's preference list.
        signer = signer.hash_algo(HashAlgorithm::SHA512).map_err(fail)?;
        if let Some(t) = self.time {
            signer = signer.creation_time(t);
        }
        Ok(signer)
    }

    /// Refuses a fixed time before any key's creation: the signatures would
    /// be made, but no verifier would accept them.
    fn check_time(&self) -> Result<(), SignError> {
        let Some(time) = self.time else {
            return Ok(());
        };
        for (fingerprint, keypair) in &self.keys {
            let created = keypair.public().creation_time();
            if time < created {
                return Err(SignError::TimeBeforeKey {
                    fingerprint: fingerprint.clone(),
                    time: unix_seconds(time),
                    created: unix_seconds(created),
                });
            }
        }
        Ok(())
    }
}

/// Seconds since the epoch, for error messages (0 for earlier times).
fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
