//! Signatures made by `bess::sign`, checked by the real verifiers: `gpgv`
//! (apt 2.6, Debian 12), `sqv` (newer apt) and `apt-get update` itself.
//!
//! A test whose tool is missing prints a note and passes, except under
//! `CI=true`, where a missing tool is a failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bess::sign::{KeyStore, SignError};

/// SHA-256 of the empty file, for an (empty) Packages index apt can check.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Looks `name` up in PATH; when missing, skips locally and fails in CI.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{name} is required when CI=true but is not installed");
        }
        // Written to the real stderr: the test harness would swallow
        // eprintln! output of passing tests, and a skip must be visible.
        let note = format!("note: {name} not installed; skipping its checks\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
    }
    found
}

/// A temp dir holding a key store and the files handed to the tools.
struct Fixture {
    tmp: tempfile::TempDir,
    store: KeyStore,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::open(&tmp.path().join("state"));
        fs::create_dir(tmp.path().join("gnupg")).unwrap();
        Fixture { tmp, store }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.tmp.path().join(name);
        fs::write(&path, bytes).expect("write");
        path
    }

    /// The current signing keys, exported as a binary keyring file.
    fn keyring(&self, name: &str) -> PathBuf {
        self.write(name, &self.store.export_public(false).unwrap())
    }

    /// `gpgv --status-fd 1 --keyring K FILES...`, isolated from ~/.gnupg.
    fn gpgv(&self, keyring: &Path, files: &[&Path]) -> Option<Output> {
        let mut cmd = Command::new(tool("gpgv")?);
        cmd.env("GNUPGHOME", self.tmp.path().join("gnupg"))
            .arg("--status-fd")
            .arg("1")
            .arg("--keyring")
            .arg(keyring)
            .args(files);
        Some(cmd.output().expect("run gpgv"))
    }

    /// `sqv [-n N] --keyring K... SIG DATA` (sqv only knows detached signatures).
    fn sqv(&self, keyrings: &[&Path], n: usize, sig: &Path, data: &Path) -> Option<Output> {
        let mut cmd = Command::new(tool("sqv")?);
        cmd.arg("--signatures").arg(n.to_string());
        for k in keyrings {
            cmd.arg("--keyring").arg(k);
        }
        Some(cmd.arg(sig).arg(data).output().expect("run sqv"))
    }

    /// Verifies InRelease with sqv the way apt's sqv method does: split it
    /// into message and signature (see `apt_split`), then check detached.
    fn sqv_inrelease(&self, keyrings: &[&Path], n: usize, inrelease: &[u8]) -> Option<Output> {
        let (message, signature) = apt_split(inrelease);
        let msg = self.write("InRelease.msg", &message);
        let sig = self.write("InRelease.sig", &signature);
        self.sqv(keyrings, n, &sig, &msg)
    }
}

/// Mirrors apt's `SplitClearSignedFile`: message lines (dash-unescaped)
/// joined by "\n" with no final newline; the signature from its BEGIN line.
fn apt_split(inrelease: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let text = std::str::from_utf8(inrelease).expect("utf-8");
    let mut lines = text.split('\n');
    assert_eq!(lines.next(), Some("-----BEGIN PGP SIGNED MESSAGE-----"));
    for header in lines.by_ref() {
        if header.is_empty() {
            break;
        }
    }
    let mut message = Vec::new();
    for line in lines.by_ref() {
        if line == "-----BEGIN PGP SIGNATURE-----" {
            break;
        }
        message.push(line.strip_prefix("- ").unwrap_or(line));
    }
    let signature = format!(
        "-----BEGIN PGP SIGNATURE-----\n{}",
        lines.collect::<Vec<_>>().join("\n")
    );
    (message.join("\n").into_bytes(), signature.into_bytes())
}

