//! Unit tests for the sign module: key store behaviour, file permissions,
//! signature packet properties and the in-process verifier.  The external
//! verifiers (gpgv, sqv, apt) are exercised in `tests/sign_verify.rs`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sequoia_openpgp as openpgp;

use openpgp::armor;
use openpgp::packet::Signature;
use openpgp::parse::{PacketParser, PacketParserResult, Parse};
use openpgp::types::{HashAlgorithm, SignatureType};
use openpgp::{Cert, Packet};

use super::files::{read_private, write_new_private};
use super::keys::normalize_fingerprint;
use super::verify::check_framing;
use super::*;

const RELEASE: &[u8] = b"Origin: bess\nSuite: stable\nSHA256:\n \
    e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 main/binary-amd64/Packages\n";

/// A store with `n` generated keys, in a fresh temp dir.
fn store_with_keys(n: usize) -> (tempfile::TempDir, KeyStore, Vec<String>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = KeyStore::open(tmp.path());
    let fprs = (0..n)
        .map(|i| {
            store
                .generate(&format!("bess test {i} <bess@test>"))
                .expect("generate")
        })
        .collect();
    (tmp, store, fprs)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Every signature packet in armored or binary OpenPGP data.
fn signatures(data: &[u8]) -> Vec<Signature> {
    let mut reader = armor::Reader::from_bytes(data, armor::ReaderMode::Tolerant(None));
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut bytes).expect("dearmor");
    let mut sigs = Vec::new();
    let mut ppr = PacketParser::from_bytes(&bytes).expect("parse");
    while let PacketParserResult::Some(pp) = ppr {
        let (packet, next) = pp.recurse().expect("recurse");
        if let Packet::Signature(sig) = packet {
            sigs.push(sig);
        }
        ppr = next;
    }
    sigs
}

/// The armored signature block of a clearsigned document.
fn signature_block(signed: &[u8]) -> &[u8] {
    let marker = b"-----BEGIN PGP SIGNATURE-----";
    let at = signed
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("signature block");
    &signed[at..]
}

#[test]
fn fingerprints_are_normalized_and_validated() {
    let fpr = "0f30 9dad 5c09 a945 cc79  d206 2ae6 115c 683b 5232";
    assert_eq!(
        normalize_fingerprint(fpr).unwrap(),
        "0F309DAD5C09A945CC79D2062AE6115C683B5232"
    );
    for bad in [
        "",
        "0F30",
        "../../etc/passwd",
        &"G".repeat(40),
        &"A".repeat(41),
    ] {
        assert!(matches!(
            normalize_fingerprint(bad),
            Err(SignError::InvalidFingerprint { .. })
        ));
    }
}

#[test]
fn generate_writes_private_files_oldest_first() {
    let (_tmp, store, fprs) = store_with_keys(2);
    assert_eq!(store.signing_fingerprints().unwrap(), fprs);
    assert_eq!(mode(store.keys_dir()), 0o700);
    for fpr in &fprs {
        let path = store.keys_dir().join(format!("{fpr}.key"));
        assert_eq!(mode(&path), 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"));
        assert_eq!(fpr.len(), 40);
        assert!(
            fpr.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }
    // No temp files are left behind.
    assert_eq!(fs::read_dir(store.keys_dir()).unwrap().count(), 2);
}

#[test]
fn generated_key_is_v4_ed25519_without_expiry() {
    let (_tmp, store, fprs) = store_with_keys(1);
    let cert = Cert::from_file(store.keys_dir().join(format!("{}.key", fprs[0]))).unwrap();
    let policy = openpgp::policy::StandardPolicy::new();
    let valid = cert.with_policy(&policy, None).unwrap();
    assert_eq!(cert.primary_key().key().version(), 4);
    assert!(valid.primary_key().key_expiration_time().is_none());
    assert!(valid.primary_key().for_certification());
    assert!(!valid.primary_key().for_signing());
    let signing: Vec<_> = valid.keys().subkeys().for_signing().collect();
    assert_eq!(signing.len(), 1);
    assert_eq!(
        signing[0].key().pk_algo(),
        openpgp::types::PublicKeyAlgorithm::EdDSA
    );
    assert_eq!(cert.userids().count(), 1);
}

#[test]
fn generate_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_new_private(dir, "X.key", b"first").unwrap();
    let err = write_new_private(dir, "X.key", b"second").unwrap_err();
    assert!(matches!(err, SignError::KeyExists { .. }), "{err}");
    assert_eq!(fs::read(dir.join("X.key")).unwrap(), b"first");
    assert_eq!(
        fs::read_dir(dir).unwrap().count(),
        1,
        "temp file left behind"
    );
}

#[test]
fn bad_user_ids_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path());
    for bad in ["", "  ", "a\nb"] {
        assert!(matches!(
            store.generate(bad),
            Err(SignError::InvalidUserId { .. })
        ));
    }
}

