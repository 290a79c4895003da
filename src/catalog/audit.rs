//! The audit log: one row per change, appended by the transaction that
//! makes the change, so the log and the catalog never disagree.

use super::{CatalogError, Reader, Writer, now};
use rusqlite::{Row, params};

/// A change about to be recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEntry {
    /// Local user name (CLI) or authenticated user (HTTP).
    pub actor: String,
    /// `cli`, `http` or `incoming` (the drop directory's processor).
    pub origin: String,
    /// `ingest`, `promote`, `remove`, `prune`, `pin`, `unpin`, `gc`,
    /// `user.add`, `user.remove`, `user.passwd`, `key.generate`, `key.retire`,
    /// `box.add`, `box.promote`, `box.remove`, `incoming.reject`.
    pub action: String,
    pub channel: Option<String>,
    /// One dist, or several joined by commas.
    pub dist: Option<String>,
    pub package: Option<String>,
    pub version: Option<String>,
    pub arch: Option<String>,
    /// A JSON object with what else the change needs to be understood.
    pub detail: String,
}

/// A recorded change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    /// Seconds since the Unix epoch.
    pub at: i64,
    pub entry: AuditEntry,
}

/// Which entries [`Reader::audit`] returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub package: Option<String>,
    pub action: Option<String>,
    /// Only entries at or after this time (seconds since the epoch).
    pub since: Option<i64>,
    /// At most this many, newest first.
    pub limit: Option<u64>,
}

impl Writer<'_> {
    /// Appends `entry`; it becomes visible only if the transaction commits.
    pub fn append_audit(&self, entry: &AuditEntry) -> Result<(), CatalogError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO audit (at, actor, origin, action, channel, dist, package, version, arch, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(self.fail())?;
        let detail = if entry.detail.is_empty() {
            "{}"
        } else {
            &entry.detail
        };
        stmt.execute(params![
            now(),
            entry.actor,
            entry.origin,
            entry.action,
            entry.channel,
            entry.dist,
            entry.package,
            entry.version,
            entry.arch,
            detail
        ])
        .map_err(self.fail())?;
        Ok(())
    }
}

impl Reader<'_> {
    /// Entries matching `filter`, newest first.
    pub fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, at, actor, origin, action, channel, dist, package, version, arch, detail
                 FROM audit
                 WHERE (?1 IS NULL OR package = ?1) AND (?2 IS NULL OR action = ?2)
                   AND (?3 IS NULL OR at >= ?3)
                 ORDER BY id DESC LIMIT ?4",
            )
            .map_err(self.fail())?;
        let limit = filter
            .limit
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let rows = stmt
            .query_map(
                params![filter.package, filter.action, filter.since, limit],
                audit_row,
            )
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }
}

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        id: r.get(0)?,
        at: r.get(1)?,
        entry: AuditEntry {
            actor: r.get(2)?,
            origin: r.get(3)?,
            action: r.get(4)?,
            channel: r.get(5)?,
            dist: r.get(6)?,
            package: r.get(7)?,
            version: r.get(8)?,
            arch: r.get(9)?,
            detail: r.get(10)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::Catalog;
    use super::*;

    fn entry(action: &str, package: Option<&str>) -> AuditEntry {
        AuditEntry {
            actor: "alice".into(),
            origin: "cli".into(),
            action: action.into(),
            package: package.map(str::to_string),
            ..AuditEntry::default()
        }
    }

    #[test]
    fn rolled_back_changes_leave_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
        let w = catalog.write().unwrap();
        w.append_audit(&entry("ingest", Some("app"))).unwrap();
        drop(w);
        let w = catalog.write().unwrap();
        w.append_audit(&entry("promote", Some("app"))).unwrap();
        w.append_audit(&entry("gc", None)).unwrap();
        w.commit().unwrap();
        let all = catalog.reader().audit(&AuditFilter::default()).unwrap();
        let actions: Vec<&str> = all.iter().map(|r| r.entry.action.as_str()).collect();
        assert_eq!(
            actions,
            ["gc", "promote"],
            "newest first, rollback left out"
        );
        assert_eq!(all[0].entry.detail, "{}");
        let filter = AuditFilter {
            package: Some("app".into()),
            ..AuditFilter::default()
        };
        assert_eq!(catalog.reader().audit(&filter).unwrap().len(), 1);
        let filter = AuditFilter {
            limit: Some(1),
            since: Some(0),
            ..AuditFilter::default()
        };
        assert_eq!(catalog.reader().audit(&filter).unwrap().len(), 1);
    }
}
