//! The repository managers under test (bess, aptly, reprepro): fresh-repository setup, the
//! ingest command(s) to time, and post-run checks. Include it next to `runner`
//! (`#[path = "support/runner.rs"] mod runner;`), which it uses for untimed steps.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

use super::runner;

pub const DIST: &str = "bookworm";

/// One run of one tool. `dir` does not exist yet: the tool's setup creates it and it is the
/// repository root for every tool, so pool paths are equally deep (reprepro, for one, pays
/// per path component).
pub struct Workspace {
    pub dir: PathBuf,
    pub log: PathBuf,
}

pub trait Tool {
    fn name(&self) -> &str;
    /// File-name-safe form of the name, for work directories and logs.
    fn slug(&self) -> &str;
    fn is_bess(&self) -> bool {
        false
    }
    /// How the tool is configured, printed once so results can be interpreted.
    fn note(&self) -> String;
    /// Untimed: create an empty repository at `ws.dir`.
    fn setup(&self, ws: &Workspace) -> Result<()>;
    /// The timed part: every command needed to ingest `files` (relative to `corpus`).
    fn ingest_commands(&self, ws: &Workspace, corpus: &Path, files: &[PathBuf]) -> Vec<Command>;
    /// Untimed check of the repository after a successful ingest of `expected` files.
    fn verify(&self, _ws: &Workspace, _expected: usize) -> Result<()> {
        Ok(())
    }
    /// Whether a failed run's log shows the tool lacks the option this variant exists for.
    fn lacks_option(&self, _log: &str) -> bool {
        false
    }
}

/// First match for `program` on PATH.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// bess, with or without publishing after the ingest.
pub struct Bess {
    pub exe: PathBuf,
    pub publish: bool,
}

impl Tool for Bess {
    fn name(&self) -> &str {
        if self.publish {
            "bess ingest (publishes)"
        } else {
            "bess ingest --no-publish"
        }
    }

    fn slug(&self) -> &str {
        if self.publish {
            "bess-publish"
        } else {
            "bess-no-publish"
        }
    }

    fn is_bess(&self) -> bool {
        true
    }

    fn note(&self) -> String {
        format!(
            "{}: {}, repository initialised with --dists {DIST} --archs amd64,arm64",
            self.name(),
            self.exe.display()
        )
    }

    fn setup(&self, ws: &Workspace) -> Result<()> {
        let mut init = Command::new(&self.exe);
        init.arg("init")
            .arg(&ws.dir)
            .args(["--dists", DIST, "--archs", "amd64,arm64"]);
        runner::run_logged(&mut init, &ws.log)
    }

    fn ingest_commands(&self, ws: &Workspace, corpus: &Path, _files: &[PathBuf]) -> Vec<Command> {
        let mut ingest = Command::new(&self.exe);
        ingest.arg("--repo").arg(&ws.dir).args(["repo", "ingest"]);
        if !self.publish {
            ingest.arg("--no-publish");
        }
        ingest.arg(corpus);
        vec![ingest]
    }

    /// Every file must have become one placement (N packages x 1 distribution).
    fn verify(&self, ws: &Workspace, expected: usize) -> Result<()> {
        let output = Command::new(&self.exe)
            .arg("--repo")
            .arg(&ws.dir)
            .args(["repo", "list", "--json"])
            .output()?;
        ensure!(
            output.status.success(),
            "bess repo list --json failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let listing: serde_json::Value = serde_json::from_slice(&output.stdout)
            .context("bess repo list --json did not print JSON")?;
        let placements = listing
            .as_array()
            .context("bess repo list --json did not print an array")?
            .len();
        ensure!(
            placements == expected,
            "bess repo list --json lists {placements} placements, expected {expected}"
        );
        Ok(())
    }

    fn lacks_option(&self, log: &str) -> bool {
        !self.publish && log.contains("--no-publish")
    }
}

/// aptly with a private configuration whose rootDir lives in the workspace.
pub struct Aptly {
    pub exe: PathBuf,
}

impl Aptly {
    fn config(ws: &Workspace) -> PathBuf {
        ws.dir.join("aptly.conf")
    }

    /// aptly with this workspace's private configuration.
    pub fn command(&self, ws: &Workspace) -> Command {
        let mut command = Command::new(&self.exe);
        command.arg(format!("-config={}", Self::config(ws).display()));
        command
    }
}

impl Tool for Aptly {
    fn name(&self) -> &str {
        "aptly repo add"
    }

    fn slug(&self) -> &str {
        "aptly"
    }

