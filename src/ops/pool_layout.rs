//! Moving a repository's published package files to Debian's pool layout,
//! and sweeping files no placement wants out of a channel's pool tree.
//!
//! Earlier versions of bess published `pool/<component>/<prefix>/<file>`
//! with no source directory. `bess repo publish --refresh` gives every such
//! package its Debian pool name, queues its files for linking there, and
//! once every dist of a channel lists the new names, removes the old files.

use super::{OpsError, Repo};
use crate::catalog::PlacementFilter;
use crate::deb::Version;
use crate::publish::pool_name;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// Renames every package whose pool name is not Debian's, queues its files
/// to be linked under the new name and marks its dists for publishing;
/// returns how many packages moved. The old files stay until
/// [`remove_strays`] sees that no index of their channel lists them.
pub(super) fn move_to_debian_layout(repo: &mut Repo) -> Result<usize, OpsError> {
    // One package at a time: only those that move are kept.
    let mut moves: Vec<(i64, String)> = Vec::new();
    repo.catalog.reader().each_package(|p| {
        if let Ok(version) = Version::parse(&p.version) {
            let name = pool_name(&p.source, &p.name, version.without_epoch(), &p.arch);
            if name != p.pool_name {
                moves.push((p.id, name));
            }
        }
        Ok(())
    })?;
    if moves.is_empty() {
        return Ok(0);
    }
    // Index chunks are named by their packages, not their file names: the
    // chunks that list the old names must not be reused. Dropped before the
    // catalog changes, so a crash in between only costs compression.
    let manifests = repo.config.layout.cache_dir().join("manifests");
    match std::fs::remove_dir_all(&manifests) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(OpsError::io("remove", manifests)(e));
        }
        _ => {}
    }
    let moved: HashSet<i64> = moves.iter().map(|(id, _)| *id).collect();
    let writer = repo.catalog.write()?;
    let placed = writer.reader().placements(&PlacementFilter::default())?;
    for (id, name) in &moves {
        writer.set_pool_name(*id, name)?;
    }
    let mut files = BTreeSet::new();
    let mut dists = BTreeSet::new();
    for p in placed.iter().filter(|p| moved.contains(&p.package.id)) {
        files.insert((&p.channel, &p.component, p.package.id));
        dists.insert((&p.channel, &p.dist));
    }
    for (channel, component, id) in files {
        writer.enqueue_file(channel, component, id)?;
    }
    for (channel, dist) in dists {
        writer.mark_pending(channel, dist)?;
    }
    writer.commit()?;
    Ok(moves.len())
}

/// Removes the files of a channel's pool tree that no placement of the
/// channel wants: left by a move to Debian's layout, or by a crash. Only
/// when no dist of the channel is pending (a pending dist's live index may
/// still list them), and in a write transaction, so that no change to the
/// placements commits meanwhile. Returns how many files went.
pub(super) fn remove_strays(repo: &mut Repo, channel: &str) -> Result<usize, OpsError> {
    let root = repo.config.layout.channel_dir(channel).join("pool");
    let tree = crate::publish::PoolTree::new(&repo.config.layout, &repo.pool);
    let writer = repo.catalog.write()?;
    let reader = writer.reader();
    if reader.pending()?.iter().any(|p| p.channel == channel) {
        return Ok(0);
    }
    let filter = PlacementFilter {
        channel: Some(channel.to_string()),
        ..PlacementFilter::default()
    };
    let mut wanted: HashSet<PathBuf> = HashSet::new();
    reader.each_placement(&filter, |p| {
        wanted.insert(tree.path(channel, &p.component, &p.package.pool_name));
        Ok::<_, OpsError>(())
    })?;
    let strays = unwanted_files(&root, &wanted);
    for path in &strays {
        // `<component>/<pool name>` below the channel's pool.
        let rel = path.strip_prefix(&root).expect("walked below root");
        let mut parts = rel.iter();
        let component = parts.next().and_then(|c| c.to_str());
        // A name bess cannot have made is left alone (`bess repo check` notes it).
        let (Some(component), Some(name)) = (component, parts.as_path().to_str()) else {
            continue;
        };
        tree.unlink(channel, component, name)
            .map_err(OpsError::io("remove", path.clone()))?;
    }
    writer.commit()?;
    Ok(strays.len())
}

/// The files under `root` that are not in `wanted`.
fn unwanted_files(root: &Path, wanted: &HashSet<PathBuf>) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_dir() && !wanted.contains(e.path()))
        .map(walkdir::DirEntry::into_path)
        .collect()
}
