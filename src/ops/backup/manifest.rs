//! `backup.json`: what a backup holds, written last so that its presence
//! (atomically replaced) is what makes a backup complete.

use crate::ops::OpsError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The manifest's file name at the top of a backup.
pub const MANIFEST: &str = "backup.json";
/// The manifest format this bess writes and reads.
pub const FORMAT: u32 = 1;

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format; a newer one is refused.
    pub format: u32,
    /// Version of the bess that wrote the backup.
    pub bess_version: String,
    /// When the backup was taken (Unix seconds, and as text).
    pub created_unix: u64,
    pub created: String,
    /// The repository that was backed up.
    pub source: PathBuf,
    /// Directory (under `snapshots/`) holding the catalog, config and keys.
    pub snapshot: String,
    pub catalog: CatalogEntry,
    /// Pool objects the catalog refers to, all under `pool/`.
    pub objects: ObjectTotals,
    /// `bess.toml`, `dists.list`, `archs.list`.
    pub config: Vec<FileEntry>,
    /// Signing keys, each flagged as secret material.
    pub keys: Vec<KeyEntry>,
    /// The key that signs box download tokens (secret too), when the
    /// repository has made one; restored, it keeps box URLs already handed
    /// out working. Absent from backups of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_token_key: Option<FileEntry>,
}

/// The catalog copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// Relative to the snapshot directory.
    pub file: String,
    pub sha256: String,
    pub size: u64,
    /// `PRAGMA user_version` of the copy.
    pub schema_version: usize,
}

/// How many objects, and how many bytes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectTotals {
    pub count: u64,
    pub bytes: u64,
}

/// A copied file and its checksum.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the snapshot directory.
    pub file: String,
    pub sha256: String,
}

/// A copied key file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Relative to the snapshot directory (`keys/…` or `keys/retired/…`).
    pub file: String,
    pub fingerprint: String,
    pub sha256: String,
    /// Whether the file holds a secret key (every bess key file does):
    /// whoever can read the backup can sign as the repository.
    pub secret: bool,
    /// Retired keys are kept but no longer sign.
    pub retired: bool,
}

impl Manifest {
    /// Reads the manifest of the backup at `dir`.
    pub fn load(dir: &Path) -> Result<Manifest, OpsError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                OpsError::NotFound(format!(
                    "{} is not a bess backup (no {MANIFEST}); name the directory `bess backup` wrote",
                    dir.display()
                ))
            } else {
                OpsError::io("read", &path)(e)
            }
        })?;
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
            OpsError::Invalid(vec![format!(
                "{}: not a valid manifest: {e}",
                path.display()
            )])
        })?;
        manifest.validate(&path)?;
        Ok(manifest)
    }

    /// Writes the manifest atomically: temp file, fsync, rename, fsync of `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), OpsError> {
        let path = dir.join(MANIFEST);
        let mut text = serde_json::to_vec_pretty(self).expect("a manifest serialises");
        text.push(b'\n');
        crate::pool::write_atomically(&path, &text).map_err(OpsError::io("write", &path))
    }

    /// The snapshot directory of a backup at `dir`.
    pub fn snapshot_dir(&self, dir: &Path) -> PathBuf {
        dir.join(&self.snapshot)
    }

    /// A manifest names only plain relative paths inside the backup, so a
    /// doctored one cannot make restore read outside it.
    fn validate(&self, path: &Path) -> Result<(), OpsError> {
        let invalid = |what: &str| {
            OpsError::Invalid(vec![format!(
                "{}: {what}; is this backup from a newer bess or damaged?",
                path.display()
            )])
        };
        if self.format != FORMAT {
            return Err(invalid(&format!(
                "format {} (this bess reads format {FORMAT})",
                self.format
            )));
        }
        let files = std::iter::once(self.snapshot.as_str())
            .chain(std::iter::once(self.catalog.file.as_str()))
            .chain(self.config.iter().map(|f| f.file.as_str()))
            .chain(self.keys.iter().map(|k| k.file.as_str()))
            .chain(self.box_token_key.iter().map(|k| k.file.as_str()));
        for file in files {
            if !is_plain_relative(file) {
                return Err(invalid(&format!("`{file}` is not a plain relative path")));
            }
        }
        Ok(())
    }
}

/// `a/b/c` with no empty, `.` or `..` component and no leading `/`.
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths() {
        assert!(is_plain_relative("snapshots/1700000000-12"));
        assert!(is_plain_relative("keys/retired/ABCDEF.key"));
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a//b",
            "a/./b",
            "a/../../b",
            "a b",
        ] {
            assert!(!is_plain_relative(bad), "{bad}");
        }
    }
}
