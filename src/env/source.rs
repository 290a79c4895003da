//! Where a platform's files come from: a git repository (cloned with the
//! `git` program into the repository's cache and read back at a recorded
//! commit) or a plain directory (copied into the cache as a snapshot whose
//! digest is its revision). Either way every environment is made from a
//! recorded revision, never from whatever the source holds today.

use super::EnvError;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How a platform's source is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Git,
    Dir,
}

impl SourceKind {
    /// `git` or `dir`, as the catalog stores it.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Git => "git",
            SourceKind::Dir => "dir",
        }
    }

    /// The kind the catalog names.
    pub fn from_name(name: &str) -> SourceKind {
        if name == "git" {
            SourceKind::Git
        } else {
            SourceKind::Dir
        }
    }
}

/// A platform's source, as given to `bess platform init --source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSource {
    pub kind: SourceKind,
    /// The URL, or the directory's absolute path.
    pub location: String,
}

impl PlatformSource {
    /// A URL (`https://…`, `file://…`, `git@host:path`) is a git
    /// repository; anything else must be an existing directory.
    pub fn parse(text: &str) -> Result<PlatformSource, EnvError> {
        if text.starts_with('-') || text.chars().any(char::is_control) {
            return Err(EnvError::Usage(format!(
                "--source {text:?} is neither a directory nor a git URL"
            )));
        }
        if is_git_url(text) {
            return Ok(PlatformSource {
                kind: SourceKind::Git,
                location: text.to_string(),
            });
        }
        let path = std::fs::canonicalize(text)
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| {
                EnvError::Usage(format!(
                    "--source {text:?} is neither a directory nor a git URL (https://…, file://…, user@host:path)"
                ))
            })?;
        let location = path
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| EnvError::Usage(format!("--source {text:?}: the path is not UTF-8")))?;
        Ok(PlatformSource {
            kind: SourceKind::Dir,
            location,
        })
    }
}

fn is_git_url(text: &str) -> bool {
    if text.contains("://") {
        return true;
    }
    // scp-like `user@host:path`: a colon before any slash, and not a local path.
    match text.split_once(':') {
        Some((host, _)) => !host.is_empty() && !host.contains('/') && !Path::new(text).exists(),
        None => false,
    }
}

/// A fetched revision of a platform's source.
#[derive(Debug)]
pub struct Fetched {
    pub revision: String,
    /// A new copy built in the scratch directory, until [`Fetched::keep`]
    /// puts it in the store's place; `None` when the store was updated
    /// in place (a git fetch only adds objects).
    staged: Option<PathBuf>,
}

impl Fetched {
    /// Where to read the fetched revision from.
    pub fn copy<'a>(&'a self, store: &'a Path) -> &'a Path {
        self.staged.as_deref().unwrap_or(store)
    }

    /// Makes the fetched copy the platform's store.
    pub fn keep(self, store: &Path) -> Result<(), EnvError> {
        match &self.staged {
            Some(fresh) => swap_in(fresh, store),
            None => Ok(()),
        }
    }
}

/// Fetches `source`: a git fetch into the clone at `store` when there is
/// one, otherwise a new clone or directory snapshot built in `scratch`
/// (same filesystem as `store`) that [`Fetched::keep`] moves into place.
pub fn fetch(source: &PlatformSource, store: &Path, scratch: &Path) -> Result<Fetched, EnvError> {
    match source.kind {
        SourceKind::Git if store.is_dir() => {
            git_fetch(&source.location, store)?;
            let revision = git_head(store)?;
            Ok(Fetched {
                revision,
                staged: None,
            })
        }
        SourceKind::Git => {
            let fresh = scratch.join("clone.git");
            git_clone(&source.location, &fresh)?;
            let revision = git_head(&fresh)?;
            Ok(Fetched {
                revision,
                staged: Some(fresh),
            })
        }
        SourceKind::Dir => {
            let fresh = scratch.join("tree");
            copy_tree(Path::new(&source.location), &fresh)?;
            let revision = tree_digest(&fresh)?;
            Ok(Fetched {
                revision,
                staged: Some(fresh),
            })
        }
    }
}

/// The store of a platform: `<dir>/<name>.git` or `<dir>/<name>.tree`.
pub fn store_path(dir: &Path, name: &str, kind: SourceKind) -> PathBuf {
    match kind {
        SourceKind::Git => dir.join(format!("{name}.git")),
        SourceKind::Dir => dir.join(format!("{name}.tree")),
    }
}

