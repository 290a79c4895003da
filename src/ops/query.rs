//! Read-only views of the catalog: list, versions, diff.

use super::{OpsError, Repo};
use crate::catalog::{PlacedPackage, PlacementFilter};
use crate::deb::Version;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::HashSet;

/// One published placement, as `repo list --json` prints it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Listing {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub channel: String,
    pub dist: String,
    pub component: String,
    pub sha256: String,
    pub size: u64,
}

/// Where one version of a package is published.
#[derive(Debug, Clone, Serialize)]
pub struct Where {
    pub channel: String,
    pub dist: String,
    pub component: String,
}

/// One version of a package (per architecture) and its placements.
#[derive(Debug, Clone, Serialize)]
pub struct PackageVersions {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub sha256: String,
    pub size: u64,
    pub placements: Vec<Where>,
}

/// Every placement, optionally of one channel and some dists, sorted.
pub fn list(
    repo: &Repo,
    channel: Option<&str>,
    dists: &[String],
) -> Result<Vec<Listing>, OpsError> {
    if let Some(channel) = channel {
        repo.check_channel(channel)?;
    }
    repo.check_dists(dists)?;
    let filter = PlacementFilter {
        channel: channel.map(str::to_string),
        dists: dists.to_vec(),
        name: None,
    };
    let placed = repo.catalog.reader().placements(&filter)?;
    Ok(sorted_listings(repo, placed))
}

/// Every version known for `name`, newest first, with where each is published.
pub fn versions(repo: &Repo, name: &str) -> Result<Vec<PackageVersions>, OpsError> {
    let reader = repo.catalog.reader();
    let mut rows = reader.packages_named(name)?;
    if rows.is_empty() {
        return Err(OpsError::NotFound(format!(
            "no package named `{name}` in the repository"
        )));
    }
    let filter = PlacementFilter {
        name: Some(name.to_string()),
        ..PlacementFilter::default()
    };
    let mut placed = reader.placements(&filter)?;
    placed.sort_by(|a, b| placement_order(repo, a, b));
    rows.sort_by(|a, b| compare_versions(&b.version, &a.version).then_with(|| a.arch.cmp(&b.arch)));
    Ok(rows
        .into_iter()
        .map(|row| PackageVersions {
            placements: placed
                .iter()
                .filter(|p| p.package.id == row.id)
                .map(|p| Where {
                    channel: p.channel.clone(),
                    dist: p.dist.clone(),
                    component: p.component.clone(),
                })
                .collect(),
            package: row.name,
            version: row.version,
            architecture: row.arch,
            sha256: row.sha256,
            size: row.size,
        })
        .collect())
}

/// What is placed in `from` and not in `to` (same dist), sorted.
pub fn diff(repo: &Repo, from: &str, to: &str, dists: &[String]) -> Result<Vec<Listing>, OpsError> {
    repo.check_channel(from)?;
    repo.check_channel(to)?;
    repo.check_dists(dists)?;
    let reader = repo.catalog.reader();
    let select = |channel: &str| PlacementFilter {
        channel: Some(channel.to_string()),
        dists: dists.to_vec(),
        name: None,
    };
    let target: HashSet<(i64, String)> = reader
        .placements(&select(to))?
        .into_iter()
        .map(|p| (p.package.id, p.dist))
        .collect();
    let missing = reader
        .placements(&select(from))?
        .into_iter()
        .filter(|p| !target.contains(&(p.package.id, p.dist.clone())))
        .collect();
    Ok(sorted_listings(repo, missing))
}

fn sorted_listings(repo: &Repo, mut placed: Vec<PlacedPackage>) -> Vec<Listing> {
    placed.sort_by(|a, b| placement_order(repo, a, b));
    placed
        .into_iter()
        .map(|p| Listing {
            package: p.package.name,
            version: p.package.version,
            architecture: p.package.arch,
            channel: p.channel,
            dist: p.dist,
            component: p.component,
            sha256: p.package.sha256,
            size: p.package.size,
        })
        .collect()
}

/// Name, then Debian version order, then arch, then pipeline and dists.list order.
pub(super) fn placement_order(repo: &Repo, a: &PlacedPackage, b: &PlacedPackage) -> Ordering {
    let channel_index = |c: &str| repo.config.settings.channels.iter().position(|x| x == c);
    let dist_index = |d: &str| repo.config.dists.position(d);
    a.package
        .name
        .cmp(&b.package.name)
        .then_with(|| compare_versions(&a.package.version, &b.package.version))
        .then_with(|| a.package.arch.cmp(&b.package.arch))
        .then_with(|| channel_index(&a.channel).cmp(&channel_index(&b.channel)))
        .then_with(|| dist_index(&a.dist).cmp(&dist_index(&b.dist)))
        .then_with(|| a.component.cmp(&b.component))
}

/// dpkg ordering of two stored versions (they were validated on ingest).
pub(super) fn compare_versions(a: &str, b: &str) -> Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}
