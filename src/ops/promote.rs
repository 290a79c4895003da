//! `bess repo promote` and `bess repo remove`: the only operations that move
//! placements between channels after ingest.

use super::audit::record_placements;
use super::publish::publish_targets;
use super::query::{compare_versions, placement_order};
use super::{OpsError, Repo, Selector};
use crate::catalog::{PlacedPackage, PlacementFilter, Writer};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

/// Copy exact versions from one channel to another.
#[derive(Debug, Clone, Default)]
pub struct PromoteRequest {
    pub selectors: Vec<Selector>,
    /// Source channel; `None` means the first channel.
    pub from: Option<String>,
    /// Target channel; `None` means the channel after `from`.
    pub to: Option<String>,
    /// Restrict to these dists; empty means every dist.
    pub dists: Vec<String>,
    /// Publish the changed dists before returning.
    pub publish: bool,
}

/// Withdraw exact versions from one channel.
#[derive(Debug, Clone, Default)]
pub struct RemoveRequest {
    pub selectors: Vec<Selector>,
    pub channel: String,
    pub dists: Vec<String>,
    /// Publish the changed dists before returning.
    pub publish: bool,
}

/// A placement that a promote or remove added or withdrew.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedPlacement {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub channel: String,
    pub dist: String,
    pub component: String,
    /// `false` when the placement already was in the wanted state.
    pub changed: bool,
}

/// Places the selected versions of `from` in `to`, dist by dist.
pub fn promote(
    repo: &mut Repo,
    request: &PromoteRequest,
) -> Result<Vec<ChangedPlacement>, OpsError> {
    let (from, to) = promotion_channels(repo, request.from.as_deref(), request.to.as_deref())?;
    repo.check_dists(&request.dists)?;
    let mut chosen = Vec::new();
    for selector in &request.selectors {
        chosen.extend(select(repo, selector, &from, &request.dists, true)?);
    }
    let writer = repo.catalog.write()?;
    let mut changes = Vec::new();
    for p in chosen {
        let changed = writer.place(p.package.id, &to, &p.dist, &p.component)?;
        if changed {
            writer.mark_pending(&to, &p.dist)?;
            writer.enqueue_file(&to, &p.component, p.package.id)?;
        }
        changes.push(changed_placement(p, &to, changed));
    }
    let detail = json!({ "from": from });
    record_placements(&writer, &repo.actor, "promote", &changes, &detail)?;
    writer.commit()?;
    if request.publish {
        publish_targets(repo, changed_dists(&changes))?;
    }
    Ok(changes)
}

/// Withdraws the selected versions from a channel; the publish that follows
/// removes files no dist of the channel still needs from its pool tree.
pub fn remove(repo: &mut Repo, request: &RemoveRequest) -> Result<Vec<ChangedPlacement>, OpsError> {
    repo.check_channel(&request.channel)?;
    repo.check_dists(&request.dists)?;
    let mut chosen = Vec::new();
    for selector in &request.selectors {
        if selector.version.is_none() {
            return Err(OpsError::Usage(format!(
                "`{selector}`: remove needs an exact version (PKG=VERSION); see `bess repo versions {}`",
                selector.name
            )));
        }
        chosen.extend(select(
            repo,
            selector,
            &request.channel,
            &request.dists,
            false,
        )?);
    }
    let writer = repo.catalog.write()?;
    let changes = unplace_all(&writer, chosen)?;
    record_placements(&writer, &repo.actor, "remove", &changes, &json!({}))?;
    writer.commit()?;
    if request.publish {
        publish_targets(repo, changed_dists(&changes))?;
    }
    Ok(changes)
}

/// Withdraws placements inside `writer`'s transaction; the publish that
/// follows drops them from the indices, then from the pool tree.
pub(super) fn unplace_all(
    writer: &Writer<'_>,
    chosen: Vec<PlacedPackage>,
) -> Result<Vec<ChangedPlacement>, OpsError> {
    let mut changes = Vec::new();
    for p in chosen {
        let changed = writer.unplace(p.package.id, &p.channel, &p.dist, &p.component)?;
        if changed {
            writer.mark_pending(&p.channel, &p.dist)?;
            writer.enqueue_file(&p.channel, &p.component, p.package.id)?;
        }
        let channel = p.channel.clone();
        changes.push(changed_placement(p, &channel, changed));
    }
    Ok(changes)
}

/// The channel/dist pairs whose placements changed.
pub(super) fn changed_dists(changes: &[ChangedPlacement]) -> Vec<(String, String)> {
    let pairs: std::collections::BTreeSet<_> = changes
        .iter()
        .filter(|c| c.changed)
        .map(|c| (c.channel.clone(), c.dist.clone()))
        .collect();
    pairs.into_iter().collect()
}

/// The channels of a promotion: `from` (default the first channel) and
/// `to` (default the one after `from`), both known and different.
pub(super) fn promotion_channels(
    repo: &Repo,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(String, String), OpsError> {
    let from = from.unwrap_or(repo.config.first_channel()).to_string();
    repo.check_channel(&from)?;
    let to = match to {
        Some(to) => to.to_string(),
        None => repo
            .config
            .next_channel(&from)
            .map(str::to_string)
            .ok_or_else(|| {
                OpsError::Usage(format!(
                    "`{from}` is the last channel; name a target with --to"
                ))
            })?,
    };
    repo.check_channel(&to)?;
    if from == to {
        return Err(OpsError::Usage(format!(
            "--from and --to are both `{from}`"
        )));
    }
    Ok((from, to))
}

/// The placements in `channel` a selector names. Without a version and with
/// `newest`, that is the newest version of each dist (dist-specific builds
/// have different versions per dist).
fn select(
    repo: &Repo,
    selector: &Selector,
    channel: &str,
    dists: &[String],
    newest: bool,
) -> Result<Vec<PlacedPackage>, OpsError> {
    let filter = PlacementFilter {
        channel: Some(channel.to_string()),
        dists: dists.to_vec(),
        name: Some(selector.name.clone()),
    };
    let mut placed: Vec<PlacedPackage> = repo
        .catalog
        .reader()
        .placements(&filter)?
        .into_iter()
        .filter(|p| selector.matches_version(&p.package.version))
        .collect();
    if placed.is_empty() {
        let scope = if dists.is_empty() {
            String::new()
        } else {
            format!(" ({})", dists.join(", "))
        };
        return Err(OpsError::NotFound(format!(
            "`{selector}` is not in channel `{channel}`{scope}; see `bess repo versions {}`",
            selector.name
        )));
    }
    if newest && selector.version.is_none() {
        placed = newest_per_dist(placed);
    }
    placed.sort_by(|a, b| placement_order(repo, a, b));
    Ok(placed)
}

fn newest_per_dist(placed: Vec<PlacedPackage>) -> Vec<PlacedPackage> {
    let mut best: BTreeMap<String, String> = BTreeMap::new();
    for p in &placed {
        let entry = best
            .entry(p.dist.clone())
            .or_insert_with(|| p.package.version.clone());
        if compare_versions(&p.package.version, entry).is_gt() {
            *entry = p.package.version.clone();
        }
    }
    placed
        .into_iter()
        .filter(|p| best.get(&p.dist) == Some(&p.package.version))
        .collect()
}

fn changed_placement(p: PlacedPackage, channel: &str, changed: bool) -> ChangedPlacement {
    ChangedPlacement {
        package: p.package.name,
        version: p.package.version,
        architecture: p.package.arch,
        channel: channel.to_string(),
        dist: p.dist,
        component: p.component,
        changed,
    }
}
