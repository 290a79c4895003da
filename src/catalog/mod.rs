//! The catalog: the only module with SQL. It records which packages exist
//! and where each is placed (channel, dist, component); the public trees are
//! a pure function of it.

mod audit;
mod backup;
mod boxes;
mod envs;
mod files;
mod index;
mod packages;
mod pending;
mod pins;
mod schema;
mod space;
mod target_ledger;
mod tree_queue;
mod users;

pub use audit::{AuditEntry, AuditFilter, AuditRow};
pub use backup::{CatalogCopy, ObjectRef};
pub use boxes::{BoxRow, NewBox, PlacedBox};
pub use envs::{EnvironmentRow, InstalledRow, MachineRow, PlatformRow, StepRow};
pub use index::{IndexEntry, StanzaParts};
pub use packages::{NewPackage, PackageRow, PlacedPackage, PlacementFilter};
pub use pending::Pending;
pub use pins::Pin;
pub use space::{AgedPlacement, CatalogTotals, PlacementTotals};
pub use target_ledger::TargetLedger;
pub use tree_queue::QueuedFile;
pub use users::UserRow;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors of the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "catalog {path}: {source}{}",
        crate::disk::catalog_full_hint(path, source)
    )]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "cannot write catalog copy {path}: {source}{}",
        crate::disk::full_hint(source)
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot make {path} readable by its owner only: {source}; it holds the password hashes of bess serve's users, so restrict it (chmod 600) as its owner"
    )]
    Permissions {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "catalog {path}: the change is saved, but a reader kept an older snapshot for {secs} s, so the superseded password hash may still be in the catalog or its -wal file; the next `bess user passwd` or `bess user remove` clears it, as does `sqlite3 {path} 'PRAGMA wal_checkpoint(TRUNCATE)'` once bess serve is idle"
    )]
    LogBusy { path: PathBuf, secs: u64 },
    #[error(
        "catalog {path} has schema version {found}, newer than this bess understands ({known}); upgrade bess"
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
}

/// An open catalog.
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(300);

impl Catalog {
    /// Opens (creating and migrating if needed) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Catalog, CatalogError> {
        let fail = |source| CatalogError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        restrict_files(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(fail)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        // secure_delete zeroes what a write deletes or frees, so that a
        // removed user's password hash does not stay in free space. A
        // publish of 3000 packages wrote four more 4 KiB pages with it, an
        // ingest or a removal of 1000 packages not one more byte.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA secure_delete = ON;
             PRAGMA cache_size = -65536;
             PRAGMA foreign_keys = ON;",
        )
        .map_err(fail)?;
        let found: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(fail)?;
        if found > schema::latest() {
            return Err(CatalogError::TooNew {
                path: path.to_path_buf(),
                found,
                known: schema::latest(),
            });
        }
        if found < schema::latest() {
            schema::migrate(&mut conn).map_err(fail)?;
        }
        Ok(Catalog {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Starts a write transaction. `BEGIN IMMEDIATE` takes the write lock up
    /// front, so concurrent writers queue instead of failing mid-way.
    pub fn write(&mut self) -> Result<Writer<'_>, CatalogError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| CatalogError::Sqlite {
                path: path.clone(),
                source,
            })?;
        Ok(Writer { tx, path })
    }

    /// Bounds the page cache of this connection to `kib` KiB. Ingests
    /// write with a large one; a publish reads every control once, and a
    /// large cache would only raise its memory.
    pub fn limit_page_cache(&self, kib: u32) -> Result<(), CatalogError> {
        self.conn
            .execute_batch(&format!("PRAGMA cache_size = -{kib};"))
            .map_err(|source| CatalogError::Sqlite {
                path: self.path.clone(),
                source,
            })
    }

    /// A read transaction: every query through it sees one consistent state,
    /// whatever other processes commit meanwhile (WAL snapshot isolation).
    pub fn snapshot(&mut self) -> Result<Snapshot<'_>, CatalogError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(|source| CatalogError::Sqlite {
                path: path.clone(),
                source,
            })?;
        Ok(Snapshot { tx, path })
    }

    /// Copies the write-ahead log into the database and truncates it, so
    /// that no page image from before a change survives there; run after a
    /// password hash is replaced or removed. (secure_delete clears the
    /// database's free space, not old frames of the log; and a reader's
    /// older snapshot can keep the old page in the database until a
    /// checkpoint.) Waits, up to the busy timeout, for such readers.
    pub fn truncate_wal(&self) -> Result<(), CatalogError> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .map_err(|source| CatalogError::Sqlite {
                path: self.path.clone(),
                source,
            })?;
        if busy == 0 {
            return Ok(());
        }
        Err(CatalogError::LogBusy {
            path: self.path.clone(),
            secs: BUSY_TIMEOUT.as_secs(),
        })
    }

    /// Read access for queries.
    pub fn reader(&self) -> Reader<'_> {
        Reader {
            conn: &self.conn,
            path: &self.path,
        }
    }
}

