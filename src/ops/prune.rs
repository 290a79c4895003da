//! `bess repo prune`, `pin` and `unpin`: retention of old versions.
//!
//! Prune keeps, in each channel, dist and architecture, the newest `keep`
//! versions of every package (dpkg ordering); older ones are withdrawn the
//! way `bess repo remove` withdraws them. With `older-than-days` a version
//! beyond the newest `keep` also has to have been placed that long ago.
//! A pinned version is never pruned from its channel. Prune frees no byte
//! itself: `bess repo gc` deletes the objects no placement references any
//! more, and prune reports how many bytes that will be.

use super::audit::record_placements;
use super::clock::rfc3339;
use super::promote::{changed_dists, unplace_all};
use super::publish::{Published, publish_targets};
use super::query::compare_versions;
use super::{OpsError, Repo, Selector};
use crate::catalog::{AgedPlacement, AuditEntry, Pin, Reader, Writer, now};
use crate::config::{PruneRule, RepoConfig};
use crate::deb::Version;
use serde::Serialize;
use serde_json::json;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What to prune.
#[derive(Debug, Clone, Default)]
pub struct PruneRequest {
    /// One channel; `None` means every channel with a rule.
    pub channel: Option<String>,
    /// With `older_than_days`, replaces the rules of bess.toml.
    pub keep: Option<u32>,
    pub older_than_days: Option<u32>,
    /// Only report what would go.
    pub dry_run: bool,
    /// Publish the changed dists before returning.
    pub publish: bool,
}

/// The rule applied to one channel.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelRule {
    pub channel: String,
    pub keep: u32,
    pub older_than_days: Option<u32>,
}

/// A placement prune withdrew, would withdraw, or spared for a pin.
#[derive(Debug, Clone, Serialize)]
pub struct PrunedPlacement {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub channel: String,
    pub dist: String,
    pub component: String,
    pub sha256: String,
    pub size: u64,
    /// When it was placed (RFC 3339, UTC).
    pub placed_at: String,
    /// Why it goes, or why it stays.
    pub reason: String,
}

/// The result of a prune.
#[derive(Debug, Clone, Serialize)]
pub struct PruneOutcome {
    pub dry_run: bool,
    pub rules: Vec<ChannelRule>,
    pub removed: Vec<PrunedPlacement>,
    /// Versions the rules would prune but a pin keeps.
    pub spared_by_pin: Vec<PrunedPlacement>,
    /// Objects no placement references once these are gone: what `bess repo gc` frees.
    pub objects_freed: usize,
    pub bytes_freed: u64,
    #[serde(skip)]
    pub published: Vec<Published>,
}

/// What the rules decide for the placements of the chosen channels.
#[derive(Default)]
struct Plan {
    removed: Vec<(AgedPlacement, String)>,
    spared: Vec<(AgedPlacement, String)>,
}

/// Applies the retention rules (or shows what they would do).
pub fn prune(repo: &mut Repo, request: &PruneRequest) -> Result<PruneOutcome, OpsError> {
    let rules = rules(repo, request)?;
    let clock = now();
    if request.dry_run {
        let snapshot = repo.catalog.snapshot()?;
        let reader = snapshot.reader();
        let plan = plan(&repo.config, &reader, &rules, clock)?;
        return outcome(&reader, rules, plan, true);
    }
    let writer = repo.catalog.write()?;
    let plan = plan(&repo.config, &writer.reader(), &rules, clock)?;
    let mut changes = Vec::new();
    for rule in &rules {
        let chosen = plan
            .removed
            .iter()
            .filter(|(p, _)| p.placed.channel == rule.channel)
            .map(|(p, _)| p.placed.clone())
            .collect();
        let changed = unplace_all(&writer, chosen)?;
        let detail = json!({ "keep": rule.keep, "older_than_days": rule.older_than_days });
        record_placements(&writer, &repo.actor, "prune", &changed, &detail)?;
        changes.extend(changed);
    }
    let mut result = outcome(&writer.reader(), rules, plan, false)?;
    writer.commit()?;
    if request.publish {
        result.published = publish_targets(repo, changed_dists(&changes))?;
    }
    Ok(result)
}