    fn note(&self) -> String {
        format!(
            "{}: {}, private -config with rootDir in the workspace, local repo 'bench' ({DIST}); \
             note aptly 1.5 runs an `xz` process per package to read control.tar.xz",
            self.name(),
            self.exe.display()
        )
    }

    fn setup(&self, ws: &Workspace) -> Result<()> {
        let config = serde_json::json!({
            "rootDir": ws.dir,
            "architectures": ["amd64", "arm64", "all"],
            "gpgDisableSign": true,
            "gpgDisableVerify": true,
            "skipContentsPublishing": true,
        });
        fs::create_dir_all(&ws.dir)?;
        fs::write(Self::config(ws), serde_json::to_vec_pretty(&config)?)?;
        let mut create = self.command(ws);
        create.args([
            "repo",
            "create",
            &format!("-distribution={DIST}"),
            "-component=main",
            "bench",
        ]);
        runner::run_logged(&mut create, &ws.log)
    }

    fn ingest_commands(&self, ws: &Workspace, corpus: &Path, _files: &[PathBuf]) -> Vec<Command> {
        let mut add = self.command(ws);
        add.args(["repo", "add", "bench"]).arg(corpus);
        vec![add]
    }

    /// aptly local repositories keep every version, so all files must be in.
    fn verify(&self, ws: &Workspace, expected: usize) -> Result<()> {
        let output = self.command(ws).args(["repo", "show", "bench"]).output()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let wanted = format!("Number of packages: {expected}");
        ensure!(
            output.status.success() && text.contains(&wanted),
            "aptly repo show bench lacks '{wanted}':\n{text}"
        );
        Ok(())
    }
}

/// reprepro with minimal exports, ingesting with --export=never in ARG_MAX-sized batches.
pub struct Reprepro {
    pub exe: PathBuf,
}

impl Reprepro {
    fn fixed_args(ws: &Workspace) -> Vec<String> {
        let base = ws.dir.display().to_string();
        ["-b", &base, "--export=never", "includedeb", DIST]
            .map(String::from)
            .to_vec()
    }
}

impl Tool for Reprepro {
    fn name(&self) -> &str {
        "reprepro includedeb"
    }

    fn slug(&self) -> &str {
        "reprepro"
    }

    fn note(&self) -> String {
        format!(
            "{}: {}, conf/distributions {DIST} amd64 arm64 main with 'DebIndices: Packages .', \
             --export=never; keeps only the newest version per name and architecture",
            self.name(),
            self.exe.display()
        )
    }

    fn setup(&self, ws: &Workspace) -> Result<()> {
        let conf = ws.dir.join("conf");
        fs::create_dir_all(&conf)?;
        let distributions = format!(
            "Codename: {DIST}\nArchitectures: amd64 arm64\nComponents: main\nDebIndices: Packages .\n"
        );
        fs::write(conf.join("distributions"), distributions)?;
        Ok(())
    }

    /// Paths relative to the corpus (run from there) keep argv short: fewer batches.
    fn ingest_commands(&self, ws: &Workspace, corpus: &Path, files: &[PathBuf]) -> Vec<Command> {
        let fixed = Self::fixed_args(ws);
        let program = self.exe.display().to_string();
        let argv_start: Vec<&str> = std::iter::once(program.as_str())
            .chain(fixed.iter().map(String::as_str))
            .collect();
        runner::argv_batches(&argv_start, files)
            .into_iter()
            .map(|batch| {
                let mut include = Command::new(&self.exe);
                include.current_dir(corpus).args(&fixed).args(batch);
                include
            })
            .collect()
    }
}

/// The one package a second, incremental publish adds, built with dpkg-deb.
pub fn build_extra_package(run_dir: &Path) -> Result<PathBuf> {
    let root = run_dir.join("extra");
    fs::create_dir_all(root.join("DEBIAN"))?;
    fs::create_dir_all(root.join("usr/share/doc/bench-extra"))?;
    fs::write(
        root.join("DEBIAN/control"),
        "Package: bench-extra\nVersion: 1.0-1\nArchitecture: amd64\nSection: misc\nPriority: optional\nMaintainer: Bench <bench@example.com>\n\
         Description: the package a second publish adds\n one more package.\n",
    )?;
    fs::write(root.join("usr/share/doc/bench-extra/README"), "extra\n")?;
    let deb = run_dir.join("bench-extra_1.0-1_amd64.deb");
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(&deb)
        .status()?;
    ensure!(
        status.success(),
        "dpkg-deb failed to build the extra package"
    );
    Ok(deb)
}