#[test]
fn group_readable_key_file_is_refused() {
    let (_tmp, store, fprs) = store_with_keys(1);
    let path = store.keys_dir().join(format!("{}.key", fprs[0]));
    chmod(&path, 0o644);
    let err = store.signer().unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, SignError::InsecureKeyFile { mode: 0o644, .. }),
        "{msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("mode 0644") && msg.contains("chmod 600"),
        "{msg}"
    );
    assert!(read_private(&path).is_err());
    chmod(&path, 0o600);
    store.signer().unwrap();
}

#[test]
fn shared_key_directory_is_refused() {
    let (_tmp, store, _) = store_with_keys(1);
    chmod(store.keys_dir(), 0o755);
    let err = store.signer().unwrap_err();
    assert!(
        matches!(err, SignError::InsecureKeyDir { mode: 0o755, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 700"));
    assert!(matches!(
        store.generate("x <x@y>"),
        Err(SignError::InsecureKeyDir { .. })
    ));
}

#[test]
fn misnamed_key_file_is_refused() {
    let (_tmp, store, fprs) = store_with_keys(1);
    let from = store.keys_dir().join(format!("{}.key", fprs[0]));
    let to = store.keys_dir().join(format!("{}.key", "A".repeat(40)));
    fs::rename(&from, &to).unwrap();
    let err = store.signing_fingerprints().unwrap_err();
    assert!(matches!(err, SignError::BadKeyFile { .. }), "{err}");
    assert!(err.to_string().contains(&fprs[0]), "{err}");
}

#[test]
fn empty_store_cannot_sign_or_export() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(&tmp.path().join("not-yet"));
    assert!(store.signing_fingerprints().unwrap().is_empty());
    assert!(matches!(
        store.signer(),
        Err(SignError::NoSigningKeys { .. })
    ));
    assert!(matches!(
        store.export_public(false),
        Err(SignError::NoSigningKeys { .. })
    ));
    assert!(!tmp.path().join("not-yet").exists(), "open must not create");
}

#[test]
fn retire_moves_key_out_of_signing_set() {
    let (_tmp, store, fprs) = store_with_keys(2);
    store.retire(&fprs[0].to_lowercase()).unwrap();
    assert_eq!(store.signing_fingerprints().unwrap(), vec![fprs[1].clone()]);
    assert_eq!(store.retired_fingerprints().unwrap(), vec![fprs[0].clone()]);
    let retired = store.keys_dir().join("retired");
    assert_eq!(mode(&retired), 0o700);
    assert_eq!(mode(&retired.join(format!("{}.key", fprs[0]))), 0o600);
    assert_eq!(
        store.signer().unwrap().fingerprints(),
        vec![fprs[1].as_str()]
    );
    // A newer key is still younger than the retired one.
    let third = store.generate("third <t@t>").unwrap();
    assert_eq!(
        store.signing_fingerprints().unwrap(),
        vec![fprs[1].clone(), third]
    );
}

#[test]
fn retire_refuses_last_unknown_and_malformed() {
    let (_tmp, store, fprs) = store_with_keys(1);
    assert!(matches!(
        store.retire(&fprs[0]),
        Err(SignError::LastSigningKey { .. })
    ));
    assert!(matches!(
        store.retire(&"B".repeat(40)),
        Err(SignError::KeyNotFound { .. })
    ));
    assert!(matches!(
        store.retire("nope"),
        Err(SignError::InvalidFingerprint { .. })
    ));
    assert_eq!(store.signing_fingerprints().unwrap(), fprs);
}

#[test]
fn export_public_has_no_secrets() {
    let (_tmp, store, fprs) = store_with_keys(2);
    let binary = store.export_public(false).unwrap();
    assert!(!binary.starts_with(b"-----"));
    let certs: Vec<Cert> = openpgp::cert::CertParser::from_bytes(&binary)
        .unwrap()
        .collect::<openpgp::Result<_>>()
        .unwrap();
    let got: Vec<String> = certs.iter().map(|c| c.fingerprint().to_hex()).collect();
    assert_eq!(got, fprs);
    assert!(certs.iter().all(|c| !c.is_tsk()));
    let armored = store.export_public(true).unwrap();
    assert!(armored.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n"));
    assert!(armored.ends_with(b"-----END PGP PUBLIC KEY BLOCK-----\n"));
    let from_armor: Vec<Cert> = openpgp::cert::CertParser::from_bytes(&armored)
        .unwrap()
        .collect::<openpgp::Result<_>>()
        .unwrap();
    assert_eq!(from_armor, certs);
}

#[test]
fn clearsign_frame_and_packets() {
    let (_tmp, store, fprs) = store_with_keys(2);
    let t = UNIX_EPOCH
        + Duration::from_secs(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
    let signed = store
        .signer()
        .unwrap()
        .with_time(t)
        .clearsign(RELEASE)
        .unwrap();
    let mut expected_head = b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n".to_vec();
    expected_head.extend_from_slice(RELEASE);
    expected_head.extend_from_slice(b"\n-----BEGIN PGP SIGNATURE-----\n");
    assert!(
        signed.starts_with(&expected_head),
        "{}",
        String::from_utf8_lossy(&signed)
    );
    assert!(signed.ends_with(b"-----END PGP SIGNATURE-----\n"));
    check_framing(&signed).unwrap();
    let sigs = signatures(signature_block(&signed));
    assert_eq!(sigs.len(), fprs.len());
    for sig in &sigs {
        assert_eq!(sig.version(), 4);
        assert_eq!(sig.typ(), SignatureType::Text);
        assert_eq!(sig.hash_algo(), HashAlgorithm::SHA512);
        assert_eq!(sig.signature_creation_time(), Some(t));
    }
}

#[test]
fn detached_packets() {
    let (_tmp, store, fprs) = store_with_keys(2);
    let sig = store.signer().unwrap().detached(RELEASE).unwrap();
    assert!(sig.starts_with(b"-----BEGIN PGP SIGNATURE-----\n"));
    assert!(sig.ends_with(b"-----END PGP SIGNATURE-----\n"));
    let sigs = signatures(&sig);
    assert_eq!(sigs.len(), fprs.len());
    for s in &sigs {
        assert_eq!((s.version(), s.typ()), (4, SignatureType::Binary));
        assert_eq!(s.hash_algo(), HashAlgorithm::SHA512);
    }
}

/// Finding: not byte-stable.  Sequoia salts every v4 signature with a random
/// notation, so only the signed part and the creation time repeat.
#[test]
fn fixed_time_is_stable_except_for_the_salt() {
    let (_tmp, store, _) = store_with_keys(1);
    let t = SystemTime::now();
    let signer = store.signer().unwrap().with_time(t);
    let (a, b) = (
        signer.clearsign(RELEASE).unwrap(),
        signer.clearsign(RELEASE).unwrap(),
    );
    assert_ne!(a, b);
    let head = |s: &[u8]| s.len() - signature_block(s).len();
    assert_eq!(a[..head(&a)], b[..head(&b)]);
    let salt = |s: &[u8]| {
        let sig = signatures(signature_block(s)).remove(0);
        let notes: Vec<_> = sig
            .notation_data()
            .filter(|n| n.name() == "salt@notations.sequoia-pgp.org")
            .map(|n| n.value().to_vec())
            .collect();
        (sig.signature_creation_time(), notes)
    };
    let (ta, sa) = salt(&a);
    let (tb, sb) = salt(&b);
    assert_eq!(ta, tb);
    assert_eq!((sa.len(), sb.len()), (1, 1));
    assert_ne!(sa, sb);
    let d1 = signer.detached(RELEASE).unwrap();
    assert_ne!(d1, signer.detached(RELEASE).unwrap());
}

#[test]
fn time_before_key_creation_is_refused() {
    let (_tmp, store, _) = store_with_keys(1);
    let signer = store
        .signer()
        .unwrap()
        .with_time(UNIX_EPOCH + Duration::from_secs(1_000_000));
    let err = signer.clearsign(RELEASE).unwrap_err();
    assert!(matches!(err, SignError::TimeBeforeKey { .. }), "{err}");
}

#[test]
fn verify_round_trips_and_catches_tampering() {
    let (_tmp, store, _) = store_with_keys(2);
    let signer = store.signer().unwrap();
    let signed = signer.clearsign(RELEASE).unwrap();
    assert_eq!(store.verify_cleartext(&signed).unwrap(), RELEASE);
    let tampered = String::from_utf8(signed.clone())
        .unwrap()
        .replacen("stable", "stabld", 1);
    let err = store.verify_cleartext(tampered.as_bytes()).unwrap_err();
    assert!(matches!(err, SignError::Verification { .. }), "{err}");

    let sig = signer.detached(RELEASE).unwrap();
    store.verify_detached(RELEASE, &sig).unwrap();
    let mut data = RELEASE.to_vec();
    data[0] ^= 1;
    assert!(store.verify_detached(&data, &sig).is_err());
}

#[test]
fn verify_requires_every_signing_key() {
    let (_tmp, store, fprs) = store_with_keys(1);
    let old_only = store.signer().unwrap();
    let signed = old_only.clearsign(RELEASE).unwrap();
    let sig = old_only.detached(RELEASE).unwrap();
    let new = store.generate("new <n@n>").unwrap();
    let err = store.verify_cleartext(&signed).unwrap_err();
    assert!(err.to_string().contains(&new), "{err}");
    assert!(store.verify_detached(RELEASE, &sig).is_err());
    // Once the old key is retired, its extra signature is simply ignored.
    let both = store.signer().unwrap().clearsign(RELEASE).unwrap();
    store.retire(&fprs[0]).unwrap();
    assert_eq!(store.verify_cleartext(&both).unwrap(), RELEASE);
    assert!(store.verify_cleartext(&signed).is_err());
}

#[test]
fn framing_rejects_text_outside_the_signed_block() {
    let (_tmp, store, _) = store_with_keys(1);
    let signed = store.signer().unwrap().clearsign(RELEASE).unwrap();
    let mut leading = b"Origin: evil\n".to_vec();
    leading.extend_from_slice(&signed);
    let mut trailing = signed.clone();
    trailing.extend_from_slice(b"Origin: evil\n");
    let mut twice = signed.clone();
    twice.extend_from_slice(&signed);
    let mut blank_tail = signed.clone();
    blank_tail.extend_from_slice(b"\n \n");
    for bad in [&leading, &trailing, &twice] {
        let err = store.verify_cleartext(bad).unwrap_err();
        assert!(matches!(err, SignError::Framing { .. }), "{err}");
    }
    assert_eq!(store.verify_cleartext(&blank_tail).unwrap(), RELEASE);
}

#[test]
fn trailing_whitespace_and_missing_newline() {
    let (_tmp, store, _) = store_with_keys(1);
    let signer = store.signer().unwrap();
    // Trailing blanks are not signed by the cleartext framework, so they
    // are dropped from the emitted text too.
    let signed = signer.clearsign(b"Origin: x  \nLabel: y\t\n").unwrap();
    assert!(signed.windows(10).any(|w| w == b"Origin: x\n"));
    assert_eq!(
        store.verify_cleartext(&signed).unwrap(),
        b"Origin: x\nLabel: y\n"
    );
    let signed = signer.clearsign(b"Origin: x\nLabel: y").unwrap();
    assert_eq!(
        store.verify_cleartext(&signed).unwrap(),
        b"Origin: x\nLabel: y"
    );
}

mod roundtrip {
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;

    /// One store for all cases: key generation is not what is under test.
    fn shared() -> &'static (tempfile::TempDir, KeyStore, Signer) {
        static SHARED: OnceLock<(tempfile::TempDir, KeyStore, Signer)> = OnceLock::new();
        SHARED.get_or_init(|| {
            let (tmp, store, _) = store_with_keys(1);
            let signer = store.signer().unwrap();
            (tmp, store, signer)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any text of printable lines (dashes, "From ", blanks included)
        /// round-trips, minus trailing blanks per line.
        #[test]
        fn clearsign_round_trips(lines in prop::collection::vec("[ -~\t]{0,40}", 0..12), final_nl: bool) {
            let mut text = lines.join("\n");
            if final_nl { text.push('\n'); }
            let (_, store, signer) = shared();
            let signed = signer.clearsign(text.as_bytes()).unwrap();
            let expected: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches([' ', '\t'])).collect();
            prop_assert_eq!(store.verify_cleartext(&signed).unwrap(), expected.join("\n").into_bytes());
        }
    }
}

/// The publisher signs from worker threads.
#[test]
fn signer_and_store_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Signer>();
    assert_send_sync::<KeyStore>();
    assert_send_sync::<SignError>();
}
