//! Key material: generating v4 Ed25519 certificates, reading and checking
//! key files, and picking the signing-capable key of a certificate.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::Profile;
use openpgp::cert::{CertBuilder, CipherSuite};
use openpgp::crypto::KeyPair;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::SerializeInto;
use openpgp::types::KeyFlags;

use super::error::SignError;
use super::files;

/// File name suffix of a key file; the stem is the fingerprint.
pub(crate) const KEY_SUFFIX: &str = ".key";

/// How far new keys are backdated, like Sequoia's own default: a signature
/// made right after generation on a machine whose clock is slightly behind
/// must not predate its key.
const BACKDATE: Duration = Duration::from_secs(60);

/// One key file, loaded and checked.
pub(crate) struct StoredKey {
    pub(crate) fingerprint: String,
    pub(crate) created: SystemTime,
    pub(crate) cert: Cert,
    pub(crate) path: PathBuf,
}

/// Canonical form of a user-supplied fingerprint: 40 uppercase hex digits.
/// Spaces are allowed because GnuPG prints fingerprints in groups.  Anything
/// else is refused, which also keeps it safe to use in a path.
pub(crate) fn normalize_fingerprint(input: &str) -> Result<String, SignError> {
    let compact: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() == 40 && compact.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(compact.to_ascii_uppercase())
    } else {
        Err(SignError::InvalidFingerprint {
            fingerprint: input.to_owned(),
        })
    }
}

/// Loads every key file in `dir`, oldest key first (ties: by fingerprint).
pub(crate) fn load_all(dir: &Path) -> Result<Vec<StoredKey>, SignError> {
    let mut keys = Vec::new();
    for name in files::list_names(dir, KEY_SUFFIX)? {
        keys.push(load(&dir.join(name))?);
    }
    keys.sort_by(|a, b| (a.created, &a.fingerprint).cmp(&(b.created, &b.fingerprint)));
    Ok(keys)
}

/// Loads one key file and checks that it holds the key its name promises,
/// so that a misnamed copy cannot masquerade as another key.
pub(crate) fn load(path: &Path) -> Result<StoredKey, SignError> {
    let bytes = files::read_private(path)?;
    let cert =
        Cert::from_bytes(&bytes).map_err(|e| bad_file(path, "not an OpenPGP key", Some(e)))?;
    let fingerprint = cert.fingerprint().to_hex();
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(KEY_SUFFIX));
    if stem != Some(fingerprint.as_str()) {
        let reason = format!("it holds key {fingerprint}; rename it to {fingerprint}{KEY_SUFFIX}");
        return Err(bad_file(path, &reason, None));
    }
    if !cert.is_tsk() {
        return Err(bad_file(path, "it holds no secret key material", None));
    }
    Ok(StoredKey {
        fingerprint,
        created: cert.primary_key().key().creation_time(),
        cert,
        path: path.to_path_buf(),
    })
}

/// Builds the `BadKeyFile` error for `path`.
fn bad_file(path: &Path, reason: &str, source: Option<anyhow::Error>) -> SignError {
    SignError::BadKeyFile {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
        source: source.map(Into::into),
    }
}

/// The creation time for a new key: backdated, but strictly after the
/// newest existing key, because key age is what orders the signing keys.
pub(crate) fn next_creation_time(newest: Option<&StoredKey>) -> Result<SystemTime, SignError> {
    let now = SystemTime::now();
    let backdated = whole_seconds(now.checked_sub(BACKDATE).unwrap_or(UNIX_EPOCH));
    let Some(newest) = newest else {
        return Ok(backdated);
    };
    let after_newest = newest.created + Duration::from_secs(1);
    if after_newest > now {
        let created = newest
            .created
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        return Err(SignError::ClockSkew {
            fingerprint: newest.fingerprint.clone(),
            created: created.as_secs(),
        });
    }
    Ok(backdated.max(after_newest))
}

/// OpenPGP timestamps are whole seconds; rounding first keeps comparisons
/// between stored and computed times exact.
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Generates a v4 certificate: Ed25519 primary key for certification only,
/// one Ed25519 signing subkey, one user id, no expiry, no passphrase (the
/// publisher signs unattended; the file mode protects the secret).
pub(crate) fn generate(user_id: &str, created: SystemTime) -> Result<Cert, SignError> {
    check_user_id(user_id)?;
    let (cert, _revocation) = CertBuilder::new()
        // gpgv 2.2 (Debian 12) cannot read v6 keys.
        .set_profile(Profile::RFC4880)
        .map_err(|e| SignError::openpgp("profile selection", e))?
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(created)
        .set_validity_period(None)
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_userid(user_id)
        .add_signing_subkey()
        .generate()
        .map_err(|e| SignError::openpgp("key generation", e))?;
    Ok(cert)
}

/// User ids are free-form UTF-8, but an empty one or one with control
/// characters would be confusing in every tool that displays it.
fn check_user_id(user_id: &str) -> Result<(), SignError> {
    let reason = if user_id.trim().is_empty() {
        "it is empty"
    } else if user_id.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(SignError::InvalidUserId {
        user_id: user_id.to_owned(),
        reason,
    })
}

/// The certificate with its secret keys, ASCII-armored, as stored on disk.
pub(crate) fn armored_secret(cert: &Cert) -> Result<Vec<u8>, SignError> {
    cert.as_tsk()
        .armored()
        .to_vec()
        .map_err(|e| SignError::openpgp("secret key serialization", e))
}

/// The certificate without any secret material, binary.
pub(crate) fn public_bytes(cert: &Cert) -> Result<Vec<u8>, SignError> {
    cert.clone()
        .strip_secret_key_material()
        .to_vec()
        .map_err(|e| SignError::openpgp("public key serialization", e))
}

/// The key that signs for `key`: the newest valid, unencrypted,
/// signing-capable key of the certificate under the standard policy.
pub(crate) fn signing_keypair(key: &StoredKey) -> Result<KeyPair, SignError> {
    let policy = StandardPolicy::new();
    let candidate = key
        .cert
        .keys()
        .unencrypted_secret()
        .with_policy(&policy, None)
        .supported()
        .alive()
        .revoked(false)
        .for_signing()
        .max_by_key(|ka| ka.key().creation_time());
    let Some(ka) = candidate else {
        let reason = "it has no valid, unencrypted signing key (expired, revoked, \
                      passphrase-protected or public only); generate a new key";
        return Err(bad_file(&key.path, reason, None));
    };
    ka.key()
        .clone()
        .into_keypair()
        .map_err(|e| bad_file(&key.path, "its signing key cannot be used", Some(e)))
}
