//! `bess box …`: Vagrant boxes on the same engine. A box is an object of
//! the content-addressed pool, catalogued by (name, version, provider,
//! architecture), placed in channels and promoted like a package.

use super::box_tree::{BoxTree, identity_of};
use super::lock::{PoolLock, PublishLock};
use super::{OpsError, Repo};
use crate::boxes::{self, BoxError, BoxIdentity, compare_box_versions, version_key};
use crate::catalog::{BoxRow, NewBox, PlacedBox, Reader};
use serde::Serialize;
use std::io::Read;

/// A box to add: its identity as given on the command line or in the URL.
#[derive(Debug, Clone)]
pub struct BoxAddRequest {
    pub name: String,
    pub version: String,
    pub provider: String,
    pub arch: String,
}

/// One placement of a box, as `bess box list --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoxPlacement {
    pub name: String,
    pub version: String,
    pub provider: String,
    pub architecture: String,
    pub channel: String,
    pub sha256: String,
    pub size: u64,
}

/// A placement that add, promote or remove made or withdrew.
#[derive(Debug, Clone, Serialize)]
pub struct BoxChange {
    #[serde(flatten)]
    pub placement: BoxPlacement,
    /// `false` when the placement already was in the wanted state.
    pub changed: bool,
}

/// `NAME=VERSION`, as promote and remove take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxSelector {
    pub name: String,
    pub version: String,
}

impl BoxSelector {
    /// Parses `name=version` (the name may be `org/name`).
    pub fn parse(text: &str) -> Result<BoxSelector, OpsError> {
        let Some((name, version)) = text.split_once('=') else {
            return Err(OpsError::Usage(format!(
                "`{text}`: name an exact box version as NAME=VERSION; see `bess box list`"
            )));
        };
        let usage = |e: BoxError| OpsError::Usage(format!("`{text}`: {e}"));
        boxes::check_name(name).map_err(usage)?;
        boxes::check_version(version).map_err(usage)?;
        Ok(BoxSelector {
            name: name.to_string(),
            version: version.to_string(),
        })
    }
}

impl std::fmt::Display for BoxSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.version)
    }
}

fn placement(row: &BoxRow, channel: &str) -> BoxPlacement {
    BoxPlacement {
        name: row.name.clone(),
        version: row.version.clone(),
        provider: row.provider.clone(),
        architecture: row.arch.clone(),
        channel: channel.to_string(),
        sha256: row.sha256.clone(),
        size: row.size,
    }
}

/// A box refusal names the upload (`label`); I/O failures stay failures.
fn refusal(label: &str, error: BoxError) -> OpsError {
    match error {
        BoxError::Io {
            action,
            path,
            source,
        } => OpsError::Io {
            action,
            path,
            source,
        },
        other => OpsError::Invalid(vec![format!("{label}: {other}")]),
    }
}

/// Adds a box read from `source` to the first channel. The bytes are
/// hashed while they are copied into the pool's staging area, then the
/// staged file is checked to be a box for the provider; nothing becomes
/// visible unless everything holds. `label` names the upload in errors.
/// Publish targets get the box and its channel's `boxes.json` at once.
pub fn add_box(
    repo: &mut Repo,
    request: &BoxAddRequest,
    source: &mut dyn Read,
    label: &str,
) -> Result<BoxChange, OpsError> {
    let change = add_box_locally(repo, request, source, label)?;
    super::targets::sync_after(repo, "box");
    Ok(change)
}

/// [`add_box`] without the publish targets, under the publish lock.
fn add_box_locally(
    repo: &mut Repo,
    request: &BoxAddRequest,
    source: &mut dyn Read,
    label: &str,
) -> Result<BoxChange, OpsError> {
    let identity = BoxIdentity::new(
        &request.name,
        &request.version,
        &request.provider,
        &request.arch,
    )
    .map_err(|e| refusal(label, e))?;
    known_box(&repo.catalog.reader(), &identity, None, label)?;
    // Streaming and checking a large box takes long: no lock meanwhile.
    let (staged, size) = stage_box(repo, &identity, source, label)?;
    let sha256 = staged.sha256();
    // Then in the order gc takes them: publish, then pool (shared, held
    // from "is this object stored?" until the catalog lists the box).
    let _publish = PublishLock::of(repo)?;
    let _pool = PoolLock::shared(&PoolLock::path(&repo.config.layout.catalog_file()))?;
    if repo.pool.contains(&sha256) {
        repo.pool.discard(vec![staged]);
    } else {
        repo.pool.commit(vec![staged])?;
    }
    let new = NewBox {
        name: identity.name.clone(),
        version: identity.version.clone(),
        version_key: identity.version_key(),
        provider: identity.provider.clone(),
        arch: identity.arch.clone(),
        size,
        sha256: sha256.to_hex(),
    };
    place_new(repo, &identity, &new, label)
}

