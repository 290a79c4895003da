//! Checking InRelease and Release.gpg against the store's signing keys, the
//! way `bess repo check` needs it: every current signing key must have made
//! a valid signature.

use std::io::Read;

use sequoia_openpgp as openpgp;

use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DetachedVerifierBuilder, MessageLayer, MessageStructure, VerificationHelper, VerifierBuilder,
};
use openpgp::policy::StandardPolicy;
use openpgp::{Cert, KeyHandle};

use super::error::SignError;

const SIGNED_HEADER: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----";
const SIG_HEADER: &[u8] = b"-----BEGIN PGP SIGNATURE-----";
const SIG_FOOTER: &[u8] = b"-----END PGP SIGNATURE-----";

/// Collects what the verifier saw; judged after the whole input is read.
struct Collector<'c> {
    certs: &'c [Cert],
    /// Primary fingerprints with at least one good signature.
    good: Vec<String>,
    /// Human-readable problems with signatures by known keys.
    problems: Vec<String>,
}

impl VerificationHelper for &mut Collector<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.certs.to_vec())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        for layer in structure {
            let MessageLayer::SignatureGroup { results } = layer else {
                self.problems
                    .push("unexpected compression or encryption layer".into());
                continue;
            };
            for result in results {
                match result {
                    Ok(good) => self.good.push(good.ka.cert().fingerprint().to_hex()),
                    // Signatures by keys we do not hold (say, another
                    // repository's) neither help nor hurt, as with apt.
                    Err(openpgp::parse::stream::VerificationError::MissingKey { .. }) => {}
                    Err(e) => self.problems.push(e.to_string()),
                }
            }
        }
        Ok(())
    }
}

impl Collector<'_> {
    /// Succeeds only if no known key made a bad signature and every cert
    /// made a good one.
    fn verdict(self) -> Result<(), SignError> {
        if let Some(problem) = self.problems.first() {
            return Err(verification(problem.clone()));
        }
        let missing: Vec<String> = self
            .certs
            .iter()
            .map(|cert| cert.fingerprint().to_hex())
            .filter(|fpr| !self.good.contains(fpr))
            .collect();
        match missing.first() {
            None => Ok(()),
            Some(fpr) if self.good.is_empty() => Err(verification(format!(
                "no valid signature by signing key {fpr}"
            ))),
            Some(_) => Err(SignError::NotSignedBy {
                fingerprints: missing,
            }),
        }
    }
}

/// Builds a `Verification` error.
fn verification(reason: String) -> SignError {
    SignError::Verification { reason }
}

/// Verifies a cleartext-signed document and returns the signed text.
pub(crate) fn cleartext(certs: &[Cert], signed: &[u8]) -> Result<Vec<u8>, SignError> {
    check_framing(signed)?;
    let policy = StandardPolicy::new();
    let mut collector = Collector {
        certs,
        good: Vec::new(),
        problems: Vec::new(),
    };
    let mut text = Vec::new();
    VerifierBuilder::from_bytes(signed)
        .and_then(|b| b.with_policy(&policy, None, &mut collector))
        .and_then(|mut v| Ok(v.read_to_end(&mut text)?))
        .map_err(|e| verification(format!("{e:#}")))?;
    collector.verdict()?;
    Ok(text)
}

/// Verifies detached signature(s) `sig` (armored or binary) over `data`.
pub(crate) fn detached(certs: &[Cert], data: &[u8], sig: &[u8]) -> Result<(), SignError> {
    let policy = StandardPolicy::new();
    let mut collector = Collector {
        certs,
        good: Vec::new(),
        problems: Vec::new(),
    };
    DetachedVerifierBuilder::from_bytes(sig)
        .and_then(|b| b.with_policy(&policy, None, &mut collector))
        .and_then(|mut v| v.verify_bytes(data))
        .map_err(|e| verification(format!("{e:#}")))?;
    collector.verdict()
}

/// Enforces what apt enforces on InRelease: the file is exactly one signed
/// block, with nothing but trailing whitespace outside it, so no unsigned
/// text can ride along.
pub(crate) fn check_framing(signed: &[u8]) -> Result<(), SignError> {
    let lines: Vec<&[u8]> = signed.split(|&b| b == b'\n').map(trim_cr).collect();
    if lines.first() != Some(&SIGNED_HEADER) {
        return Err(framing(
            "it does not start with the BEGIN PGP SIGNED MESSAGE line",
        ));
    }
    for (marker, name) in [
        (SIGNED_HEADER, "BEGIN PGP SIGNED MESSAGE"),
        (SIG_HEADER, "BEGIN PGP SIGNATURE"),
        (SIG_FOOTER, "END PGP SIGNATURE"),
    ] {
        let count = lines.iter().filter(|l| **l == marker).count();
        if count != 1 {
            return Err(framing(&format!("expected one {name} line, found {count}")));
        }
    }
    let end = lines.iter().position(|l| *l == SIG_FOOTER).unwrap_or(0);
    let begin_sig = lines.iter().position(|l| *l == SIG_HEADER).unwrap_or(0);
    if begin_sig > end {
        return Err(framing("the signature ends before it begins"));
    }
    if lines[end + 1..].iter().any(|l| !l.trim_ascii().is_empty()) {
        return Err(framing("there is text after the END PGP SIGNATURE line"));
    }
    Ok(())
}

/// Strips one trailing carriage return (CRLF files).
fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Builds a `Framing` error.
fn framing(reason: &str) -> SignError {
    SignError::Framing {
        reason: reason.to_owned(),
    }
}
