//! The real `vagrant` with a home of its own, and boxes built with the
//! real `tar`, for the tests that add boxes from bess's catalogs.

use super::Sandbox;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// Builds a box with the real `tar`: metadata.json and a disk image
/// whose bytes depend on `payload`. Returns the .box and the image bytes.
pub fn make_box(sb: &Sandbox, file: &str, provider: &str, payload: &str) -> (PathBuf, Vec<u8>) {
    let image: Vec<u8> = format!("disk image {payload}\n").repeat(2000).into_bytes();
    (box_of_image(sb, file, provider, &image), image)
}

/// Builds a box with the real `tar`: metadata.json and `image` as its disk.
pub fn box_of_image(sb: &Sandbox, file: &str, provider: &str, image: &[u8]) -> PathBuf {
    let dir = sb.path(&format!("{file}.d"));
    std::fs::create_dir_all(&dir).unwrap();
    let metadata = format!(r#"{{"provider": "{provider}", "format": "qcow2", "virtual_size": 1}}"#);
    std::fs::write(dir.join("metadata.json"), metadata).unwrap();
    std::fs::write(dir.join("box.img"), image).unwrap();
    let out = sb.path(file);
    let status = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-czf")
        .arg(&out)
        .args(["metadata.json", "box.img"])
        .status()
        .unwrap();
    assert!(status.success());
    out
}

/// The real vagrant, with its own home, no update checks and no Vagrantfile.
pub struct Vagrant {
    home: tempfile::TempDir,
}

impl Vagrant {
    pub fn new() -> Vagrant {
        Vagrant {
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("vagrant")
            .args(args)
            .current_dir(self.home.path())
            .env("VAGRANT_HOME", self.home.path().join("vagrant.d"))
            .env("VAGRANT_CWD", self.home.path())
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .env("VAGRANT_DISABLE_VBOXSYMLINKCREATE", "1")
            .env("VAGRANT_NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run vagrant")
    }

    /// Runs vagrant and requires success; returns stdout and stderr.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "vagrant {args:?} failed:\n{text}");
        text
    }

    /// Where vagrant unpacked a box.
    pub fn unpacked(&self, name: &str, version: &str) -> PathBuf {
        self.home
            .path()
            .join("vagrant.d/boxes")
            .join(name.replace('/', "-VAGRANTSLASH-"))
            .join(version)
            .join("libvirt")
    }
}