/// The rule of each chosen channel: the flags if given, else bess.toml's.
fn rules(repo: &Repo, request: &PruneRequest) -> Result<Vec<ChannelRule>, OpsError> {
    if let Some(channel) = &request.channel {
        repo.check_channel(channel)?;
    }
    if request.keep == Some(0) {
        return Err(OpsError::Usage(
            "--keep 0 would prune every version; keep at least 1 (`bess repo remove` withdraws the last one)".into(),
        ));
    }
    let flags =
        (request.keep.is_some() || request.older_than_days.is_some()).then_some(PruneRule {
            keep: request.keep,
            older_than_days: request.older_than_days,
        });
    let settings = &repo.config.settings;
    let mut rules = Vec::new();
    for channel in &settings.channels {
        if request.channel.as_ref().is_some_and(|c| c != channel) {
            continue;
        }
        if let Some(rule) = flags.or_else(|| settings.prune.get(channel).copied()) {
            rules.push(ChannelRule {
                channel: channel.clone(),
                keep: rule.keep.unwrap_or(1),
                older_than_days: rule.older_than_days,
            });
        }
    }
    if rules.is_empty() {
        let scope = request.channel.as_deref().unwrap_or("<channel>");
        return Err(OpsError::Usage(format!(
            "no retention rule: give --keep N and/or --older-than DAYS, or add [prune.{scope}] keep = N to {}",
            repo.config.layout.settings_file().display()
        )));
    }
    Ok(rules)
}

fn plan(
    config: &RepoConfig,
    reader: &Reader<'_>,
    rules: &[ChannelRule],
    clock: i64,
) -> Result<Plan, OpsError> {
    let mut plan = Plan::default();
    for rule in rules {
        let pins: HashSet<(String, String)> = reader
            .pins(Some(&rule.channel))?
            .into_iter()
            .map(|p| (p.package, p.version_key))
            .collect();
        let placements = reader.aged_placements(&rule.channel)?;
        plan_channel(&mut plan, placements, rule, &pins, clock);
    }
    plan.removed
        .sort_by(|a, b| listing_order(config, &a.0, &b.0));
    plan.spared
        .sort_by(|a, b| listing_order(config, &a.0, &b.0));
    Ok(plan)
}

/// Pipeline order, then dists.list order, then name and version.
fn listing_order(config: &RepoConfig, a: &AgedPlacement, b: &AgedPlacement) -> Ordering {
    let channel = |p: &AgedPlacement| {
        config
            .settings
            .channels
            .iter()
            .position(|c| *c == p.placed.channel)
    };
    let dist = |p: &AgedPlacement| config.dists.position(&p.placed.dist);
    let (pa, pb) = (&a.placed.package, &b.placed.package);
    channel(a)
        .cmp(&channel(b))
        .then_with(|| dist(a).cmp(&dist(b)))
        .then_with(|| pa.name.cmp(&pb.name))
        .then_with(|| compare_versions(&pa.version, &pb.version))
        .then_with(|| pa.arch.cmp(&pb.arch))
}

/// Ranks the versions of each package per dist and architecture, newest
/// first, and sorts each placement beyond the kept ones into removed or spared.
fn plan_channel(
    plan: &mut Plan,
    placements: Vec<AgedPlacement>,
    rule: &ChannelRule,
    pins: &HashSet<(String, String)>,
    clock: i64,
) {
    let cutoff = rule
        .older_than_days
        .map(|days| clock - i64::from(days) * 86_400);
    for group in by_package(placements) {
        let mut versions: Vec<&str> = group
            .iter()
            .map(|p| p.placed.package.version.as_str())
            .collect();
        versions.sort_by(|a, b| compare_versions(b, a));
        versions.dedup();
        let kept: HashSet<String> = versions
            .iter()
            .take(rule.keep as usize)
            .map(|v| v.to_string())
            .collect();
        for p in group {
            if kept.contains(&p.placed.package.version) || cutoff.is_some_and(|c| p.placed_at > c) {
                continue;
            }
            let version_key = Version::parse(&p.placed.package.version)
                .map(|v| v.canonical())
                .unwrap_or_else(|_| p.placed.package.version.clone());
            if pins.contains(&(p.placed.package.name.clone(), version_key)) {
                let reason = format!("pinned in {}", rule.channel);
                plan.spared.push((p, reason));
            } else {
                let reason = reason(rule, clock - p.placed_at);
                plan.removed.push((p, reason));
            }
        }
    }
}

/// The placements of each package, per dist and architecture.
fn by_package(placements: Vec<AgedPlacement>) -> impl Iterator<Item = Vec<AgedPlacement>> {
    let mut groups: BTreeMap<(String, String, String), Vec<AgedPlacement>> = BTreeMap::new();
    for p in placements {
        let key = (
            p.placed.dist.clone(),
            p.placed.package.name.clone(),
            p.placed.package.arch.clone(),
        );
        groups.entry(key).or_default().push(p);
    }
    groups.into_values()
}

