//! Helpers of the drop-directory tests: a repository whose `[incoming]`
//! is set up, `.changes` files written as dpkg-genchanges writes them,
//! signed with a real gpg as debsign signs them, and the checks every
//! test makes (what was ingested, how often, what the audit log says).

use super::Sandbox;
use md5::Md5;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A repository (bookworm, jammy; amd64) with its drop directory at
/// `dir` (or `incoming`), taking files after `quiet` seconds.
pub fn sandbox(dir: Option<&Path>, quiet: u64) -> Sandbox {
    let sb = Sandbox::new("bookworm,jammy", "amd64");
    sb.edit_settings(
        "quiet-period-secs = 10",
        &format!("quiet-period-secs = {quiet}"),
    );
    let drop = match dir {
        Some(dir) => dir.to_path_buf(),
        None => sb.repo.join("incoming"),
    };
    sb.edit_settings("dir = \"incoming\"", &format!("dir = {:?}", drop));
    std::fs::create_dir_all(&drop).unwrap();
    sb
}

/// The drop directory of `sb`.
pub fn drop_dir(sb: &Sandbox) -> PathBuf {
    let text = std::fs::read_to_string(sb.repo.join("bess.toml")).unwrap();
    let settings: bess::config::Settings = toml::from_str(&text).unwrap();
    sb.repo.join(settings.incoming.dir)
}

/// The text of a `.changes` listing `files` (name, size, SHA-256, MD5).
pub fn changes_text(files: &[&Path]) -> String {
    let mut sha256 = String::new();
    let mut md5 = String::new();
    for file in files {
        let data = std::fs::read(file).unwrap();
        let name = file.file_name().unwrap().to_str().unwrap();
        let size = data.len();
        sha256.push_str(&format!(
            " {} {size} {name}\n",
            hex::encode(Sha256::digest(&data))
        ));
        md5.push_str(&format!(
            " {} {size} misc optional {name}\n",
            hex::encode(Md5::digest(&data))
        ));
    }
    format!(
        "Format: 1.8\nDate: Mon, 02 Nov 2026 10:00:00 +0000\nSource: hello\nBinary: hello\n\
         Architecture: amd64\nVersion: 1.0-1\nDistribution: unstable\nUrgency: medium\n\
         Maintainer: Test <test@example.com>\nChanges:\n hello (1.0-1) unstable; urgency=medium\n .\n   * Test upload.\n\
         Checksums-Sha256:\n{sha256}Files:\n{md5}"
    )
}

/// A gpg home with one Ed25519 key, as a developer running debsign has.
pub struct Uploader {
    home: tempfile::TempDir,
}

impl Uploader {
    pub fn new(name: &str) -> Uploader {
        let home = tempfile::tempdir().unwrap();
        let uploader = Uploader { home };
        uploader.gpg(&[
            "--quick-generate-key",
            &format!("{name} <{name}@example.com>"),
            "ed25519",
            "sign",
            "never",
        ]);
        uploader
    }

    fn gpg(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .expect("run gpg");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The public key, binary (`gpg --export`), for a keyring file.
    pub fn public_key(&self) -> Vec<u8> {
        self.gpg(&["--export"])
    }

    /// `text` clear-signed, as debsign leaves a `.changes`.
    pub fn clearsign(&self, text: &str) -> String {
        let input = self.home.path().join("to-sign");
        std::fs::write(&input, text).unwrap();
        let signed = self.gpg(&["--clearsign", "--output", "-", input.to_str().unwrap()]);
        String::from_utf8(signed).unwrap()
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// `(package, version, dist)` of every preprod placement.
pub fn preprod(sb: &Sandbox) -> Vec<(String, String, String)> {
    super::rows(&sb.json(&["repo", "list", "--channel", "preprod"]))
        .into_iter()
        .map(|(p, v, _, _, d)| (p, v, d))
        .collect()
}

/// The audit entries of `action`.
pub fn audit(sb: &Sandbox, action: &str) -> Vec<serde_json::Value> {
    sb.json(&["log", "--action", action])
        .as_array()
        .unwrap()
        .clone()
}

/// The files a drop directory still holds outside bess's own directories.
pub fn left_over(drop: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(drop)
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            e.depth() != 1 || !(name == "processed" || name == "rejected")
        })
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

/// Polls `done` until it holds or `limit` passes; whether it held.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    done()
}
