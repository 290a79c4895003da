//! The packages an ingest has validated and admitted, kept on disk until
//! the catalog records them all in one transaction.
//!
//! An ingest is all-or-nothing, so nothing may reach the catalog before
//! every file has been read; holding every admitted package in memory
//! until then made an ingest's memory grow with its size (925 MiB for
//! 63,440 packages). Here they go into a private SQLite database in the
//! repository's `tmp/`, indexed by identity, which also answers the
//! in-upload duplicate checks: memory stays bounded by SQLite's page cache
//! whatever the upload's size. The file is deleted when dropped.

use crate::catalog::NewPackage;
use crate::ops::OpsError;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

/// SQLite's page cache for the spool, in KiB.
const CACHE_KIB: i64 = 8 * 1024;

/// One admitted package: the index of its file in the ingest's list, its
/// catalog row and the dists it goes to.
pub struct Admitted {
    pub file: usize,
    pub row: NewPackage,
    pub dists: Vec<String>,
}

/// The admitted packages of one ingest, in admission order.
pub struct AdmittedSpool {
    conn: Connection,
    file: tempfile::NamedTempFile,
}

impl AdmittedSpool {
    /// An empty spool in `tmp_dir` (the repository's, so a full disk is
    /// reported where the repository is).
    pub fn create(tmp_dir: &Path) -> Result<AdmittedSpool, OpsError> {
        std::fs::create_dir_all(tmp_dir).map_err(OpsError::io("create", tmp_dir))?;
        let file = tempfile::Builder::new()
            .prefix("ingest-")
            .suffix(".spool")
            .tempfile_in(tmp_dir)
            .map_err(OpsError::io("create a file in", tmp_dir))?;
        let fail = |e: rusqlite::Error| spool_error(file.path(), &e);
        let conn = Connection::open(file.path()).map_err(fail)?;
        // Nothing here survives the process: no journal, no fsync.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             PRAGMA cache_size = -{CACHE_KIB};
             CREATE TABLE admitted (
                 seq INTEGER PRIMARY KEY, file INTEGER NOT NULL,
                 name TEXT NOT NULL, version TEXT NOT NULL, version_key TEXT NOT NULL,
                 arch TEXT NOT NULL, source TEXT NOT NULL, size INTEGER NOT NULL,
                 md5 TEXT NOT NULL, sha1 TEXT NOT NULL, sha256 TEXT NOT NULL,
                 sha512 TEXT NOT NULL, pool_name TEXT NOT NULL, control TEXT NOT NULL,
                 dists TEXT NOT NULL);
             CREATE INDEX admitted_identity ON admitted (name, arch, version_key);
             BEGIN;"
        ))
        .map_err(fail)?;
        Ok(AdmittedSpool { conn, file })
    }

    fn fail(&self) -> impl Fn(rusqlite::Error) -> OpsError + '_ {
        |e| spool_error(self.file.path(), &e)
    }

    /// Adds a package.
    pub fn push(&self, admitted: &Admitted) -> Result<(), OpsError> {
        let r = &admitted.row;
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT INTO admitted (file, name, version, version_key, arch, source, size,
                 md5, sha1, sha256, sha512, pool_name, control, dists)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .map_err(self.fail())?;
        insert
            .execute(params![
                admitted.file as i64,
                r.name,
                r.version,
                r.version_key,
                r.arch,
                r.source,
                r.size as i64,
                r.md5,
                r.sha1,
                r.sha256,
                r.sha512,
                r.pool_name,
                r.control,
                admitted.dists.join("\n"),
            ])
            .map_err(self.fail())?;
        Ok(())
    }

    /// The SHA-256 and file of the admitted package with this identity.
    pub fn identity(
        &self,
        name: &str,
        version_key: &str,
        arch: &str,
    ) -> Result<Option<(String, usize)>, OpsError> {
        let mut query = self
            .conn
            .prepare_cached(
                "SELECT sha256, file FROM admitted
                 WHERE name = ?1 AND arch = ?2 AND version_key = ?3",
            )
            .map_err(self.fail())?;
        query
            .query_row(params![name, arch, version_key], |row| {
                Ok((row.get(0)?, row.get::<_, i64>(1)? as usize))
            })
            .optional()
            .map_err(self.fail())
    }

    /// The versions (as spelled) and files of the admitted packages with
    /// this name and architecture.
    pub fn versions(&self, name: &str, arch: &str) -> Result<Vec<(String, usize)>, OpsError> {
        let mut query = self
            .conn
            .prepare_cached("SELECT version, file FROM admitted WHERE name = ?1 AND arch = ?2")
            .map_err(self.fail())?;
        let rows = query
            .query_map(params![name, arch], |row| {
                Ok((row.get(0)?, row.get::<_, i64>(1)? as usize))
            })
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// Every admitted package, in admission order, to `each`.
    pub fn for_each(
        &self,
        mut each: impl FnMut(Admitted) -> Result<(), OpsError>,
    ) -> Result<(), OpsError> {
        let mut query = self
            .conn
            .prepare(
                "SELECT file, name, version, version_key, arch, source, size, md5, sha1,
                 sha256, sha512, pool_name, control, dists FROM admitted ORDER BY seq",
            )
            .map_err(self.fail())?;
        let mut rows = query.query([]).map_err(self.fail())?;
        while let Some(row) = rows.next().map_err(self.fail())? {
            let admitted = read_admitted(row).map_err(self.fail())?;
            each(admitted)?;
        }
        Ok(())
    }
}