/// A realistic Release file: fields, then ` <hash> <size> <path>` lines.
fn release_text() -> Vec<u8> {
    let mut text = String::from(
        "Origin: bess\nLabel: bess\nSuite: stable\nCodename: bookworm\n\
         Date: Sat, 01 Jun 2024 12:00:00 UTC\nArchitectures: amd64 arm64\n\
         Components: main contrib\nDescription: bess test repository\n",
    );
    text.push_str("MD5Sum:\n");
    for (i, path) in index_paths().iter().enumerate() {
        text.push_str(&format!(" {:032x} {:>8} {path}\n", i * 7919, i * 1031));
    }
    text.push_str("SHA256:\n");
    text.push_str(&format!(
        " {EMPTY_SHA256} {:>8} main/binary-amd64/Packages\n",
        0
    ));
    for (i, path) in index_paths().iter().enumerate().skip(1) {
        text.push_str(&format!(" {:064x} {:>8} {path}\n", i * 104_729, i * 1031));
    }
    text.into_bytes()
}

fn index_paths() -> [&'static str; 6] {
    [
        "main/binary-amd64/Packages",
        "main/binary-amd64/Packages.gz",
        "main/binary-amd64/Packages.xz",
        "main/binary-arm64/Packages",
        "contrib/binary-amd64/Packages",
        "main/i18n/Translation-en",
    ]
}

/// Flips one byte of the first "stable" in `bytes`.
fn tamper(bytes: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(6)
        .position(|w| w == b"stable")
        .expect("stable");
    let mut out = bytes.to_vec();
    out[at + 5] = b'f';
    out
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Like `assert_failure`, and the output must mention `reason`.
fn assert_failure_for(out: &Output, what: &str, reason: &str) {
    assert_failure(out, what);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains(reason),
        "{what}: expected {reason:?} in:\n{all}"
    );
}

