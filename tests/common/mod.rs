//! Shared helpers of the integration tests: real packages built with
//! `dpkg-deb`, a scratch repository, and the real `bess` binary.
#![allow(dead_code)]

pub mod apt;
pub mod env;
pub mod incoming;
pub mod seaweed;
pub mod server;
pub mod vagrant;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Whether `tool` is on PATH. Missing tools skip a test locally but fail it
/// under CI (`CI=true`), where the set-up script must have installed them.
pub fn have_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is required under CI; run packaging/install-deps test");
        }
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

/// A package to build with dpkg-deb.
#[derive(Debug, Clone)]
pub struct DebSpec {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub fields: Vec<(String, String)>,
    pub compression: &'static str,
    pub payload: String,
    /// SOURCE_DATE_EPOCH for dpkg-deb, for byte-reproducible packages.
    pub epoch: Option<String>,
}

impl DebSpec {
    pub fn new(name: &str, version: &str, arch: &str) -> DebSpec {
        DebSpec {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            fields: Vec::new(),
            compression: "xz",
            payload: format!("{name} {version}\n"),
            epoch: None,
        }
    }

    pub fn field(mut self, name: &str, value: &str) -> DebSpec {
        self.fields.push((name.into(), value.into()));
        self
    }

    pub fn compression(mut self, c: &'static str) -> DebSpec {
        self.compression = c;
        self
    }

    pub fn epoch(mut self, e: &str) -> DebSpec {
        self.epoch = Some(e.into());
        self
    }

    pub fn payload(mut self, p: &str) -> DebSpec {
        self.payload = p.into();
        self
    }

    /// Builds the package into `out_dir` and returns its path.
    pub fn build(&self, out_dir: &Path) -> PathBuf {
        let root = tempfile::tempdir().unwrap();
        let debian = root.path().join("DEBIAN");
        std::fs::create_dir_all(&debian).unwrap();
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: Test <test@example.com>\n",
            self.name, self.version, self.arch
        );
        for (k, v) in &self.fields {
            control.push_str(&format!("{k}: {v}\n"));
        }
        if !self.fields.iter().any(|(k, _)| k == "Description") {
            control.push_str(&format!(
                "Description: test package {}\n built by the bess test suite.\n",
                self.name
            ));
        }
        std::fs::write(debian.join("control"), control).unwrap();
        let doc = root.path().join("usr/share/doc").join(&self.name);
        std::fs::create_dir_all(&doc).unwrap();
        std::fs::write(doc.join("README"), &self.payload).unwrap();
        std::fs::create_dir_all(out_dir).unwrap();
        let file = out_dir.join(format!(
            "{}_{}_{}.deb",
            self.name,
            self.version.replace(':', "%3a"),
            self.arch
        ));
        let mut command = Command::new("dpkg-deb");
        if let Some(epoch) = &self.epoch {
            command.env("SOURCE_DATE_EPOCH", epoch);
        }
        let out = command
            .args([
                "--root-owner-group",
                &format!("-Z{}", self.compression),
                "--build",
            ])
            .arg(root.path())
            .arg(&file)
            .output()
            .expect("run dpkg-deb");
        assert!(
            out.status.success(),
            "dpkg-deb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        file
    }
}

/// A scratch repository driven through the real binary.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    /// Extra environment for every bess command.
    pub env: Vec<(String, String)>,
}

impl Sandbox {
    /// `bess init` with these dists and archs.
    pub fn new(dists: &str, archs: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let sandbox = Sandbox {
            dir,
            repo,
            env: Vec::new(),
        };
        let repo_arg = sandbox.repo.to_str().unwrap().to_string();
        sandbox.ok(&["init", &repo_arg, "--dists", dists, "--archs", archs]);
        sandbox
    }

    /// A directory for test inputs.
    /// Replaces the first `from` by `to` in the repository's bess.toml.
    pub fn edit_settings(&self, from: &str, to: &str) {
        let path = self.repo.join("bess.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "bess.toml has no `{from}`");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs bess against the repository.
    pub fn bess(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_bess"))
            .env("BESS_REPO", &self.repo)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .output()
            .expect("run bess")
    }

    /// Runs bess with `input` on its standard input (a password).
    pub fn bess_with_input(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_bess"))
            .env("BESS_REPO", &self.repo)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run bess");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().expect("run bess")
    }

    /// Runs bess and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.bess(args);
        assert!(
            out.status.success(),
            "bess {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs bess and requires failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.bess(args);
        assert!(
            !out.status.success(),
            "bess {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Runs bess with --json and parses the output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).expect("valid JSON")
    }

    /// Every file under the repository's pool/ (the stored objects).
    pub fn pool_objects(&self) -> Vec<PathBuf> {
        walkdir::WalkDir::new(self.repo.join("pool"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .collect()
    }

    /// Published path of a package file in a channel.
    pub fn published(&self, channel: &str, rel: &str) -> PathBuf {
        self.repo
            .join("public")
            .join(channel)
            .join("pool")
            .join(rel)
    }
}

/// `(package, version, architecture, channel, dist)` of each listing row.
pub fn rows(listing: &serde_json::Value) -> Vec<(String, String, String, String, String)> {
    listing
        .as_array()
        .expect("array")
        .iter()
        .map(|o| {
            let s = |k: &str| o[k].as_str().unwrap_or_default().to_string();
            (
                s("package"),
                s("version"),
                s("architecture"),
                s("channel"),
                s("dist"),
            )
        })
        .collect()
}

/// The text of a published `Packages.xz`, decompressed.
pub fn read_xz(path: &Path) -> String {
    read_text(path, |file| Box::new(xz2::read::XzDecoder::new(file)))
}

/// The text of a published `Packages.gz` (every member), decompressed.
pub fn read_gz(path: &Path) -> String {
    read_text(path, |file| {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    })
}

fn read_text(path: &Path, decoder: impl FnOnce(std::fs::File) -> Box<dyn std::io::Read>) -> String {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    decoder(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text
}

/// Inode number, to prove two paths are one file.
pub fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .ino()
}

/// A server process the test started (nginx, apache, named), stopped when
/// dropped: SIGTERM first, so a master takes its workers with it, then
/// SIGKILL if it lingers.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
