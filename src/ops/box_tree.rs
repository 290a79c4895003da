//! The published box files of a channel, `public/<channel>/boxes/`: one
//! hard link per placed box, at `<name>/<version>/<provider>-<arch>.box`.
//!
//! Changed only under the publish lock. A box file is linked before the
//! catalog places it (a catalog never lists a missing file) and withdrawn
//! after the catalog stops placing it (a file disappears only once no
//! catalog lists it).

use super::OpsError;
use crate::boxes::BoxIdentity;
use crate::catalog::{BoxRow, PlacedBox};
use crate::config::Layout;
use crate::pool::{Pool, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The identity of a catalogued box, checked again before it names a path.
pub(super) fn identity_of(row: &BoxRow) -> Result<BoxIdentity, OpsError> {
    BoxIdentity::new(&row.name, &row.version, &row.provider, &row.arch).map_err(|e| {
        OpsError::Conflict(format!(
            "catalog entry {} {} is not a valid box identity: {e}",
            row.name, row.version
        ))
    })
}

/// The box trees of every channel of a repository.
pub(super) struct BoxTree<'a> {
    layout: &'a Layout,
    pool: &'a Pool,
}

impl<'a> BoxTree<'a> {
    pub(super) fn new(layout: &'a Layout, pool: &'a Pool) -> BoxTree<'a> {
        BoxTree { layout, pool }
    }

    /// Where a box is published in a channel.
    pub(super) fn path(&self, channel: &str, row: &BoxRow) -> Result<PathBuf, OpsError> {
        Ok(self
            .layout
            .boxes_dir(channel)
            .join(identity_of(row)?.file_path()))
    }

    /// Hard-links the box's pool object into the channel's tree (idempotent).
    pub(super) fn link(&self, channel: &str, row: &BoxRow) -> Result<(), OpsError> {
        let sha = object_name(row)?;
        self.pool.link(&sha, &self.path(channel, row)?)?;
        Ok(())
    }

    /// Makes new links durable, before the catalog change that lists them
    /// commits: after a crash, a placed box always has its file.
    pub(super) fn sync(&self) -> Result<(), OpsError> {
        let public = self.layout.public_dir();
        crate::pool::sync_filesystem(&public).map_err(OpsError::io("sync", public))
    }

    /// Makes the channel's tree hold exactly the `placed` boxes: links what
    /// is missing, removes the rest (withdrawn boxes, leftovers of a crash).
    pub(super) fn reconcile(&self, channel: &str, placed: &[PlacedBox]) -> Result<(), OpsError> {
        let mut wanted = HashSet::new();
        for p in placed.iter().filter(|p| p.channel == channel) {
            self.link(channel, &p.row)?;
            wanted.insert(self.path(channel, &p.row)?);
        }
        let root = self.layout.boxes_dir(channel);
        let strays: Vec<PathBuf> = walkdir::WalkDir::new(&root)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| !e.file_type().is_dir() && !wanted.contains(e.path()))
            .map(|e| e.into_path())
            .collect();
        for stray in strays {
            std::fs::remove_file(&stray).map_err(OpsError::io("remove", &stray))?;
            prune_empty_parents(&stray, &root);
        }
        Ok(())
    }

    /// Placed boxes whose published file is missing or not their object.
    pub(super) fn damaged(&self, placed: &[PlacedBox]) -> Result<Vec<String>, OpsError> {
        use std::os::unix::fs::MetadataExt;
        let mut problems = Vec::new();
        for p in placed {
            let path = self.path(&p.channel, &p.row)?;
            let object = self.pool.object_path(&object_name(&p.row)?);
            let linked = match (std::fs::metadata(&path), std::fs::metadata(&object)) {
                // Same inode, or a copy where the filesystem refused a link.
                (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()) || a.len() == b.len(),
                _ => false,
            };
            if !linked {
                problems.push(format!(
                    "{} is not a link to pool object {}; run `bess repo publish --refresh` to relink",
                    path.display(),
                    p.row.sha256
                ));
            }
        }
        Ok(problems)
    }
}

fn object_name(row: &BoxRow) -> Result<Sha256, OpsError> {
    Sha256::from_hex(&row.sha256).ok_or_else(|| {
        OpsError::Conflict(format!(
            "catalog entry of box {} {} has a malformed SHA256 `{}`",
            row.name, row.version, row.sha256
        ))
    })
}

/// Removes now-empty directories between `file` and `stop` (exclusive).
fn prune_empty_parents(file: &Path, stop: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == stop || !d.starts_with(stop) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}
