//! Packages and their placements: inserts, lookups and listings.

use super::{CatalogError, Reader, Writer, now};
use rusqlite::{OptionalExtension, Row, params};

/// A package about to enter the catalog.
#[derive(Debug, Clone)]
pub struct NewPackage {
    pub name: String,
    pub version: String,
    pub version_key: String,
    pub arch: String,
    pub source: String,
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub sha512: String,
    pub pool_name: String,
    pub control: String,
}

/// A package as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRow {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub arch: String,
    pub source: String,
    pub size: u64,
    pub sha256: String,
    pub pool_name: String,
}

/// One placement of a package: published in `channel`, `dist`, `component`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedPackage {
    pub package: PackageRow,
    pub channel: String,
    pub dist: String,
    pub component: String,
}

/// Which placements a listing returns; `None`/empty means "any".
#[derive(Debug, Clone, Default)]
pub struct PlacementFilter {
    pub channel: Option<String>,
    pub dists: Vec<String>,
    pub name: Option<String>,
}

/// The columns [`package_row`] reads, as a literal so queries can be `concat!`ed
/// at compile time and cached as prepared statements.
macro_rules! package_columns {
    () => {
        "p.id, p.name, p.version, p.arch, p.source, p.size, p.sha256, p.pool_name"
    };
}

pub(super) fn package_row(row: &Row<'_>) -> rusqlite::Result<PackageRow> {
    Ok(PackageRow {
        id: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        arch: row.get(3)?,
        source: row.get(4)?,
        size: row.get::<_, i64>(5)? as u64,
        sha256: row.get(6)?,
        pool_name: row.get(7)?,
    })
}

