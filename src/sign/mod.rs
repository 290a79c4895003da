//! OpenPGP keys and signatures for APT metadata: key storage and rotation,
//! InRelease / Release.gpg signing, and verification.
//!
//! Compatibility targets, checked against the real tools in
//! `tests/sign_verify.rs`: apt 2.6 (Debian 12) verifies with `gpgv` 2.2,
//! which reads v4 keys only and only from a *binary* keyring; newer apt uses
//! `sqv`.  Keys are therefore v4 Ed25519 (certification-only primary key
//! plus a signing subkey, no expiry) and signatures are v4 with SHA-512.
//!
//! On-disk layout, below the directory given to [`KeyStore::open`]:
//!
//! ```text
//! DIR/keys/                    mode 0700
//! DIR/keys/<FPR>.key           mode 0600, ASCII-armored secret key (TSK), signing
//! DIR/keys/retired/<FPR>.key   mode 0600, a retired key, kept but not used
//! ```
//!
//! `<FPR>` is the 40-digit uppercase primary key fingerprint.  Signing keys
//! are ordered by key creation time (oldest first); [`KeyStore::generate`]
//! makes each new key at least one second younger than every existing one,
//! so the order is the generation order.  Secret keys are not
//! passphrase-protected: the publisher signs unattended, so the file mode
//! is the protection, and files or directories that grant group/other
//! access are refused.
//!
//! Determinism: Sequoia adds a random 32-byte salt notation
//! (`salt@notations.sequoia-pgp.org`) to every v4 signature it makes, as a
//! hardening against fault attacks on deterministic Ed25519.  Signatures are
//! therefore never byte-identical across calls, even with
//! [`Signer::with_time`]; what *is* stable for a fixed time and input is
//! everything outside the armored signature block (the InRelease header and
//! text) and the signatures' creation time.
//!
//! Verifier behaviour worth knowing (asserted in `tests/sign_verify.rs`):
//! InRelease keeps the text's final newline signed, so a blank line sits
//! before `-----BEGIN PGP SIGNATURE-----` (gpg would drop that newline);
//! gpgv, apt's own splitter + sqv, and `apt-get update` all accept it.  With
//! several signing keys and a keyring holding only some of them, gpgv prints
//! GOODSIG for the known ones but exits 2 (NO_PUBKEY); apt 2.6 still accepts
//! the repository, and sqv (default `-n 1`) succeeds.  gpgv cannot read an
//! armored keyring, so `export_public(false)` is the one for `signed-by=`
//! files ending in `.gpg`.

mod error;
mod files;
mod keys;
mod signer;
mod uploaders;
mod verify;

use std::path::{Path, PathBuf};

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::armor;

pub use error::{OpenPgpError, SignError};
pub use signer::Signer;
pub use uploaders::{UploadersKeyring, signed_text_unchecked};

use keys::{KEY_SUFFIX, StoredKey};

/// The signing keys of one repository, stored under `DIR/keys`.
#[derive(Debug, Clone)]
pub struct KeyStore {
    /// `DIR/keys`: the signing keys; retired ones live in `retired/` below.
    keys_dir: PathBuf,
}

impl KeyStore {
    /// Opens the key store of `dir` (keys live in `dir/keys`).  Nothing is
    /// touched on disk; the directory may not exist yet.
    pub fn open(dir: &Path) -> KeyStore {
        KeyStore {
            keys_dir: dir.join("keys"),
        }
    }

    /// The directory holding the key files (`DIR/keys`).
    pub fn keys_dir(&self) -> &Path {
        &self.keys_dir
    }

    /// The directory holding retired key files (`DIR/keys/retired`).
    fn retired_dir(&self) -> PathBuf {
        self.keys_dir.join("retired")
    }

    /// Generates a new Ed25519 key with `user_id`, stores it as a signing
    /// key and returns its fingerprint (40 uppercase hex digits).  Existing
    /// keys keep signing: rotation is generate, publish, then retire.
    pub fn generate(&self, user_id: &str) -> Result<String, SignError> {
        files::ensure_private_dir(&self.keys_dir)?;
        let mut existing = keys::load_all(&self.keys_dir)?;
        existing.extend(keys::load_all(&self.retired_dir())?);
        let newest = existing.iter().max_by_key(|k| k.created);
        let created = keys::next_creation_time(newest)?;
        let cert = keys::generate(user_id, created)?;
        let fingerprint = cert.fingerprint().to_hex();
        let bytes = keys::armored_secret(&cert)?;
        files::write_new_private(
            &self.keys_dir,
            &format!("{fingerprint}{KEY_SUFFIX}"),
            &bytes,
        )?;
        Ok(fingerprint)
    }

    /// Fingerprints of every key that currently signs, oldest first.
    pub fn signing_fingerprints(&self) -> Result<Vec<String>, SignError> {
        Ok(keys::load_all(&self.keys_dir)?
            .into_iter()
            .map(|k| k.fingerprint)
            .collect())
    }