fn assert_failure(out: &Output, what: &str) {
    assert!(
        !out.status.success(),
        "{what} unexpectedly succeeded:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Lines of gpgv's status output that start with `[GNUPG:] KEYWORD`.
/// Lossy: NOTATION_DATA lines carry Sequoia's binary salt.
fn status(out: &Output, keyword: &str) -> Vec<String> {
    let prefix = format!("[GNUPG:] {keyword} ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

/// Primary-key fingerprints in gpgv VALIDSIG lines (the last field).
fn validsig_primaries(out: &Output) -> Vec<String> {
    let mut fprs: Vec<String> = status(out, "VALIDSIG")
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .collect();
    fprs.sort();
    fprs
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// One signed Release, written out in every shape the tools need.
struct SignedRelease {
    fx: Fixture,
    fpr: String,
    keyring: PathBuf,
    inrelease: Vec<u8>,
    in_path: PathBuf,
    rel_path: PathBuf,
    sig_path: PathBuf,
}

fn signed_release() -> SignedRelease {
    let fx = Fixture::new();
    let fpr = fx.store.generate("bess repository <bess@test>").unwrap();
    let keyring = fx.keyring("keyring.gpg");
    let signer = fx.store.signer().unwrap();
    let release = release_text();
    let inrelease = signer.clearsign(&release).unwrap();
    let in_path = fx.write("InRelease", &inrelease);
    let rel_path = fx.write("Release", &release);
    let sig_path = fx.write("Release.gpg", &signer.detached(&release).unwrap());
    SignedRelease {
        fx,
        fpr,
        keyring,
        inrelease,
        in_path,
        rel_path,
        sig_path,
    }
}

#[test]
fn gpgv_accepts_release_signatures_and_rejects_tampering() {
    let s = signed_release();
    let (fx, keyring) = (&s.fx, &s.keyring);
    let Some(out) = fx.gpgv(keyring, &[&s.in_path]) else {
        return;
    };
    assert_success(&out, "gpgv InRelease");
    assert_eq!(validsig_primaries(&out), vec![s.fpr.clone()]);
    assert_success(
        &fx.gpgv(keyring, &[&s.sig_path, &s.rel_path]).unwrap(),
        "gpgv Release.gpg",
    );
    let bad_in = fx.write("InRelease.bad", &tamper(&s.inrelease));
    let out = fx.gpgv(keyring, &[&bad_in]).unwrap();
    assert_failure(&out, "gpgv tampered InRelease");
    assert_eq!(status(&out, "BADSIG").len(), 1);
    let bad_rel = fx.write("Release.bad", &tamper(&fs::read(&s.rel_path).unwrap()));
    let out = fx.gpgv(keyring, &[&s.sig_path, &bad_rel]).unwrap();
    assert_failure(&out, "gpgv tampered Release");
    assert_eq!(status(&out, "BADSIG").len(), 1);
}

#[test]
fn sqv_accepts_release_signatures_and_rejects_tampering() {
    let s = signed_release();
    let (fx, keyring) = (&s.fx, &s.keyring);
    let Some(out) = fx.sqv_inrelease(&[keyring], 1, &s.inrelease) else {
        return;
    };
    assert_success(&out, "sqv InRelease");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), s.fpr);
    let out = fx.sqv(&[keyring], 1, &s.sig_path, &s.rel_path).unwrap();
    assert_success(&out, "sqv Release.gpg");
    let out = fx
        .sqv_inrelease(&[keyring], 1, &tamper(&s.inrelease))
        .unwrap();
    assert_failure(&out, "sqv tampered InRelease");
    let bad_rel = fx.write("Release.bad", &tamper(&fs::read(&s.rel_path).unwrap()));
    assert_failure(
        &fx.sqv(&[keyring], 1, &s.sig_path, &bad_rel).unwrap(),
        "sqv tampered Release",
    );
}

/// Dash-escaping, trailing blanks and a missing final newline, as the
/// verifiers see them.
#[test]
fn cleartext_edge_cases_accepted() {
    let fx = Fixture::new();
    fx.store.generate("bess repository <bess@test>").unwrap();
    let keyring = fx.keyring("keyring.gpg");
    let signer = fx.store.signer().unwrap();
    let texts: [&[u8]; 4] = [
        b"-----BEGIN PGP SIGNATURE-----\n- dash\nFrom here\n",
        b"Origin: x   \nLabel: y\t\n \n",
        b"Origin: x\nLabel: no final newline",
        b"",
    ];
    for (i, text) in texts.iter().enumerate() {
        let signed = signer.clearsign(text).unwrap();
        let path = fx.write(&format!("InRelease.{i}"), &signed);
        if let Some(out) = fx.gpgv(&keyring, &[&path]) {
            assert_success(&out, &format!("gpgv edge case {i}"));
        }
        if let Some(out) = fx.sqv_inrelease(&[&keyring], 1, &signed) {
            assert_success(&out, &format!("sqv edge case {i}"));
        }
    }
}

/// Two keys sign, then the older one is retired.
struct Rotation {
    fx: Fixture,
    a: String,
    b: String,
    only_a: PathBuf,
    only_b: PathBuf,
    both: PathBuf,
    /// Signed by both keys.
    signed: Vec<u8>,
    /// Signed after retiring `a`.
    after: Vec<u8>,
}

fn rotation() -> Rotation {
    let fx = Fixture::new();
    let a = fx.store.generate("old key <bess@test>").unwrap();
    let only_a = fx.keyring("a.gpg");
    let b = fx.store.generate("new key <bess@test>").unwrap();
    assert_eq!(
        fx.store.signing_fingerprints().unwrap(),
        vec![a.clone(), b.clone()]
    );
    let both = fx.keyring("ab.gpg");
    let signed = fx
        .store
        .signer()
        .unwrap()
        .clearsign(&release_text())
        .unwrap();
    fx.store.retire(&a).unwrap();
    let only_b = fx.keyring("b.gpg");
    let after = fx
        .store
        .signer()
        .unwrap()
        .clearsign(&release_text())
        .unwrap();
    Rotation {
        fx,
        a,
        b,
        only_a,
        only_b,
        both,
        signed,
        after,
    }
}

#[test]
fn rotation_with_gpgv() {
    let r = rotation();
    let in_path = r.fx.write("InRelease", &r.signed);
    let after_path = r.fx.write("InRelease.after", &r.after);
    let Some(out) = r.fx.gpgv(&r.both, &[&in_path]) else {
        return;
    };
    assert_success(&out, "gpgv, both keys");
    assert_eq!(
        validsig_primaries(&out),
        sorted(vec![r.a.clone(), r.b.clone()])
    );
    check_gpgv_one_key(&r.fx, &r.only_a, &in_path, &r.a);
    check_gpgv_one_key(&r.fx, &r.only_b, &in_path, &r.b);
    let out = r.fx.gpgv(&r.both, &[&after_path]).unwrap();
    assert_success(&out, "gpgv after retiring");
    assert_eq!(
        validsig_primaries(&out),
        vec![r.b.clone()],
        "retired key still signs"
    );
    let out = r.fx.gpgv(&r.only_a, &[&after_path]).unwrap();
    assert_failure(&out, "gpgv with only the retired key");
    assert!(status(&out, "GOODSIG").is_empty());
}

/// Finding: with a keyring lacking one of the signing keys, gpgv reports
/// the good signature (GOODSIG/VALIDSIG) and NO_PUBKEY for the other, and
/// exits 2.  apt 2.6 accepts this (see `apt_get_update_via_inrelease`).
fn check_gpgv_one_key(fx: &Fixture, keyring: &Path, inrelease: &Path, fpr: &str) {
    let out = fx.gpgv(keyring, &[inrelease]).unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "gpgv exit code with one of two keys"
    );
    assert_eq!(validsig_primaries(&out), vec![fpr.to_owned()]);
    assert_eq!(status(&out, "NO_PUBKEY").len(), 1);
    assert!(status(&out, "BADSIG").is_empty());
}

/// sqv succeeds with any one good signature (its default `-n 1`).
#[test]
fn rotation_with_sqv() {
    let r = rotation();
    let Some(out) = r.fx.sqv_inrelease(&[&r.both], 2, &r.signed) else {
        return;
    };
    assert_success(&out, "sqv -n 2, both keys");
    for (keyring, fpr) in [(&r.only_a, &r.a), (&r.only_b, &r.b)] {
        let out = r.fx.sqv_inrelease(&[keyring], 1, &r.signed).unwrap();
        assert_success(&out, "sqv, one key");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), fpr.as_str());
        let out = r.fx.sqv_inrelease(&[keyring], 2, &r.signed).unwrap();
        assert_failure(&out, "sqv -n 2, one key");
    }
    let out = r.fx.sqv_inrelease(&[&r.only_a], 1, &r.after).unwrap();
    assert_failure(&out, "sqv, retired key only");
    let out = r.fx.sqv_inrelease(&[&r.both], 2, &r.after).unwrap();
    assert_failure(&out, "sqv -n 2 after retiring");
}

