//! The `pool/` tree of a channel: one hard link per published `.deb`.

use crate::config::Layout;
use crate::pool::{LinkOutcome, Pool, PoolError, Sha256};
use std::io;
use std::path::{Path, PathBuf};

/// The pool path of a binary package, relative to `pool/<component>/`, as
/// Debian's archive lays it out:
/// `<prefix>/<source>/<package>_<version without epoch>_<arch>.deb`, where
/// the prefix is the source's first letter, or `lib` and the next letter
/// for a `lib*` source. Admins, rsync filters and mirror tools expect it.
/// Source and package names are checked against Debian Policy on ingest,
/// so they are safe path components.
pub fn pool_name(source: &str, package: &str, version_without_epoch: &str, arch: &str) -> String {
    format!(
        "{}/{source}/{package}_{version_without_epoch}_{arch}.deb",
        pool_prefix(source)
    )
}

/// `libc` for `libcurl`, `g` for `glibc`: Debian spreads the many `lib*`
/// sources over directories of their own.
fn pool_prefix(source: &str) -> &str {
    match source.strip_prefix("lib") {
        Some(rest) if !rest.is_empty() => &source[..source.len() - rest.len() + 1],
        _ => &source[..source.len().min(1)],
    }
}

/// The published pool trees of every channel of a repository.
pub struct PoolTree<'a> {
    layout: &'a Layout,
    pool: &'a Pool,
}

impl<'a> PoolTree<'a> {
    /// The trees of the repository with this layout and pool.
    pub fn new(layout: &'a Layout, pool: &'a Pool) -> PoolTree<'a> {
        PoolTree { layout, pool }
    }

    /// Where a package file is published in a channel.
    pub fn path(&self, channel: &str, component: &str, pool_name: &str) -> PathBuf {
        self.layout
            .channel_dir(channel)
            .join("pool")
            .join(component)
            .join(pool_name)
    }

    /// Publishes the object in the channel's tree (idempotent).
    pub fn link(
        &self,
        sha256: &Sha256,
        channel: &str,
        component: &str,
        pool_name: &str,
    ) -> Result<LinkOutcome, PoolError> {
        self.pool
            .link(sha256, &self.path(channel, component, pool_name))
    }

    /// Publishes many objects in the channel's tree (idempotent): the links
    /// are grouped by directory, so each source directory is created once
    /// (a Debian-sized repository has tens of thousands), and the
    /// directories are made and filled in parallel. Nothing is fsynced
    /// here: the generation switch syncs the whole filesystem once, before
    /// any index lists these files. Links are (component, pool name,
    /// SHA-256 in hex), as queued.
    pub fn link_all(
        &self,
        channel: &str,
        links: &[(String, String, String)],
    ) -> Result<(), PoolError> {
        use rayon::prelude::*;
        // Indices rather than paths: 60,000 paths would be megabytes of a
        // publish that must stay small.
        let mut by_dir: std::collections::BTreeMap<PathBuf, Vec<usize>> = Default::default();
        for (i, (component, name, _)) in links.iter().enumerate() {
            if let Some(dir) = self.path(channel, component, name).parent() {
                by_dir.entry(dir.to_path_buf()).or_default().push(i);
            }
        }
        by_dir.par_iter().try_for_each(|(dir, members)| {
            std::fs::create_dir_all(dir).map_err(|source| PoolError::Io {
                action: "create directory",
                path: dir.clone(),
                source,
            })?;
            let files = members
                .iter()
                .map(|&i| {
                    let (_, name, sha256) = &links[i];
                    let file_name = name.rsplit('/').next().unwrap_or(name);
                    let sha256 = Sha256::from_hex(sha256).ok_or_else(|| PoolError::Io {
                        action: "link (the catalog has a malformed SHA-256 for it)",
                        path: dir.join(file_name),
                        source: io::Error::from(io::ErrorKind::InvalidData),
                    })?;
                    Ok((file_name, sha256))
                })
                .collect::<Result<Vec<_>, PoolError>>()?;
            self.pool.link_into_dir(dir, files.into_iter())
        })
    }

    /// Withdraws a package file from a channel's tree, pruning emptied directories.
    pub fn unlink(&self, channel: &str, component: &str, pool_name: &str) -> io::Result<()> {
        let path = self.path(channel, component, pool_name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        let stop = self.layout.channel_dir(channel).join("pool");
        prune_empty_parents(&path, &stop);
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_layout() {
        assert_eq!(
            pool_name("myapp", "myapp", "1.0-1", "amd64"),
            "m/myapp/myapp_1.0-1_amd64.deb"
        );
        assert_eq!(
            pool_name("openssl", "libssl3", "3.0", "arm64"),
            "o/openssl/libssl3_3.0_arm64.deb"
        );
        assert_eq!(
            pool_name("libxml2", "libxml2-dev", "2.9", "amd64"),
            "libx/libxml2/libxml2-dev_2.9_amd64.deb"
        );
        assert_eq!(pool_name("lib", "lib", "1", "all"), "l/lib/lib_1_all.deb");
        assert_eq!(
            pool_name("glibc", "libc6", "2.36", "amd64"),
            "g/glibc/libc6_2.36_amd64.deb"
        );
    }
}