fn reason(rule: &ChannelRule, age: i64) -> String {
    let mut text = format!("beyond the newest {}", rule.keep);
    if rule.older_than_days.is_some() {
        text.push_str(&format!(", placed {} day(s) ago", age / 86_400));
    }
    text
}

/// The outcome, with the objects that no placement would reference once
/// the removed placements are gone.
fn outcome(
    reader: &Reader<'_>,
    rules: Vec<ChannelRule>,
    plan: Plan,
    dry_run: bool,
) -> Result<PruneOutcome, OpsError> {
    let mut remaining = reader.placement_counts()?;
    if dry_run {
        for (p, _) in &plan.removed {
            if let Some(n) = remaining.get_mut(&p.placed.package.id) {
                *n = n.saturating_sub(1);
            }
        }
    }
    let mut freed: HashMap<&str, u64> = HashMap::new();
    for (p, _) in &plan.removed {
        let package = &p.placed.package;
        if remaining.get(&package.id).copied().unwrap_or(0) == 0 {
            freed.insert(&package.sha256, package.size);
        }
    }
    Ok(PruneOutcome {
        dry_run,
        rules,
        objects_freed: freed.len(),
        bytes_freed: freed.values().sum(),
        removed: plan.removed.into_iter().map(pruned).collect(),
        spared_by_pin: plan.spared.into_iter().map(pruned).collect(),
        published: Vec::new(),
    })
}

fn pruned((p, reason): (AgedPlacement, String)) -> PrunedPlacement {
    let placed_at = rfc3339(p.placed_at);
    let placed = p.placed;
    let package = placed.package;
    PrunedPlacement {
        package: package.name,
        version: package.version,
        architecture: package.arch,
        channel: placed.channel,
        dist: placed.dist,
        component: placed.component,
        sha256: package.sha256,
        size: package.size,
        placed_at,
        reason,
    }
}

/// `PKG=VERSION` in a channel, for pin and unpin.
#[derive(Debug, Clone)]
pub struct PinRequest {
    pub selector: Selector,
    pub channel: String,
}

/// Pins a version in a channel; `false` if it already was.
pub fn pin(repo: &mut Repo, request: &PinRequest) -> Result<bool, OpsError> {
    let pin = pin_of(repo, request)?;
    let known = repo.catalog.reader().packages_named(&pin.package)?;
    if !known
        .iter()
        .any(|p| request.selector.matches_version(&p.version))
    {
        return Err(OpsError::NotFound(format!(
            "the repository has no {}; see `bess repo versions {}`",
            request.selector, pin.package
        )));
    }
    let writer = repo.catalog.write()?;
    let added = writer.pin(&pin)?;
    if added {
        record_pin(&writer, &repo.actor, "pin", &pin)?;
    }
    writer.commit()?;
    Ok(added)
}

/// Drops a pin.
pub fn unpin(repo: &mut Repo, request: &PinRequest) -> Result<(), OpsError> {
    let pin = pin_of(repo, request)?;
    let writer = repo.catalog.write()?;
    if !writer.unpin(&pin.channel, &pin.package, &pin.version_key)? {
        return Err(OpsError::NotFound(format!(
            "{} is not pinned in `{}`; see `bess repo pins`",
            request.selector, pin.channel
        )));
    }
    record_pin(&writer, &repo.actor, "unpin", &pin)?;
    writer.commit()?;
    Ok(())
}

/// Every pin, of one channel or all.
pub fn pins(repo: &Repo, channel: Option<&str>) -> Result<Vec<Pin>, OpsError> {
    if let Some(channel) = channel {
        repo.check_channel(channel)?;
    }
    Ok(repo.catalog.reader().pins(channel)?)
}

fn pin_of(repo: &Repo, request: &PinRequest) -> Result<Pin, OpsError> {
    repo.check_channel(&request.channel)?;
    let Some(version) = &request.selector.version else {
        return Err(OpsError::Usage(format!(
            "`{}`: a pin needs an exact version (PKG=VERSION); see `bess repo versions {}`",
            request.selector, request.selector.name
        )));
    };
    Ok(Pin {
        channel: request.channel.clone(),
        package: request.selector.name.clone(),
        version: version.as_str().to_string(),
        version_key: version.canonical(),
    })
}

fn record_pin(
    writer: &Writer<'_>,
    actor: &super::Actor,
    action: &str,
    pin: &Pin,
) -> Result<(), OpsError> {
    let entry = AuditEntry {
        channel: Some(pin.channel.clone()),
        package: Some(pin.package.clone()),
        version: Some(pin.version.clone()),
        detail: "{}".into(),
        ..actor.entry(action)
    };
    Ok(writer.append_audit(&entry)?)
}