/// Writes the files of `revision` from `store` into the empty directory `dest`.
pub fn export(kind: SourceKind, store: &Path, revision: &str, dest: &Path) -> Result<(), EnvError> {
    match kind {
        SourceKind::Git => git_export(store, revision, dest),
        SourceKind::Dir => {
            let held = tree_digest(store)?;
            if held != revision {
                return Err(EnvError::Usage(format!(
                    "the cached copy of the platform's directory is at revision {}, not {}",
                    short(&held),
                    short(revision)
                )));
            }
            copy_tree(store, dest)
        }
    }
}

/// The first 12 characters of a revision, for people.
pub fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

/// Replaces `store` by `fresh` (both on one filesystem).
fn swap_in(fresh: &Path, store: &Path) -> Result<(), EnvError> {
    let old = store.with_extension("old");
    let _ = std::fs::remove_dir_all(&old);
    if store.exists() {
        std::fs::rename(store, &old).map_err(EnvError::io("move aside", store))?;
    }
    if let Some(parent) = store.parent() {
        std::fs::create_dir_all(parent).map_err(EnvError::io("create", parent))?;
    }
    std::fs::rename(fresh, store).map_err(EnvError::io("rename into place", store))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// `git` with what every call needs: no prompt for credentials (bess
/// runs unattended) and no transport that runs commands.
fn git() -> Command {
    let mut command = Command::new("git");
    command
        .args([
            "-c",
            "protocol.ext.allow=never",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("SSH_ASKPASS", "/bin/false")
        .stdin(Stdio::null());
    command
}

fn run_git(mut command: Command, doing: &str) -> Result<Vec<u8>, EnvError> {
    let output = command.output().map_err(|e| {
        EnvError::Usage(format!(
            "cannot run git to {doing}: {e}; install it (apt-get install git)"
        ))
    })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    Err(EnvError::Usage(format!(
        "git could not {doing}: {}",
        said.trim()
    )))
}

fn git_clone(url: &str, dest: &Path) -> Result<(), EnvError> {
    let mut command = git();
    command
        .args(["clone", "--quiet", "--bare", "--"])
        .arg(url)
        .arg(dest);
    run_git(command, &format!("clone {url}")).map_err(|e| {
        EnvError::Usage(format!("{e}; check the URL and that this host may read it"))
    })?;
    Ok(())
}

fn git_fetch(url: &str, store: &Path) -> Result<(), EnvError> {
    let mut command = git();
    command
        .arg("--git-dir")
        .arg(store)
        .args(["fetch", "--quiet", "--prune", "--force", "--"])
        .arg(url)
        .args(["+HEAD:refs/bess/head", "+refs/heads/*:refs/heads/*"]);
    run_git(command, &format!("fetch {url}"))?;
    // The remote's default branch, as fetched just now.
    let mut command = git();
    command.arg("--git-dir").arg(store).args([
        "update-ref",
        "--no-deref",
        "HEAD",
        "refs/bess/head",
    ]);
    run_git(command, "record the fetched head")?;
    Ok(())
}

fn git_head(store: &Path) -> Result<String, EnvError> {
    let mut command = git();
    command
        .arg("--git-dir")
        .arg(store)
        .args(["rev-parse", "--verify", "HEAD^{commit}"]);
    let out = run_git(
        command,
        "find the source's head commit (is the repository empty?)",
    )?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

fn git_export(store: &Path, revision: &str, dest: &Path) -> Result<(), EnvError> {
    if !revision.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(EnvError::Usage(format!("{revision:?} is not a commit")));
    }
    let mut child = git()
        .arg("--git-dir")
        .arg(store)
        .args(["archive", "--format=tar", revision])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            EnvError::Usage(format!(
                "cannot run git: {e}; install it (apt-get install git)"
            ))
        })?;
    let stdout = child.stdout.take().expect("piped stdout");
    let unpacked = tar::Archive::new(stdout).unpack(dest);
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let status = child
        .wait()
        .map_err(EnvError::io("wait for git archive in", store))?;
    if !status.success() {
        return Err(EnvError::Usage(format!(
            "git could not read commit {} of the platform's source: {}; run `bess platform update`",
            short(revision),
            stderr.trim()
        )));
    }
    unpacked.map_err(EnvError::io("unpack the platform's source into", dest))
}

/// Copies a directory tree (files with their modes, directories, links),
/// leaving out `.git`.
fn copy_tree(from: &Path, to: &Path) -> Result<(), EnvError> {
    let walk = walkdir::WalkDir::new(from)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || e.file_name() != ".git");
    for entry in walk {
        let entry = entry.map_err(|e| EnvError::io("read", from)(e.into()))?;
        let relative = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let target = to.join(relative);
        let kind = entry.file_type();
        let copied = if kind.is_dir() {
            std::fs::create_dir_all(&target)
        } else if kind.is_symlink() {
            std::fs::read_link(entry.path())
                .and_then(|link| std::os::unix::fs::symlink(link, &target))
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).map(drop)
        } else {
            continue;
        };
        copied.map_err(EnvError::io("copy", entry.path()))?;
    }
    Ok(())
}

