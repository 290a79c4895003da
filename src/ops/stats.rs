//! `bess repo stats`: what the repository holds, what it publishes, and
//! how many bytes hard links save.
//!
//! "Stored" is what the pool really holds on disk, each object once.
//! "Published" is what the indices of every channel and dist list: the
//! bytes a repository that copied each publication would store. The
//! difference is the saving of publishing hard links to one pool.

use super::{OpsError, Repo};
use crate::catalog::PlacementTotals;
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;

/// The whole repository.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Distinct package names the catalog knows.
    pub packages: u64,
    /// Distinct (name, version, architecture).
    pub versions: u64,
    /// Objects in the pool, and their bytes (each counted once).
    pub objects: u64,
    pub bytes_stored: u64,
    /// Objects no placement references (`bess repo gc` frees them once unpublished).
    pub objects_unreferenced: u64,
    pub bytes_unreferenced: u64,
    /// Sum over every channel and dist of the package files its indices list.
    pub bytes_published: u64,
    /// `bytes_published` minus the stored bytes of the placed objects.
    pub bytes_saved: u64,
    pub channels: Vec<ChannelStats>,
}

/// One channel: its pool tree and its dists.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChannelStats {
    pub channel: String,
    pub packages: u64,
    pub versions: u64,
    /// Files in the channel's pool tree (each a hard link), and their bytes.
    pub files: u64,
    pub bytes: u64,
    pub dists: Vec<DistStats>,
}

/// One dist of a channel: what its indices list.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DistStats {
    pub dist: String,
    pub packages: u64,
    pub versions: u64,
    /// Index entries (placements), and the bytes of their files.
    pub files: u64,
    pub bytes: u64,
}

/// Counts packages, objects and bytes, per channel and dist.
pub fn stats(repo: &mut Repo) -> Result<Stats, OpsError> {
    let snapshot = repo.catalog.snapshot()?;
    let reader = snapshot.reader();
    let totals = reader.catalog_totals()?;
    let placed = reader.placed_objects()?;
    let (dists, channels) = (reader.dist_totals()?, reader.channel_totals()?);
    drop(snapshot);
    let pool = pool_usage(&repo.config.layout.pool_dir(), &placed);
    let bytes_published = dists.iter().map(|d| d.bytes).sum();
    let mut stats = Stats {
        packages: totals.packages,
        versions: totals.versions,
        objects: pool.objects,
        bytes_stored: pool.bytes,
        objects_unreferenced: pool.unreferenced_objects,
        bytes_unreferenced: pool.unreferenced_bytes,
        bytes_published,
        bytes_saved: bytes_published.saturating_sub(totals.placed_bytes),
        channels: Vec::new(),
    };
    for channel in &repo.config.settings.channels {
        let mut entry = channel_stats(find(&channels, channel, ""), channel);
        for dist in repo.config.dists.names() {
            let t = find(&dists, channel, dist);
            entry.dists.push(DistStats {
                dist: dist.clone(),
                packages: t.packages,
                versions: t.versions,
                files: t.files,
                bytes: t.bytes,
            });
        }
        stats.channels.push(entry);
    }
    Ok(stats)
}

fn find(totals: &[PlacementTotals], channel: &str, dist: &str) -> PlacementTotals {
    totals
        .iter()
        .find(|t| t.channel == channel && t.dist == dist)
        .cloned()
        .unwrap_or_default()
}

fn channel_stats(t: PlacementTotals, channel: &str) -> ChannelStats {
    ChannelStats {
        channel: channel.to_string(),
        packages: t.packages,
        versions: t.versions,
        files: t.files,
        bytes: t.bytes,
        dists: Vec::new(),
    }
}

#[derive(Default)]
struct PoolUsage {
    objects: u64,
    bytes: u64,
    unreferenced_objects: u64,
    unreferenced_bytes: u64,
}

/// Sizes of the objects under `pool/`, and of those no placement references.
fn pool_usage(root: &Path, placed: &HashSet<crate::pool::Sha256>) -> PoolUsage {
    let mut usage = PoolUsage::default();
    let files = walkdir::WalkDir::new(root)
        .min_depth(2)
        .max_depth(2)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file());
    for entry in files {
        let name = entry.file_name().to_string_lossy();
        if crate::pool::Pool::is_temp_name(&name) {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        usage.objects += 1;
        usage.bytes += size;
        if !crate::pool::Sha256::from_hex(&name).is_some_and(|o| placed.contains(&o)) {
            usage.unreferenced_objects += 1;
            usage.unreferenced_bytes += size;
        }
    }
    usage
}