/// Streams the box into the pool's staging area and checks that it is a
/// box for the provider that the catalog does not hold with other bytes;
/// a refusal leaves nothing behind.
fn stage_box(
    repo: &Repo,
    identity: &BoxIdentity,
    source: &mut dyn Read,
    label: &str,
) -> Result<(crate::pool::Staged, u64), OpsError> {
    let (staged, size) = repo.pool.stage_stream(source)?;
    let sha256 = staged.sha256();
    let checked = boxes::inspect(staged.path(), &identity.provider)
        .map_err(|e| refusal(label, e))
        .and_then(|_| {
            let reader = repo.catalog.reader();
            known_box(&reader, identity, Some(&sha256.to_hex()), label)
        });
    if let Err(error) = checked {
        repo.pool.discard(vec![staged]);
        return Err(error);
    }
    Ok((staged, size))
}

/// Records the box and places it in the first channel, linking its file
/// before the placement is committed; the caller holds the publish lock.
fn place_new(
    repo: &mut Repo,
    identity: &BoxIdentity,
    new: &NewBox,
    label: &str,
) -> Result<BoxChange, OpsError> {
    let channel = repo.config.first_channel().to_string();
    let Repo {
        config,
        catalog,
        pool,
        actor,
        ..
    } = &mut *repo;
    let writer = catalog.write()?;
    if writer.try_insert_box(new)?.is_none() {
        // Known already (an identical re-add, or a concurrent upload).
        known_box(&writer.reader(), identity, Some(&new.sha256), label)?;
    }
    let row = writer
        .reader()
        .find_box(&new.name, &new.version_key, &new.provider, &new.arch)?
        .ok_or_else(|| OpsError::Conflict(format!("{label}: the catalog refused the box")))?;
    let changed = writer.place_box(row.id, &channel)?;
    if changed {
        let detail =
            serde_json::json!({ "provider": row.provider, "sha256": row.sha256, "size": row.size });
        record_box(&writer, actor, ("box.add", &channel), &row, detail)?;
    }
    let tree = BoxTree::new(&config.layout, pool);
    tree.link(&channel, &row)?;
    tree.sync()?;
    writer.commit()?;
    Ok(BoxChange {
        placement: placement(&row, &channel),
        changed,
    })
}

/// Refuses an identity the catalog holds under another spelling of the
/// version or, once `sha256` is known, with other bytes.
fn known_box(
    reader: &Reader<'_>,
    identity: &BoxIdentity,
    sha256: Option<&str>,
    label: &str,
) -> Result<(), OpsError> {
    let key = identity.version_key();
    let Some(known) = reader.find_box(&identity.name, &key, &identity.provider, &identity.arch)?
    else {
        return Ok(());
    };
    if known.version != identity.version {
        return Err(OpsError::Conflict(format!(
            "{label}: vagrant reads version {} as equal to {}, which the repository already holds for {} ({}, {}); use version {} or a new version",
            identity.version, known.version, known.name, known.provider, known.arch, known.version
        )));
    }
    match sha256 {
        Some(sha) if sha != known.sha256 => Err(OpsError::Conflict(format!(
            "{label}: {} is already in the repository with different contents: catalog SHA256 {}, uploaded SHA256 {}. \
             vagrant would fail its checksum; publish the new build under a new version",
            identity.describe(),
            known.sha256,
            sha
        ))),
        _ => Ok(()),
    }
}