/// SHA-256 over every entry's path, kind, mode and content: the revision
/// of a directory source.
fn tree_digest(root: &Path) -> Result<String, EnvError> {
    let mut digest = Sha256::new();
    let walk = walkdir::WalkDir::new(root).sort_by_file_name().min_depth(1);
    for entry in walk {
        let entry = entry.map_err(|e| EnvError::io("read", root)(e.into()))?;
        let relative: PathBuf = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .into();
        digest.update(relative.to_string_lossy().as_bytes());
        digest.update([0]);
        let kind = entry.file_type();
        if kind.is_symlink() {
            let link =
                std::fs::read_link(entry.path()).map_err(EnvError::io("read", entry.path()))?;
            digest.update(b"link\0");
            digest.update(link.to_string_lossy().as_bytes());
        } else if kind.is_file() {
            let meta = entry
                .metadata()
                .map_err(|e| EnvError::io("read", entry.path())(e.into()))?;
            digest.update(format!("file {:o}\0", meta.permissions().mode() & 0o777));
            let bytes = std::fs::read(entry.path()).map_err(EnvError::io("read", entry.path()))?;
            digest.update(Sha256::digest(&bytes));
        } else {
            digest.update(b"dir\0");
        }
        digest.update([0]);
    }
    Ok(hex::encode(digest.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_git_and_directories_are_directories() {
        let dir = tempfile::tempdir().unwrap();
        let given = dir.path().to_str().unwrap();
        assert_eq!(PlatformSource::parse(given).unwrap().kind, SourceKind::Dir);
        for url in [
            "file:///srv/platform.git",
            "https://git.example.com/p.git",
            "git@host:p.git",
        ] {
            assert_eq!(
                PlatformSource::parse(url).unwrap().kind,
                SourceKind::Git,
                "{url}"
            );
        }
        let error = PlatformSource::parse("/no/such/dir")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("neither a directory nor a git URL"),
            "{error}"
        );
        assert!(PlatformSource::parse("--upload-pack=x").is_err());
    }

    #[test]
    fn a_directory_snapshot_has_a_stable_revision_that_follows_changes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("etc")).unwrap();
        std::fs::create_dir_all(src.join(".git")).unwrap();
        std::fs::write(src.join("etc/a.conf-dist"), "x").unwrap();
        std::fs::write(src.join(".git/HEAD"), "ignored").unwrap();
        let source = PlatformSource::parse(src.to_str().unwrap()).unwrap();
        let store = dir.path().join("cache/p.tree");
        let scratch = tempfile::tempdir_in(dir.path()).unwrap();
        let fetched = fetch(&source, &store, scratch.path()).unwrap();
        let first = fetched.revision.clone();
        assert_eq!(first.len(), 64);
        assert!(!store.exists(), "kept only when asked");
        fetched.keep(&store).unwrap();
        assert!(store.is_dir() && !store.join(".git").exists());
        let scratch = tempfile::tempdir_in(dir.path()).unwrap();
        assert_eq!(
            fetch(&source, &store, scratch.path()).unwrap().revision,
            first
        );
        std::fs::write(src.join("etc/a.conf-dist"), "y").unwrap();
        let scratch = tempfile::tempdir_in(dir.path()).unwrap();
        let fetched = fetch(&source, &store, scratch.path()).unwrap();
        let second = fetched.revision.clone();
        fetched.keep(&store).unwrap();
        assert_ne!(first, second);
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        export(SourceKind::Dir, &store, &second, &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("etc/a.conf-dist")).unwrap(),
            "y"
        );
        let error = export(SourceKind::Dir, &store, &first, &out)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not "), "{error}");
    }
}