/// An error of the spool at `path`, saying so when the disk is full.
fn spool_error(path: &Path, error: &rusqlite::Error) -> OpsError {
    OpsError::Conflict(format!(
        "cannot keep the uploads being checked in {}: {error}{}; nothing was ingested",
        path.display(),
        crate::disk::catalog_full_hint(path, error)
    ))
}

fn read_admitted(row: &rusqlite::Row<'_>) -> rusqlite::Result<Admitted> {
    let dists: String = row.get(13)?;
    Ok(Admitted {
        file: row.get::<_, i64>(0)? as usize,
        row: NewPackage {
            name: row.get(1)?,
            version: row.get(2)?,
            version_key: row.get(3)?,
            arch: row.get(4)?,
            source: row.get(5)?,
            size: row.get::<_, i64>(6)? as u64,
            md5: row.get(7)?,
            sha1: row.get(8)?,
            sha256: row.get(9)?,
            sha512: row.get(10)?,
            pool_name: row.get(11)?,
            control: row.get(12)?,
        },
        dists: dists.lines().map(str::to_string).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, version: &str, sha256: &str) -> Admitted {
        Admitted {
            file: 7,
            row: NewPackage {
                name: name.into(),
                version: version.into(),
                version_key: version.into(),
                arch: "amd64".into(),
                source: name.into(),
                size: 3,
                md5: "m".into(),
                sha1: "s1".into(),
                sha256: sha256.into(),
                sha512: "s5".into(),
                pool_name: format!("{name}_{version}_amd64.deb"),
                control: format!("Package: {name}\nVersion: {version}\n"),
            },
            dists: vec!["bookworm".into(), "trixie".into()],
        }
    }

    #[test]
    fn admitted_packages_come_back_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = AdmittedSpool::create(dir.path()).unwrap();
        spool.push(&package("b", "1.0", "bb")).unwrap();
        spool.push(&package("a", "2.0", "aa")).unwrap();
        assert_eq!(
            spool.identity("a", "2.0", "amd64").unwrap(),
            Some(("aa".into(), 7))
        );
        assert_eq!(spool.identity("a", "2.0", "arm64").unwrap(), None);
        assert_eq!(spool.versions("b", "amd64").unwrap(), [("1.0".into(), 7)]);
        let mut seen = Vec::new();
        spool
            .for_each(|a| {
                seen.push((a.row.name.clone(), a.dists.clone(), a.row.control.clone()));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen[0].0, "b");
        assert_eq!(seen[1].1, ["bookworm", "trixie"]);
        assert_eq!(seen[1].2, "Package: a\nVersion: 2.0\n");
    }

    #[test]
    fn the_spool_file_goes_with_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let spool = AdmittedSpool::create(dir.path()).unwrap();
        spool.push(&package("a", "1", "x")).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(spool);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
