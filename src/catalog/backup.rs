//! Copies of the catalog for backups: SQLite's online backup API reads one
//! consistent state while other processes keep writing, and the copy is
//! opened read-only afterwards to learn which pool objects it needs.

use super::{Catalog, CatalogError};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A pool object the catalog refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub sha256: String,
    pub size: u64,
    /// What the object is, for messages (the package's pool name).
    pub name: String,
}

impl Catalog {
    /// Writes a consistent copy of the catalog to `dest` (replaced if it
    /// exists) as one self-contained file, flushed to disk. Writers are
    /// not blocked: the copy is one read transaction of the WAL database.
    pub fn copy_to(&self, dest: &Path) -> Result<(), CatalogError> {
        let fail = |source| CatalogError::Sqlite {
            path: dest.to_path_buf(),
            source,
        };
        let _ = std::fs::remove_file(dest);
        // It holds the users' password hashes, as the catalog does.
        super::files::create_private(dest).map_err(|source| CatalogError::Io {
            path: dest.to_path_buf(),
            source,
        })?;
        let mut copy = Connection::open(dest).map_err(fail)?;
        {
            use rusqlite::backup::{Backup, StepResult};
            let backup = Backup::new(&self.conn, &mut copy).map_err(fail)?;
            // All pages in one step: one read transaction, so one state,
            // which in WAL mode blocks no writer. (Steps of some pages
            // would restart whenever another process commits.)
            while backup.step(-1).map_err(fail)? != StepResult::Done {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // A rollback journal, not WAL: the backup stays a single file.
        copy.pragma_update_and_check(None, "journal_mode", "DELETE", |_| Ok(()))
            .map_err(fail)?;
        copy.close().map_err(|(_, source)| fail(source))?;
        std::fs::File::open(dest)
            .and_then(|f| f.sync_all())
            .map_err(|source| CatalogError::Io {
                path: dest.to_path_buf(),
                source,
            })
    }
}

/// A catalog copy opened read-only and never migrated: a backup's catalog.
pub struct CatalogCopy {
    conn: Connection,
    path: PathBuf,
}

/// Every placed object once: (sha256, size, a name for messages).
const PLACED_OBJECTS: &str = "SELECT sha256, MAX(size) AS size, MIN(name) FROM (
         SELECT sha256, size, pool_name AS name FROM packages
         WHERE id IN (SELECT package_id FROM placements)
         UNION ALL
         SELECT sha256, size, name || ' ' || version || ' ' || provider FROM boxes
         WHERE id IN (SELECT box_id FROM box_placements)
     )
     GROUP BY sha256";

impl CatalogCopy {
    /// Opens the copy at `path` read-only.
    pub fn open(path: &Path) -> Result<CatalogCopy, CatalogError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(path, flags).map_err(|source| CatalogError::Sqlite {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(CatalogCopy {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn fail(&self) -> impl FnOnce(rusqlite::Error) -> CatalogError + '_ {
        |source| CatalogError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The schema version (`PRAGMA user_version`) of the copy.
    pub fn schema_version(&self) -> Result<usize, CatalogError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.fail())
    }

    /// Fails unless the copy is newer than nothing this bess knows and
    /// SQLite finds it intact (`PRAGMA quick_check`).
    pub fn check(&self) -> Result<(), CatalogError> {
        let found = self.schema_version()?;
        if found > super::schema::latest() {
            return Err(CatalogError::TooNew {
                path: self.path.clone(),
                found,
                known: super::schema::latest(),
            });
        }
        let verdict: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(self.fail())?;
        if verdict == "ok" {
            return Ok(());
        }
        Err((self.fail())(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some(format!("damaged: {verdict}")),
        )))
    }

    /// Every pool object a placement refers to, once each, by hash, handed
    /// to `each` in hash order and in batches of at most `size`: a backup of
    /// 250,000 packages held them all at once, which was 40 MiB.
    ///
    /// Every table that places pool objects must be read here, or backups
    /// would miss its objects. Objects of unplaced versions are left out:
    /// `bess repo gc` may already have deleted them, as it is meant to.
    pub fn each_object_batch<E: From<CatalogError>>(
        &self,
        size: usize,
        each: impl FnMut(Vec<ObjectRef>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut statement = self
            .conn
            .prepare(&format!("{PLACED_OBJECTS} ORDER BY sha256"))
            .map_err(self.fail())?;
        let rows = statement
            .query_map([], |row| {
                Ok(ObjectRef {
                    sha256: row.get(0)?,
                    size: row.get::<_, i64>(1)? as u64,
                    name: row.get(2)?,
                })
            })
            .map_err(self.fail())?;
        super::each_batch(rows, size, |e| (self.fail())(e), each)
    }

    /// How many objects [`CatalogCopy::each_object_batch`] hands over, and
    /// their bytes.
    pub fn object_totals(&self) -> Result<(u64, u64), CatalogError> {
        self.conn
            .query_row(
                &format!("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM ({PLACED_OBJECTS})"),
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(self.fail())
    }
}