#[test]
fn export_formats() {
    let fx = Fixture::new();
    let fpr = fx.store.generate("bess repository <bess@test>").unwrap();
    let binary = fx.store.export_public(false).unwrap();
    let armored = fx.store.export_public(true).unwrap();
    assert_eq!(
        binary[0] & 0x80,
        0x80,
        "binary export must start with a packet tag"
    );
    assert!(armored.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n"));
    assert!(!armored.windows(7).any(|w| w == b"PRIVATE"));
    let bin_path = fx.write("k.gpg", &binary);
    let asc_path = fx.write("k.asc", &armored);
    let signed = fx
        .store
        .signer()
        .unwrap()
        .clearsign(&release_text())
        .unwrap();
    let in_path = fx.write("InRelease", &signed);
    if let Some(out) = fx.gpgv(&bin_path, &[&in_path]) {
        assert_success(&out, "gpgv with binary keyring");
        // gpgv cannot read armored keyrings: the signature looks unsigned.
        let out = fx.gpgv(&asc_path, &[&in_path]).unwrap();
        assert_failure(&out, "gpgv with armored keyring");
        assert!(status(&out, "GOODSIG").is_empty());
    }
    if let Some(out) = fx.sqv_inrelease(&[&asc_path], 1, &signed) {
        assert_success(&out, "sqv with armored keyring");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), fpr);
    }
}

