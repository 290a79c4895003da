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
//!
//! A pool object no channel references any more is marked with the time
//! `bess repo gc` first saw it so (`unreferenced_since`), and deleted from
//! the store once it stayed unreferenced for the target's grace period:
//! a frontend may still serve an index that lists it meanwhile.

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
        migrate(&conn).map_err(fail(path))?;
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
                 ON CONFLICT (key) DO UPDATE SET sha256 = excluded.sha256,
                     unreferenced_since = NULL",
                params![key, sha256],
            )
            .map(drop)
            .map_err(fail(&self.path))
    }

    /// Whether the ledger records nothing: new, deleted, or kept for
    /// another store.
    pub fn is_empty(&self) -> Result<bool, CatalogError> {
        self.conn
            .query_row("SELECT NOT EXISTS (SELECT 1 FROM held)", [], |r| r.get(0))
            .map_err(fail(&self.path))
    }

    /// Records many keys the store holds, in one transaction.
    pub fn record_all(&self, keys: &[(String, String)]) -> Result<(), CatalogError> {
        let fail = fail(&self.path);
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(&fail)?;
        let written = keys.iter().try_for_each(|(key, sha)| self.record(key, sha));
        match written {
            Ok(()) => self.conn.execute_batch("COMMIT").map_err(fail),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// The SHA-256 of the bytes the store holds at `key`, if it holds it.
    pub fn sha256_of(&self, key: &str) -> Result<Option<String>, CatalogError> {
        self.conn
            .query_row("SELECT sha256 FROM held WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(fail(&self.path))
    }

    /// Every key under `prefix` with the time gc first saw it unreferenced
    /// (`None`: referenced when gc last looked).
    pub fn marks_under(&self, prefix: &str) -> Result<Vec<(String, Option<i64>)>, CatalogError> {
        let mut statement = self
            .conn
            .prepare("SELECT key, unreferenced_since FROM held WHERE key >= ?1 AND key < ?2")
            .map_err(fail(&self.path))?;
        let rows = statement
            .query_map(params![prefix, format!("{prefix}\u{10ffff}")], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(fail(&self.path))?;
        rows.collect::<Result<_, _>>().map_err(fail(&self.path))
    }

    /// Marks `key` unreferenced since `since` (seconds since the epoch), or
    /// referenced again with `None`.
    pub fn mark(&self, key: &str, since: Option<i64>) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE held SET unreferenced_since = ?2 WHERE key = ?1",
                params![key, since],
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

/// Changes of the ledger's schema after its first version (the tables
/// above), in order: an append-only list tracked by `PRAGMA user_version`.
const MIGRATIONS: [&str; 1] = [
    // 1: when gc first saw an object unreferenced (NULL: referenced).
    "ALTER TABLE held ADD COLUMN unreferenced_since INTEGER;",
];

/// Brings a ledger written by an earlier bess to the current schema.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (at, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql} PRAGMA user_version = {}; COMMIT;",
            at + 1
        ))?;
    }
    Ok(())
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

    #[test]
    fn a_ledger_of_the_first_schema_gains_the_gc_marks_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.db");
        let first = Connection::open(&path).unwrap();
        first
            .execute_batch(
                "CREATE TABLE store (identity TEXT NOT NULL);
                 INSERT INTO store VALUES ('id');
                 CREATE TABLE held (key TEXT PRIMARY KEY, sha256 TEXT NOT NULL) WITHOUT ROWID;
                 INSERT INTO held VALUES ('p/objects/ab', 'ab'), ('p/key.gpg', '01');",
            )
            .unwrap();
        drop(first);
        let ledger = TargetLedger::open(&path, "id").unwrap();
        assert_eq!(
            ledger.sha256_of("p/key.gpg").unwrap().as_deref(),
            Some("01")
        );
        ledger.mark("p/objects/ab", Some(7)).unwrap();
        assert_eq!(
            ledger.marks_under("p/objects/").unwrap(),
            [("p/objects/ab".to_string(), Some(7))]
        );
        ledger.record("p/objects/ab", "ab").unwrap();
        assert_eq!(ledger.marks_under("p/objects/").unwrap()[0].1, None);
        drop(ledger);
        // Opening again runs no migration twice.
        TargetLedger::open(&path, "id").unwrap();
    }
}