/// Creates the catalog file owner-only if it is new, and tightens an
/// existing one and its `-wal` and `-shm` (see `files.rs`).
fn restrict_files(path: &Path) -> Result<(), CatalogError> {
    files::create_private(path).map_err(|source| CatalogError::Permissions {
        path: path.to_path_buf(),
        source,
    })?;
    files::restrict(path).map_err(|(path, source)| CatalogError::Permissions { path, source })
}

/// A write transaction; dropped without [`Writer::commit`] it rolls back.
pub struct Writer<'a> {
    tx: Transaction<'a>,
    path: PathBuf,
}

impl Writer<'_> {
    /// Makes every change of the transaction durable at once.
    pub fn commit(self) -> Result<(), CatalogError> {
        let path = self.path;
        self.tx
            .commit()
            .map_err(|source| CatalogError::Sqlite { path, source })
    }

    /// Read queries inside the transaction (they see its own changes).
    pub fn reader(&self) -> Reader<'_> {
        Reader {
            conn: &self.tx,
            path: &self.path,
        }
    }

    fn fail(&self) -> impl FnOnce(rusqlite::Error) -> CatalogError + '_ {
        |source| CatalogError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

/// A consistent read-only view; see [`Catalog::snapshot`].
pub struct Snapshot<'a> {
    tx: Transaction<'a>,
    path: PathBuf,
}

impl Snapshot<'_> {
    /// Queries against the snapshot.
    pub fn reader(&self) -> Reader<'_> {
        Reader {
            conn: &self.tx,
            path: &self.path,
        }
    }
}

/// Read-only queries, on a connection or inside a transaction.
pub struct Reader<'a> {
    conn: &'a Connection,
    path: &'a Path,
}

impl Reader<'_> {
    fn fail(&self) -> impl FnOnce(rusqlite::Error) -> CatalogError + '_ {
        |source| CatalogError::Sqlite {
            path: self.path.to_path_buf(),
            source,
        }
    }
}

/// Seconds since the Unix epoch, for `added_at`/`placed_at`.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Hands `rows` to `each` in batches of at most `size`, so that a walk
/// over the whole repository never holds it in memory at once. A row
/// that fails to read is reported through `fail`; `each` may fail with
/// the caller's own error, which stops the walk.
fn each_batch<T, E: From<CatalogError>>(
    rows: impl Iterator<Item = rusqlite::Result<T>>,
    size: usize,
    fail: impl Fn(rusqlite::Error) -> CatalogError,
    mut each: impl FnMut(Vec<T>) -> Result<(), E>,
) -> Result<(), E> {
    let mut batch = Vec::with_capacity(size);
    for row in rows {
        batch.push(row.map_err(&fail)?);
        if batch.len() == size {
            each(std::mem::replace(&mut batch, Vec::with_capacity(size)))?;
        }
    }
    if !batch.is_empty() {
        each(batch)?;
    }
    Ok(())
}