#[test]
fn key_files_are_private_and_loose_modes_refused() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let fpr = fx.store.generate("bess repository <bess@test>").unwrap();
    let key = fx.store.keys_dir().join(format!("{fpr}.key"));
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(fx.store.keys_dir()), 0o700);
    assert_eq!(mode(&key), 0o600);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = fx.store.signer().unwrap_err();
    assert!(matches!(err, SignError::InsecureKeyFile { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "key file {} is readable or writable by group or others (mode 0644); run `chmod 600 {}`",
            key.display(),
            key.display()
        )
    );
}

/// Finding: signatures are not byte-identical for a fixed time (Sequoia
/// salts v4 signatures), but the signed part and the creation time are.
#[test]
fn fixed_time_signatures() {
    let fx = Fixture::new();
    fx.store.generate("bess repository <bess@test>").unwrap();
    let keyring = fx.keyring("k.gpg");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t = UNIX_EPOCH + Duration::from_secs(now);
    let signer = fx.store.signer().unwrap().with_time(t);
    let release = release_text();
    let (one, two) = (
        signer.clearsign(&release).unwrap(),
        signer.clearsign(&release).unwrap(),
    );
    assert_ne!(one, two, "expected salted, non-identical signatures");
    assert_eq!(apt_split(&one).0, apt_split(&two).0);
    for (i, signed) in [one, two].iter().enumerate() {
        let path = fx.write(&format!("InRelease.{i}"), signed);
        if let Some(out) = fx.gpgv(&keyring, &[&path]) {
            assert_success(&out, "gpgv fixed-time InRelease");
            // VALIDSIG <fpr> <date> <sig-timestamp> ...
            let line = &status(&out, "VALIDSIG")[0];
            assert_eq!(
                line.split(' ').nth(4),
                Some(now.to_string().as_str()),
                "{line}"
            );
        }
    }
}

/// Keyrings for the apt tests: both signing keys, the older one alone, and
/// an unrelated key.
struct AptKeys {
    fx: Fixture,
    both: PathBuf,
    only_a: PathBuf,
    wrong: PathBuf,
}

fn apt_keys() -> AptKeys {
    let fx = Fixture::new();
    fx.store.generate("old key <bess@test>").unwrap();
    let only_a = fx.keyring("a.gpg");
    fx.store.generate("new key <bess@test>").unwrap();
    let both = fx.keyring("ab.gpg");
    let stranger = Fixture::new();
    stranger.store.generate("someone else <x@test>").unwrap();
    let wrong = fx.write("wrong.gpg", &stranger.store.export_public(false).unwrap());
    AptKeys {
        fx,
        both,
        only_a,
        wrong,
    }
}

/// End to end with apt 2.6: `apt-get update` from a file: repository whose
/// InRelease bess signed with two keys.
#[test]
fn apt_get_update_via_inrelease() {
    let Some(apt_get) = tool("apt-get") else {
        return;
    };
    let k = apt_keys();
    let repo = AptRepo::new(&k.fx);
    let signed =
        k.fx.store
            .signer()
            .unwrap()
            .clearsign(&release_text())
            .unwrap();
    repo.publish(Some(&signed), None, &release_text());
    assert_success(
        &repo.update(&apt_get, &k.both),
        "apt-get update via InRelease",
    );
    assert_success(
        &repo.update(&apt_get, &k.only_a),
        "apt-get update, one of two keys",
    );
    let out = repo.update(&apt_get, &k.wrong);
    assert_failure_for(&out, "apt-get update, wrong key", "NO_PUBKEY");
    repo.publish(Some(&tamper(&signed)), None, &release_text());
    let out = repo.update(&apt_get, &k.both);
    assert_failure_for(&out, "apt-get update, tampered InRelease", "BADSIG");
}

