//! The audit log: the entries operations append in the transaction of
//! their change, and `bess log`, which reads them back.
//!
//! A change that spans several dists (an ingest into every dist, a
//! promotion of one version) is one entry whose `dist` lists them all, so
//! the log reads like the commands that were run.

use super::clock::{parse_time, rfc3339};
use super::{ChangedPlacement, OpsError, Repo};
use crate::catalog::{AuditEntry, AuditFilter, AuditRow, Writer, now};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What `bess log` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub package: Option<String>,
    pub action: Option<String>,
    /// A time as [`parse_time`] reads it.
    pub since: Option<String>,
    pub limit: Option<u64>,
}

/// One audit entry, as `bess log --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub id: i64,
    /// RFC 3339, UTC.
    pub at: String,
    pub actor: String,
    /// `cli` or `http`.
    pub origin: String,
    pub action: String,
    pub channel: Option<String>,
    pub dists: Vec<String>,
    pub package: Option<String>,
    pub version: Option<String>,
    pub architecture: Option<String>,
    pub detail: Value,
}

/// The entries matching `query`, newest first.
pub fn log(repo: &Repo, query: &LogQuery) -> Result<Vec<LogEntry>, OpsError> {
    let since = query
        .since
        .as_deref()
        .map(|s| parse_time(s, now()))
        .transpose()?;
    let filter = AuditFilter {
        package: query.package.clone(),
        action: query.action.clone(),
        since,
        limit: query.limit,
    };
    let rows = repo.catalog.reader().audit(&filter)?;
    Ok(rows.into_iter().map(log_entry).collect())
}

fn log_entry(row: AuditRow) -> LogEntry {
    let e = row.entry;
    LogEntry {
        id: row.id,
        at: rfc3339(row.at),
        actor: e.actor,
        origin: e.origin,
        action: e.action,
        channel: e.channel,
        dists: e
            .dist
            .map(|d| d.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        package: e.package,
        version: e.version,
        architecture: e.arch,
        detail: serde_json::from_str(&e.detail).unwrap_or(Value::Null),
    }
}

/// Appends one entry per package version and channel that `changes`
/// really changed, listing its dists; `extra` (a JSON object) is merged
/// into each entry's detail.
pub(super) fn record_placements(
    writer: &Writer<'_>,
    actor: &super::Actor,
    action: &str,
    changes: &[ChangedPlacement],
    extra: &Value,
) -> Result<(), OpsError> {
    type Key<'a> = (&'a str, &'a str, &'a str, &'a str);
    let mut grouped: BTreeMap<Key<'_>, (Vec<&str>, &str)> = BTreeMap::new();
    for c in changes.iter().filter(|c| c.changed) {
        let key = (
            c.package.as_str(),
            c.version.as_str(),
            c.architecture.as_str(),
            c.channel.as_str(),
        );
        let group = grouped.entry(key).or_insert((Vec::new(), &c.component));
        if !group.0.contains(&c.dist.as_str()) {
            group.0.push(&c.dist);
        }
    }
    for ((package, version, arch, channel), (dists, component)) in grouped {
        let mut detail = json!({ "component": component });
        merge(&mut detail, extra);
        let entry = AuditEntry {
            channel: Some(channel.to_string()),
            dist: Some(dists.join(",")),
            package: Some(package.to_string()),
            version: Some(version.to_string()),
            arch: Some(arch.to_string()),
            detail: detail.to_string(),
            ..actor.entry(action)
        };
        writer.append_audit(&entry)?;
    }
    Ok(())
}

/// Appends one entry that concerns no package (user, key, gc changes).
pub(super) fn record(
    writer: &Writer<'_>,
    actor: &super::Actor,
    action: &str,
    detail: Value,
) -> Result<(), OpsError> {
    let entry = AuditEntry {
        detail: detail.to_string(),
        ..actor.entry(action)
    };
    Ok(writer.append_audit(&entry)?)
}

fn merge(into: &mut Value, extra: &Value) {
    if let (Some(into), Some(extra)) = (into.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            into.insert(k.clone(), v.clone());
        }
    }
}
