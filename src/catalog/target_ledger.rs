//! What a publish target already holds: one small SQLite file per target.
//!
//! A row says "this key is in the store with these bytes (SHA-256)". It is
//! written only after the store acknowledged the PUT, so the ledger never
//! claims what the store lacks; a publish killed part-way loses at most the
//! rows of requests in flight, and the next publish uploads exactly what
//! has no row. It lives in `targets/<name>.db`, outside the catalog,
//! because it describes a remote store, not the repository: a backup or
//! restore of the catalog must not carry it to another store, no catalog
//! migration or write lock is needed for it, and deleting it costs only a
//! full upload (keys are content-addressed or overwritten whole). Commits
//! use `synchronous = NORMAL`: a kill -9 loses nothing committed, and a
//! power loss can only lose rows, which means uploading again, never
//! skipping an upload.

use super::CatalogError;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

/// The record of one target's contents.
#[derive(Debug)]
pub struct TargetLedger {
    conn: Connection,
    path: PathBuf,
}

impl TargetLedger {
    /// Opens (creating if needed) the ledger at `path` for the store named
    /// by `identity` (endpoint, bucket, prefix). A ledger kept for another
    /// store is emptied: what it lists says nothing about this one. The
    /// directory must exist.
    pub fn open(path: &Path, identity: &str) -> Result<TargetLedger, CatalogError> {
        let conn = Connection::open(path).map_err(fail(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(fail(path))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS store (identity TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS held (
                 key TEXT PRIMARY KEY,
                 sha256 TEXT NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS held_by_content ON held (sha256);",
        )
        .map_err(fail(path))?;
        let ledger = TargetLedger {
            conn,
            path: path.to_path_buf(),
        };
        ledger.claim(identity)?;
        Ok(ledger)
    }

    /// Makes the ledger describe the store `identity`.
    fn claim(&self, identity: &str) -> Result<(), CatalogError> {
        let known: Option<String> = self
            .conn
            .query_row("SELECT identity FROM store", [], |r| r.get(0))
            .optional()
            .map_err(fail(&self.path))?;
        if known.as_deref() == Some(identity) {
            return Ok(());
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE; DELETE FROM held; DELETE FROM store;")
            .map_err(fail(&self.path))?;
        self.conn
            .execute("INSERT INTO store (identity) VALUES (?1)", [identity])
            .map_err(fail(&self.path))?;
        self.conn.execute_batch("COMMIT").map_err(fail(&self.path))
    }

    /// Calls `each` with every key the store holds and the SHA-256 of its
    /// bytes, without collecting them (a target holds every pool object).
    pub fn each_held(&self, mut each: impl FnMut(&str, &str)) -> Result<(), CatalogError> {
        let mut statement = self
            .conn
            .prepare("SELECT key, sha256 FROM held")
            .map_err(fail(&self.path))?;
        let mut rows = statement.query([]).map_err(fail(&self.path))?;
        while let Some(row) = rows.next().map_err(fail(&self.path))? {
            let key = row.get_ref(0).and_then(|v| Ok(v.as_str()?));
            let sha = row.get_ref(1).and_then(|v| Ok(v.as_str()?));
            each(
                key.map_err(fail(&self.path))?,
                sha.map_err(fail(&self.path))?,
            );
        }
        Ok(())
    }

    /// Records that the store acknowledged `key` with these bytes.
    pub fn record(&self, key: &str, sha256: &str) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "INSERT INTO held (key, sha256) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET sha256 = excluded.sha256",
                params![key, sha256],
            )
            .map(drop)
            .map_err(fail(&self.path))
    }

    /// Records that `key` was deleted from the store.
    pub fn forget(&self, key: &str) -> Result<(), CatalogError> {
        self.conn
            .execute("DELETE FROM held WHERE key = ?1", [key])
            .map(drop)
            .map_err(fail(&self.path))
    }
}

fn fail(path: &Path) -> impl Fn(rusqlite::Error) -> CatalogError + '_ {
    move |source| CatalogError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_reopening_and_are_dropped_for_another_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.db");
        let ledger = TargetLedger::open(&path, "http://a bucket p").unwrap();
        ledger.record("p/objects/ab", "ab").unwrap();
        ledger.record("p/x/Release", "01").unwrap();
        ledger.forget("p/x/Release").unwrap();
        drop(ledger);
        let count = |ledger: &TargetLedger| {
            let mut keys = Vec::new();
            ledger
                .each_held(|key, _| keys.push(key.to_string()))
                .unwrap();
            keys
        };
        let again = TargetLedger::open(&path, "http://a bucket p").unwrap();
        assert_eq!(count(&again), ["p/objects/ab"]);
        drop(again);
        let other = TargetLedger::open(&path, "http://b bucket p").unwrap();
        assert!(count(&other).is_empty());
    }
}
