//! A private apt installation (its own root, config and lists) to run the
//! real `apt-get` and `apt-cache` against what bess publishes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An apt root under a temp directory, for one architecture.
pub struct AptRoot {
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

impl AptRoot {
    /// An empty apt root; `extra_conf` is appended to its apt.conf.
    pub fn new(arch: &str, extra_conf: &str) -> AptRoot {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for sub in [
            "etc/apt/apt.conf.d",
            "etc/apt/sources.list.d",
            "etc/apt/preferences.d",
            "etc/apt/trusted.gpg.d",
            "etc/apt/auth.conf.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/lib/dpkg",
            "download",
        ] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
        std::fs::write(root.join("etc/apt/sources.list"), "").unwrap();
        let conf = format!(
            "Dir \"{}/\";\nDir::State::status \"{}/var/lib/dpkg/status\";\nAPT::Architecture \"{arch}\";\n\
             APT::Architectures {{ \"{arch}\"; }};\nDebug::NoLocking \"true\";\nAPT::Sandbox::User \"root\";\n\
             Acquire::Languages \"none\";\n{extra_conf}\n",
            root.display(),
            root.display()
        );
        std::fs::write(root.join("etc/apt/apt.conf"), conf).unwrap();
        AptRoot { root, _dir: dir }
    }

    /// Adds a deb822 source for `uri`, trusting only `keyring`.
    pub fn add_source(&self, name: &str, uri: &str, suite: &str, keyring: &Path) {
        let text = format!(
            "Types: deb\nURIs: {uri}\nSuites: {suite}\nComponents: main\nSigned-By: {}\n",
            keyring.display()
        );
        std::fs::write(
            self.root
                .join(format!("etc/apt/sources.list.d/{name}.sources")),
            text,
        )
        .unwrap();
    }

    /// Runs an apt tool inside this root.
    pub fn run(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(tool)
            .env("APT_CONFIG", self.root.join("etc/apt/apt.conf"))
            .current_dir(self.root.join("download"))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"))
    }

    /// `apt-get update`, requiring success and no warning or error line.
    pub fn update(&self, extra: &[&str]) -> String {
        let mut args = vec!["update"];
        args.extend_from_slice(extra);
        let out = self.run("apt-get", &args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "apt-get update failed:\n{text}");
        let noisy: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("W:") || l.starts_with("E:") || l.starts_with("Err:"))
            .collect();
        assert!(noisy.is_empty(), "apt-get update warned:\n{text}");
        text
    }

    /// `apt-get download NAME=VERSION`; returns the downloaded file's bytes.
    pub fn download(&self, spec: &str) -> Vec<u8> {
        let download = self.root.join("download");
        for entry in std::fs::read_dir(&download).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let out = self.run("apt-get", &["download", spec]);
        assert!(
            out.status.success(),
            "apt-get download {spec}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let file = std::fs::read_dir(&download)
            .unwrap()
            .next()
            .expect("a downloaded file")
            .unwrap();
        std::fs::read(file.path()).unwrap()
    }

    /// The versions `apt-cache policy` lists for a package.
    pub fn versions(&self, package: &str) -> Vec<String> {
        let out = self.run("apt-cache", &["policy", package]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let table = text.split("Version table:").nth(1).unwrap_or("");
        // Version lines are indented by five columns (" *** " marks the
        // installed one); the source lines under them by eight.
        table
            .lines()
            .map(|l| l.replacen(" *** ", "     ", 1))
            .filter(|l| l.starts_with("     ") && !l.starts_with("      "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    }
}