    /// Fingerprints of the retired keys, oldest first.
    pub fn retired_fingerprints(&self) -> Result<Vec<String>, SignError> {
        Ok(keys::load_all(&self.retired_dir())?
            .into_iter()
            .map(|k| k.fingerprint)
            .collect())
    }

    /// Retires a signing key: its file moves to `DIR/keys/retired/`, so it
    /// no longer signs and is no longer exported.  The last signing key
    /// cannot be retired (the repository would become unsignable).
    /// `fingerprint` may be lowercase or spaced.
    pub fn retire(&self, fingerprint: &str) -> Result<(), SignError> {
        let fingerprint = keys::normalize_fingerprint(fingerprint)?;
        let signing = self.signing_fingerprints()?;
        if !signing.contains(&fingerprint) {
            return Err(SignError::KeyNotFound {
                fingerprint,
                dir: self.keys_dir.clone(),
            });
        }
        if signing.len() == 1 {
            return Err(SignError::LastSigningKey { fingerprint });
        }
        let name = format!("{fingerprint}{KEY_SUFFIX}");
        files::ensure_private_dir(&self.retired_dir())?;
        files::move_no_clobber(&self.keys_dir.join(&name), &self.retired_dir().join(&name))
    }

    /// The public certificates of the signing keys, oldest first: binary
    /// (a keyring for gpgv / apt `signed-by=`) or one ASCII-armored block.
    /// Retired keys are not included.
    pub fn export_public(&self, armor: bool) -> Result<Vec<u8>, SignError> {
        let mut binary = Vec::new();
        for key in self.signing_keys()? {
            binary.extend(keys::public_bytes(&key.cert)?);
        }
        if !armor {
            return Ok(binary);
        }
        let fail = |e: std::io::Error| SignError::openpgp("armoring", e.into());
        let mut writer = armor::Writer::new(Vec::new(), armor::Kind::PublicKey).map_err(fail)?;
        std::io::Write::write_all(&mut writer, &binary).map_err(fail)?;
        writer.finalize().map_err(fail)
    }

    /// Loads the secret signing keys once, for many signatures.
    pub fn signer(&self) -> Result<Signer, SignError> {
        let mut loaded = Vec::new();
        for key in self.signing_keys()? {
            let keypair = keys::signing_keypair(&key)?;
            loaded.push((key.fingerprint, keypair));
        }
        Ok(Signer::new(loaded))
    }

    /// [`KeyStore::signer`] without `retiring`, for the Release files a
    /// retirement signs again before the key stops being current. Refused
    /// like [`KeyStore::retire`]: an unknown key, or the last one.
    pub fn signer_except(&self, retiring: &str) -> Result<Signer, SignError> {
        let retiring = keys::normalize_fingerprint(retiring)?;
        let keys = self.signing_keys()?;
        if !keys.iter().any(|k| k.fingerprint == retiring) {
            return Err(SignError::KeyNotFound {
                fingerprint: retiring,
                dir: self.keys_dir.clone(),
            });
        }
        if keys.len() == 1 {
            return Err(SignError::LastSigningKey {
                fingerprint: retiring,
            });
        }
        let mut loaded = Vec::new();
        for key in keys.into_iter().filter(|k| k.fingerprint != retiring) {
            let keypair = keys::signing_keypair(&key)?;
            loaded.push((key.fingerprint, keypair));
        }
        Ok(Signer::new(loaded))
    }

    /// Verifies an InRelease-style cleartext-signed file and returns the
    /// signed text.  Fails unless the file is a single signed block and
    /// every current signing key made a valid signature; signatures by
    /// unknown keys are ignored.
    pub fn verify_cleartext(&self, signed: &[u8]) -> Result<Vec<u8>, SignError> {
        verify::cleartext(&self.signing_certs()?, signed)
    }

    /// Verifies a Release.gpg-style detached signature `sig` over `data`,
    /// with the same rule as [`KeyStore::verify_cleartext`].
    pub fn verify_detached(&self, data: &[u8], sig: &[u8]) -> Result<(), SignError> {
        verify::detached(&self.signing_certs()?, data, sig)
    }

    /// The signing keys, oldest first; at least one.  The key directory
    /// must be private, since these files hold secrets.
    fn signing_keys(&self) -> Result<Vec<StoredKey>, SignError> {
        let no_keys = || SignError::NoSigningKeys {
            dir: self.keys_dir.clone(),
        };
        if !self.keys_dir.exists() {
            return Err(no_keys());
        }
        files::check_private_dir(&self.keys_dir)?;
        let keys = keys::load_all(&self.keys_dir)?;
        if keys.is_empty() {
            return Err(no_keys());
        }
        Ok(keys)
    }

    /// Public certificates of the signing keys, for verification.
    fn signing_certs(&self) -> Result<Vec<Cert>, SignError> {
        Ok(self
            .signing_keys()?
            .into_iter()
            .map(|k| k.cert.strip_secret_key_material())
            .collect())
    }
}

#[cfg(test)]
mod tests;