impl Reader<'_> {
    /// The package with this identity, if known.
    pub fn find_package(
        &self,
        name: &str,
        version_key: &str,
        arch: &str,
    ) -> Result<Option<PackageRow>, CatalogError> {
        const SQL: &str = concat!(
            "SELECT ",
            package_columns!(),
            " FROM packages p WHERE name = ?1 AND version_key = ?2 AND arch = ?3"
        );
        let mut stmt = self.conn.prepare_cached(SQL).map_err(self.fail())?;
        stmt.query_row(params![name, version_key, arch], package_row)
            .optional()
            .map_err(self.fail())
    }

    /// The package that owns a pool file name, if any.
    pub fn find_by_pool_name(&self, pool_name: &str) -> Result<Option<PackageRow>, CatalogError> {
        const SQL: &str = concat!(
            "SELECT ",
            package_columns!(),
            " FROM packages p WHERE pool_name = ?1"
        );
        let mut stmt = self.conn.prepare_cached(SQL).map_err(self.fail())?;
        stmt.query_row(params![pool_name], package_row)
            .optional()
            .map_err(self.fail())
    }

    /// The versions (as written) of every known `name` for `arch`.
    pub fn versions_of(&self, name: &str, arch: &str) -> Result<Vec<String>, CatalogError> {
        const SQL: &str = "SELECT version FROM packages WHERE name = ?1 AND arch = ?2";
        let mut stmt = self.conn.prepare_cached(SQL).map_err(self.fail())?;
        let rows = stmt
            .query_map(params![name, arch], |row| row.get::<_, String>(0))
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// Every known package called `name`, placed or not.
    pub fn packages_named(&self, name: &str) -> Result<Vec<PackageRow>, CatalogError> {
        const SQL: &str = concat!(
            "SELECT ",
            package_columns!(),
            " FROM packages p WHERE name = ?1"
        );
        let mut stmt = self.conn.prepare_cached(SQL).map_err(self.fail())?;
        let rows = stmt
            .query_map(params![name], package_row)
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// Every package of the catalog, placed or not.
    pub fn all_packages(&self) -> Result<Vec<PackageRow>, CatalogError> {
        let mut all = Vec::new();
        self.each_package(|row| {
            all.push(row);
            Ok(())
        })?;
        Ok(all)
    }

    /// [`Reader::all_packages`] one at a time, for callers whose memory
    /// must not grow with the repository.
    pub fn each_package(
        &self,
        mut each: impl FnMut(PackageRow) -> Result<(), CatalogError>,
    ) -> Result<(), CatalogError> {
        const SQL: &str = concat!("SELECT ", package_columns!(), " FROM packages p");
        let mut stmt = self.conn.prepare_cached(SQL).map_err(self.fail())?;
        let rows = stmt.query_map([], package_row).map_err(self.fail())?;
        for row in rows {
            each(row.map_err(self.fail())?)?;
        }
        Ok(())
    }

    /// Placements matching `filter`, in no particular order.
    pub fn placements(&self, filter: &PlacementFilter) -> Result<Vec<PlacedPackage>, CatalogError> {
        let mut placed = Vec::new();
        self.each_placement(filter, |row| {
            placed.push(row);
            Ok::<_, CatalogError>(())
        })?;
        Ok(placed)
    }

    /// [`Reader::placements`] one at a time, for callers whose memory must
    /// not grow with the repository. `each` may fail with the caller's own
    /// error (linking a file, say), which stops the walk.
    pub fn each_placement<E: From<CatalogError>>(
        &self,
        filter: &PlacementFilter,
        mut each: impl FnMut(PlacedPackage) -> Result<(), E>,
    ) -> Result<(), E> {
        const SQL: &str = concat!(
            "SELECT ",
            package_columns!(),
            ", l.channel, l.dist, l.component
             FROM placements l JOIN packages p ON p.id = l.package_id
             WHERE (?1 IS NULL OR l.channel = ?1) AND (?2 IS NULL OR p.name = ?2)"
        );
        let mut stmt = self.conn.prepare_cached(SQL).map_err(self.fail())?;
        let rows = stmt
            .query_map(params![filter.channel, filter.name], |row| {
                Ok(PlacedPackage {
                    package: package_row(row)?,
                    channel: row.get(8)?,
                    dist: row.get(9)?,
                    component: row.get(10)?,
                })
            })
            .map_err(self.fail())?;
        for row in rows {
            let row = row.map_err(self.fail())?;
            if filter.dists.is_empty() || filter.dists.contains(&row.dist) {
                each(row)?;
            }
        }
        Ok(())
    }
}

impl Writer<'_> {
    /// Records a new package and returns its id, or `None` (changing
    /// nothing) when its identity or its pool file name is already taken.
    pub fn try_insert_package(&self, p: &NewPackage) -> Result<Option<i64>, CatalogError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO packages (name, version, version_key, arch, source, size, md5, sha1,
                 sha256, sha512, pool_name, added_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT DO NOTHING",
            )
            .map_err(self.fail())?;
        let inserted = stmt
            .execute(params![
                p.name,
                p.version,
                p.version_key,
                p.arch,
                p.source,
                p.size as i64,
                p.md5,
                p.sha1,
                p.sha256,
                p.sha512,
                p.pool_name,
                now()
            ])
            .map_err(self.fail())?;
        if inserted == 0 {
            return Ok(None);
        }
        let id = self.tx.last_insert_rowid();
        let mut stmt = self
            .tx
            .prepare_cached("INSERT INTO controls (package_id, control) VALUES (?1, ?2)")
            .map_err(self.fail())?;
        stmt.execute(params![id, p.control]).map_err(self.fail())?;
        Ok(Some(id))
    }

    /// Gives a package another pool file name (a move to another layout;
    /// the caller queues its files for linking).
    pub fn set_pool_name(&self, package_id: i64, pool_name: &str) -> Result<(), CatalogError> {
        let mut stmt = self
            .tx
            .prepare_cached("UPDATE packages SET pool_name = ?2 WHERE id = ?1")
            .map_err(self.fail())?;
        stmt.execute(params![package_id, pool_name])
            .map_err(self.fail())?;
        Ok(())
    }

    /// Places a package; returns `false` if it already was placed there.
    pub fn place(
        &self,
        package_id: i64,
        channel: &str,
        dist: &str,
        component: &str,
    ) -> Result<bool, CatalogError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO placements (channel, dist, component, package_id, placed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(self.fail())?;
        let changed = stmt
            .execute(params![channel, dist, component, package_id, now()])
            .map_err(self.fail())?;
        Ok(changed > 0)
    }

    /// Removes one placement; returns `false` if there was none.
    pub fn unplace(
        &self,
        package_id: i64,
        channel: &str,
        dist: &str,
        component: &str,
    ) -> Result<bool, CatalogError> {
        let changed = self
            .tx
            .execute(
                "DELETE FROM placements WHERE package_id = ?1 AND channel = ?2 AND dist = ?3 AND component = ?4",
                params![package_id, channel, dist, component],
            )
            .map_err(self.fail())?;
        Ok(changed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Catalog;
    use super::*;

    fn sample(name: &str, version: &str) -> NewPackage {
        NewPackage {
            name: name.into(),
            version: version.into(),
            version_key: version.into(),
            arch: "amd64".into(),
            source: name.into(),
            size: 10,
            md5: "m".into(),
            sha1: "s1".into(),
            sha256: format!("{name}{version}"),
            sha512: "s5".into(),
            pool_name: format!("{}/{name}/{name}_{version}_amd64.deb", &name[..1]),
            control: format!("Package: {name}\n"),
        }
    }

    #[test]
    fn insert_place_list_unplace() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
        let w = catalog.write().unwrap();
        let id = w
            .try_insert_package(&sample("hello", "1.0"))
            .unwrap()
            .unwrap();
        assert!(w.place(id, "preprod", "bookworm", "main").unwrap());
        assert!(!w.place(id, "preprod", "bookworm", "main").unwrap());
        w.commit().unwrap();

        let r = catalog.reader();
        assert_eq!(
            r.find_package("hello", "1.0", "amd64").unwrap().unwrap().id,
            id
        );
        let placed = r.placements(&PlacementFilter::default()).unwrap();
        assert_eq!(placed.len(), 1);
        assert_eq!(placed[0].dist, "bookworm");

        let w = catalog.write().unwrap();
        assert!(w.unplace(id, "preprod", "bookworm", "main").unwrap());
        w.commit().unwrap();
        assert!(
            catalog
                .reader()
                .placements(&PlacementFilter::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn identity_is_unique() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
        let w = catalog.write().unwrap();
        assert!(
            w.try_insert_package(&sample("hello", "1.0"))
                .unwrap()
                .is_some()
        );
        assert!(
            w.try_insert_package(&sample("hello", "1.0"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn reopening_keeps_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        drop(Catalog::open(&path).unwrap());
        let catalog = Catalog::open(&path).unwrap();
        assert!(catalog.reader().packages_named("x").unwrap().is_empty());
    }
}