/// The same through Release + Release.gpg (no InRelease).
#[test]
fn apt_get_update_via_release_gpg() {
    let Some(apt_get) = tool("apt-get") else {
        return;
    };
    let k = apt_keys();
    let repo = AptRepo::new(&k.fx);
    let release = release_text();
    let sig = k.fx.store.signer().unwrap().detached(&release).unwrap();
    repo.publish(None, Some(&sig), &release);
    assert_success(
        &repo.update(&apt_get, &k.both),
        "apt-get update via Release.gpg",
    );
    assert_success(
        &repo.update(&apt_get, &k.only_a),
        "Release.gpg, one of two keys",
    );
    let out = repo.update(&apt_get, &k.wrong);
    assert_failure_for(
        &out,
        "apt-get update via Release.gpg, wrong key",
        "NO_PUBKEY",
    );
    repo.publish(None, Some(&sig), &tamper(&release));
    let out = repo.update(&apt_get, &k.both);
    assert_failure_for(&out, "apt-get update, tampered Release", "BADSIG");
}

/// A minimal file: repository plus an isolated apt configuration.
struct AptRepo {
    root: PathBuf,
}

impl AptRepo {
    fn new(fx: &Fixture) -> AptRepo {
        let root = fx.tmp.path().join("apt");
        let dist = root.join("repo/dists/stable");
        fs::create_dir_all(dist.join("main/binary-amd64")).unwrap();
        fs::write(dist.join("main/binary-amd64/Packages"), b"").unwrap();
        AptRepo { root }
    }

    /// Replaces the dist's Release, InRelease and Release.gpg.
    fn publish(&self, inrelease: Option<&[u8]>, release_gpg: Option<&[u8]>, release: &[u8]) {
        let dist = self.root.join("repo/dists/stable");
        fs::write(dist.join("Release"), release).unwrap();
        for (name, content) in [("InRelease", inrelease), ("Release.gpg", release_gpg)] {
            let _ = fs::remove_file(dist.join(name));
            if let Some(content) = content {
                fs::write(dist.join(name), content).unwrap();
            }
        }
    }

    /// `apt-get update` with only this repository, trusting `keyring`.
    fn update(&self, apt_get: &Path, keyring: &Path) -> Output {
        let work = self.fresh_work_dir();
        let repo = self.root.join("repo");
        let list = format!(
            "deb [signed-by={}] file:{} stable main\n",
            keyring.display(),
            repo.display()
        );
        fs::write(work.join("etc/sources.list"), list).unwrap();
        Command::new(apt_get)
            .env("APT_CONFIG", work.join("apt.conf"))
            .arg("update")
            .output()
            .expect("run apt-get")
    }

    /// Empty state, cache and configuration directories for one apt run.
    fn fresh_work_dir(&self) -> PathBuf {
        let w = self.root.join("work");
        let _ = fs::remove_dir_all(&w);
        for d in ["etc/apt.conf.d", "etc/preferences.d", "etc/trusted.gpg.d"] {
            fs::create_dir_all(w.join(d)).unwrap();
        }
        for d in ["state/lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(w.join(d)).unwrap();
        }
        // APT_CONFIG is read before the configuration parts, so pointing
        // Dir::Etc here keeps the host's apt.conf.d out of the test.
        let mut conf = format!(
            "Dir::Etc \"{0}/etc\";\nDir::Etc::sourceparts \"-\";\nDir::State \"{0}/state\";\n\
             Dir::Cache \"{0}/cache\";\nDir::State::status \"/dev/null\";\nAcquire::Languages \"none\";\n",
            w.display()
        );
        // As root, apt would run its methods as _apt, which cannot enter
        // the 0700 temp dir.
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            conf.push_str("APT::Sandbox::User \"root\";\n");
        }
        fs::write(w.join("apt.conf"), conf).unwrap();
        w
    }
}
