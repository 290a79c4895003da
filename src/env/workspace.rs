//! An environment's workspace, `<repo>/envs/<platform>/<env>/`: the
//! platform's files at the environment's revision with every template
//! rendered, `etc/bess/` (variables and the environment's password,
//! owner-only), `srv/` and `var/` for what the machines share with the host,
//! and a `Vagrantfile`.
//!
//! A workspace is built whole in a staging directory beside its final
//! place (`.tmp-<env>-<random>`) and renamed into place in one step, so
//! no one ever sees half of one; leftovers of an interrupted build carry
//! the environment's name and are swept by the next command.

use super::platform::PlatformSpec;
use super::template::{install, render_all};
use super::variables::Variables;
use super::{EnvError, files};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The workspace of one environment.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    env: String,
}

impl Workspace {
    /// The workspace of `env` of `platform` under `envs_dir`.
    pub fn at(envs_dir: &Path, platform: &str, env: &str) -> Workspace {
        Workspace {
            root: envs_dir.join(platform).join(env),
            env: env.to_string(),
        }
    }

    /// `<repo>/envs/<platform>/<env>`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<repo>/envs/<platform>`.
    pub fn platform_dir(&self) -> &Path {
        self.root.parent().unwrap_or(Path::new("."))
    }

    /// `etc/bess/variables.json` under `root`.
    pub fn variables_file(root: &Path) -> PathBuf {
        root.join("etc/bess/variables.json")
    }

    /// `etc/bess/password` under `root`: the environment's credential.
    pub fn password_file(root: &Path) -> PathBuf {
        root.join("etc/bess/password")
    }

    /// A new, empty staging directory beside the workspace.
    pub fn staging(&self) -> Result<PathBuf, EnvError> {
        let parent = self.platform_dir();
        std::fs::create_dir_all(parent).map_err(EnvError::io("create", parent))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!(".tmp-{}-", self.env))
            .tempdir_in(parent)
            .map_err(EnvError::io("create a directory in", parent))?;
        Ok(dir.keep())
    }

    /// A name to move the workspace to before deleting it, so a
    /// half-deleted workspace is never found at its real place.
    pub fn trash(&self) -> PathBuf {
        let random: u64 = rand_u64();
        self.platform_dir()
            .join(format!(".trash-{}-{random:016x}", self.env))
    }

    /// Staging and trash directories this environment left behind.
    pub fn leftovers(&self) -> Vec<PathBuf> {
        let prefixes = [
            format!(".tmp-{}-", self.env),
            format!(".trash-{}-", self.env),
        ];
        let Ok(entries) = std::fs::read_dir(self.platform_dir()) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                prefixes.iter().any(|p| name.starts_with(p))
            })
            .map(|e| e.path())
            .collect()
    }
}

fn rand_u64() -> u64 {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    OsRng.next_u64()
}

/// Makes `dir` (holding the platform's files) a workspace: the bess
/// files, the shared directories, every template rendered, and the
/// Vagrantfile unless the platform brings its own.
pub fn fill(dir: &Path, vars: &Variables, spec: &PlatformSpec) -> Result<(), EnvError> {
    for shared in ["etc", "srv", "var", "etc/bess"] {
        refuse_link(dir, shared)?;
    }
    for shared in ["etc", "srv", "var"] {
        let path = dir.join(shared);
        std::fs::create_dir_all(&path).map_err(EnvError::io("create", &path))?;
    }
    let etc_bess = dir.join("etc/bess");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&etc_bess)
        .map_err(EnvError::io("create", &etc_bess))?;
    let password = format!("{}\n", vars.credential.password);
    files::write_private(&Workspace::password_file(dir), password.as_bytes(), 0o600)?;
    let json = serde_json::to_value(vars).map_err(|e| EnvError::Usage(e.to_string()))?;
    let mut text = serde_json::to_vec_pretty(&json).map_err(|e| EnvError::Usage(e.to_string()))?;
    text.push(b'\n');
    files::write_private(&Workspace::variables_file(dir), &text, 0o600)?;
    install(dir, &render_all(dir, &json)?)?;
    let vagrantfile = dir.join("Vagrantfile");
    if !vagrantfile.exists() {
        let text = super::vagrantfile::vagrantfile(vars, spec);
        files::write_private(&vagrantfile, text.as_bytes(), 0o600)?;
    }
    Ok(())
}

/// bess writes into these directories: a platform's link there would send
/// the environment's credential wherever it points.
fn refuse_link(dir: &Path, name: &str) -> Result<(), EnvError> {
    let is_link = std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| !m.is_dir());
    if !is_link {
        return Ok(());
    }
    Err(EnvError::Invalid(vec![format!(
        "{name} in the platform's source is not a directory; bess writes the environment's \
         files there (etc/bess/variables.json, its password), so it must be a plain directory or absent"
    )]))
}

/// Deletes a directory tree; one that is already gone is fine.
pub fn remove_tree(path: &Path) -> Result<(), EnvError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EnvError::io("remove", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_where_bess_writes_credentials_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("etc")).unwrap();
        let error = refuse_link(dir.path(), "etc").unwrap_err().to_string();
        assert!(
            error.contains("etc in the platform's source is not a directory"),
            "{error}"
        );
        std::fs::create_dir(dir.path().join("srv")).unwrap();
        refuse_link(dir.path(), "srv").unwrap();
        refuse_link(dir.path(), "var").unwrap();
    }
}