/// Places every provider and architecture of `NAME=VERSION` of channel
/// `from` in `to` (default: the first channel, and the one after it).
/// Publish targets get the channel's new `boxes.json` at once.
pub fn promote_box(
    repo: &mut Repo,
    selector: &BoxSelector,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<BoxChange>, OpsError> {
    let changes = promote_box_locally(repo, selector, from, to)?;
    super::targets::sync_after(repo, "promotion");
    Ok(changes)
}

/// [`promote_box`] without the publish targets, under the publish lock.
fn promote_box_locally(
    repo: &mut Repo,
    selector: &BoxSelector,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<BoxChange>, OpsError> {
    let (from, to) = super::promote::promotion_channels(repo, from, to)?;
    let _lock = PublishLock::of(repo)?;
    let Repo {
        config,
        catalog,
        pool,
        actor,
        ..
    } = &mut *repo;
    let tree = BoxTree::new(&config.layout, pool);
    let writer = catalog.write()?;
    let chosen = selected(&writer.reader(), selector, &from)?;
    let mut changes = Vec::new();
    for row in chosen {
        let changed = writer.place_box(row.id, &to)?;
        if changed {
            let detail = serde_json::json!({ "provider": row.provider, "from": from });
            record_box(&writer, actor, ("box.promote", &to), &row, detail)?;
        }
        tree.link(&to, &row)?;
        changes.push(BoxChange {
            placement: placement(&row, &to),
            changed,
        });
    }
    tree.sync()?;
    writer.commit()?;
    tree.reconcile(&to, &catalog.reader().box_placements(Some(&to), None)?)?;
    Ok(changes)
}

/// The boxes of `selector` placed in `channel` (every provider and architecture).
fn selected(
    reader: &Reader<'_>,
    selector: &BoxSelector,
    channel: &str,
) -> Result<Vec<BoxRow>, OpsError> {
    let key = version_key(&selector.version);
    let rows: Vec<BoxRow> = reader
        .box_placements(Some(channel), Some(&selector.name))?
        .into_iter()
        .map(|p| p.row)
        .filter(|row| version_key(&row.version) == key)
        .collect();
    if rows.is_empty() {
        return Err(OpsError::NotFound(format!(
            "box `{selector}` is not in channel `{channel}`; see `bess box list`"
        )));
    }
    Ok(rows)
}

/// Withdraws every provider and architecture of `NAME=VERSION` from a
/// channel; the pool keeps the bytes.
/// Publish targets get the channel's new `boxes.json` at once.
pub fn remove_box(
    repo: &mut Repo,
    selector: &BoxSelector,
    channel: &str,
) -> Result<Vec<BoxChange>, OpsError> {
    let changes = remove_box_locally(repo, selector, channel)?;
    super::targets::sync_after(repo, "removal");
    Ok(changes)
}

/// [`remove_box`] without the publish targets, under the publish lock.
fn remove_box_locally(
    repo: &mut Repo,
    selector: &BoxSelector,
    channel: &str,
) -> Result<Vec<BoxChange>, OpsError> {
    repo.check_channel(channel)?;
    let _lock = PublishLock::of(repo)?;
    let Repo {
        config,
        catalog,
        pool,
        actor,
        ..
    } = &mut *repo;
    let writer = catalog.write()?;
    let chosen = selected(&writer.reader(), selector, channel)?;
    let mut changes = Vec::new();
    for row in chosen {
        let changed = writer.unplace_box(row.id, channel)?;
        if changed {
            let detail = serde_json::json!({ "provider": row.provider });
            record_box(&writer, actor, ("box.remove", channel), &row, detail)?;
        }
        changes.push(BoxChange {
            placement: placement(&row, channel),
            changed,
        });
    }
    writer.commit()?;
    let placed = catalog.reader().box_placements(Some(channel), None)?;
    BoxTree::new(&config.layout, pool).reconcile(channel, &placed)?;
    Ok(changes)
}

/// Appends the audit entry of a change to one box's placement.
fn record_box(
    writer: &crate::catalog::Writer<'_>,
    actor: &super::Actor,
    (action, channel): (&str, &str),
    row: &BoxRow,
    detail: serde_json::Value,
) -> Result<(), OpsError> {
    let entry = crate::catalog::AuditEntry {
        channel: Some(channel.to_string()),
        package: Some(row.name.clone()),
        version: Some(row.version.clone()),
        arch: Some(row.arch.clone()),
        detail: detail.to_string(),
        ..actor.entry(action)
    };
    Ok(writer.append_audit(&entry)?)
}

/// Box placements, optionally of one channel and one name, sorted by name,
/// version (oldest first, as Vagrant orders them), provider, architecture
/// and channel order.
pub fn list_boxes(
    repo: &Repo,
    channel: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<BoxPlacement>, OpsError> {
    if let Some(channel) = channel {
        repo.check_channel(channel)?;
    }
    let channels = &repo.config.settings.channels;
    let rank = |c: &str| channels.iter().position(|x| x == c);
    let mut placed: Vec<PlacedBox> = repo.catalog.reader().box_placements(channel, name)?;
    placed.sort_by(|a, b| {
        (a.row.name.as_str())
            .cmp(&b.row.name)
            .then_with(|| compare_box_versions(&a.row.version, &b.row.version))
            .then_with(|| a.row.provider.cmp(&b.row.provider))
            .then_with(|| a.row.arch.cmp(&b.row.arch))
            .then_with(|| rank(&a.channel).cmp(&rank(&b.channel)))
    });
    Ok(placed
        .iter()
        .map(|p| placement(&p.row, &p.channel))
        .collect())
}

/// Relinks every channel's box tree from the catalog (`bess repo publish
/// --refresh`); the caller holds the publish lock.
pub(super) fn relink_all(repo: &Repo) -> Result<(), OpsError> {
    let placed = repo.catalog.reader().box_placements(None, None)?;
    let tree = BoxTree::new(&repo.config.layout, &repo.pool);
    for channel in &repo.config.settings.channels {
        tree.reconcile(channel, &placed)?;
    }
    Ok(())
}

/// Problems of the published box files, for `bess repo check`.
pub(super) fn check_box_links(repo: &Repo) -> Result<Vec<String>, OpsError> {
    let placed = repo.catalog.reader().box_placements(None, None)?;
    BoxTree::new(&repo.config.layout, &repo.pool).damaged(&placed)
}

/// Checks that a published box's identity is still valid before it names a URL.
pub fn box_file_path(placement: &BoxPlacement) -> Result<String, OpsError> {
    let row = BoxRow {
        id: 0,
        name: placement.name.clone(),
        version: placement.version.clone(),
        provider: placement.provider.clone(),
        arch: placement.architecture.clone(),
        size: placement.size,
        sha256: placement.sha256.clone(),
    };
    Ok(identity_of(&row)?.file_path())
}
