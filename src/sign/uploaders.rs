//! The uploaders' keyring of the incoming directory: public keys, one of
//! which must have signed a `.changes` for it to be taken.
//!
//! Unlike the repository's own signatures (every signing key must sign),
//! one good signature by any key of the keyring is enough, as with dput
//! and dak; a bad signature by a key of the keyring refuses the file, and
//! signatures by keys outside it are ignored.

use std::io::Read;
use std::path::{Path, PathBuf};

use sequoia_openpgp as openpgp;

use openpgp::cert::CertParser;
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    MessageLayer, MessageStructure, VerificationError, VerificationHelper, VerifierBuilder,
};
use openpgp::policy::StandardPolicy;
use openpgp::{Cert, KeyHandle};

use super::error::SignError;
use super::verify::check_framing;

/// The public keys allowed to sign uploads.
#[derive(Debug, Clone)]
pub struct UploadersKeyring {
    path: PathBuf,
    certs: Vec<Cert>,
}

impl UploadersKeyring {
    /// Reads a keyring file: concatenated public keys, binary or armored.
    pub fn load(path: &Path) -> Result<UploadersKeyring, SignError> {
        let bytes = std::fs::read(path).map_err(|e| SignError::io("read", path, e))?;
        let bad = |reason: String| SignError::BadKeyFile {
            path: path.to_path_buf(),
            reason,
            source: None,
        };
        let parser = CertParser::from_bytes(&bytes)
            .map_err(|e| bad(format!("not an OpenPGP keyring ({e})")))?;
        let mut certs = Vec::new();
        for cert in parser {
            let cert = cert.map_err(|e| bad(format!("a key in it cannot be read ({e})")))?;
            certs.push(cert.strip_secret_key_material());
        }
        if certs.is_empty() {
            let reason = "it holds no public key; export the uploaders' keys into it \
                          (gpg --export KEYID >> FILE)";
            return Err(bad(reason.into()));
        }
        Ok(UploadersKeyring {
            path: path.to_path_buf(),
            certs,
        })
    }

    /// The keyring file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks a cleartext-signed document and returns the signed text and
    /// the fingerprint of the key that made the first good signature.
    pub fn verify(&self, signed: &[u8]) -> Result<(Vec<u8>, String), SignError> {
        if !signed.starts_with(b"-----BEGIN PGP SIGNED MESSAGE-----") {
            return Err(SignError::Verification {
                reason: format!(
                    "it is not signed, and {} requires a signature by one of its keys; sign it with debsign",
                    self.path.display()
                ),
            });
        }
        let mut judge = Judge {
            certs: &self.certs,
            good: None,
            problem: None,
        };
        let text = read_signed(signed, &mut judge)?;
        if let Some(problem) = judge.problem {
            return Err(SignError::Verification { reason: problem });
        }
        let Some(fingerprint) = judge.good else {
            return Err(SignError::Verification {
                reason: format!(
                    "no signature by a key of {}; add the uploader's public key there, or sign with a key it holds",
                    self.path.display()
                ),
            });
        };
        Ok((text, fingerprint))
    }
}

/// The text of a document that may be cleartext-signed, its signature not
/// checked (no uploaders' keyring is configured). Unsigned text is
/// returned as it is.
pub fn signed_text_unchecked(document: &[u8]) -> Result<Vec<u8>, SignError> {
    if !document.starts_with(b"-----BEGIN PGP SIGNED MESSAGE-----") {
        return Ok(document.to_vec());
    }
    read_signed(document, &mut Judge::default())
}

/// Reads the signed text out of a cleartext-signed document, letting
/// `judge` see every signature.
fn read_signed(signed: &[u8], judge: &mut Judge<'_>) -> Result<Vec<u8>, SignError> {
    check_framing(signed)?;
    let policy = StandardPolicy::new();
    let mut text = Vec::new();
    VerifierBuilder::from_bytes(signed)
        .and_then(|b| b.with_policy(&policy, None, judge))
        .and_then(|mut v| Ok(v.read_to_end(&mut text)?))
        .map_err(|e| SignError::Verification {
            reason: format!("{e:#}"),
        })?;
    Ok(text)
}

/// What the verifier saw: one good signature by a key of the keyring, or
/// the first bad one by such a key.
#[derive(Default)]
struct Judge<'c> {
    certs: &'c [Cert],
    good: Option<String>,
    problem: Option<String>,
}

impl VerificationHelper for &mut Judge<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.certs.to_vec())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        for layer in structure {
            let MessageLayer::SignatureGroup { results } = layer else {
                self.problem
                    .get_or_insert("unexpected compression or encryption layer".into());
                continue;
            };
            for result in results {
                match result {
                    Ok(good) => {
                        let fingerprint = good.ka.cert().fingerprint().to_hex();
                        self.good.get_or_insert(fingerprint);
                    }
                    Err(VerificationError::MissingKey { .. }) => {}
                    Err(e) => {
                        self.problem.get_or_insert(e.to_string());
                    }
                }
            }
        }
        Ok(())
    }
}
