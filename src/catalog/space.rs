//! Queries behind retention and space accounting: placement ages, which
//! objects placements still reference, and per-channel/dist totals.

use super::packages::{PlacedPackage, package_row};
use super::{CatalogError, Reader};
use crate::pool::Sha256;
use rusqlite::params;
use std::collections::{HashMap, HashSet};

/// Column 0 as an object's SHA-256; a malformed one is an error naming
/// it, never an object left out (gc would delete what it references).
fn object_digest(row: &rusqlite::Row<'_>) -> rusqlite::Result<Sha256> {
    let hex: String = row.get(0)?;
    Sha256::from_hex(&hex).ok_or_else(|| {
        let why = format!("`{hex}` is not a SHA-256 in hex");
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, why.into())
    })
}

/// A placement and when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgedPlacement {
    pub placed: PlacedPackage,
    /// Seconds since the Unix epoch.
    pub placed_at: i64,
}

/// Totals of one channel/dist, or of a whole channel (`dist` empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementTotals {
    pub channel: String,
    pub dist: String,
    /// Distinct package names.
    pub packages: u64,
    /// Distinct (name, version, architecture).
    pub versions: u64,
    /// Files: per dist, the entries its indices list; per channel, the
    /// files of its pool tree (one per component and package).
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
}

/// Totals of the catalog's packages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogTotals {
    pub packages: u64,
    pub versions: u64,
    /// Distinct objects some placement references, and their bytes.
    pub placed_objects: u64,
    pub placed_bytes: u64,
}

impl Reader<'_> {
    /// The placements of `channel` with the time each was made.
    pub fn aged_placements(&self, channel: &str) -> Result<Vec<AgedPlacement>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT p.id, p.name, p.version, p.arch, p.source, p.size, p.sha256, p.pool_name,
                        l.channel, l.dist, l.component, l.placed_at
                 FROM placements l JOIN packages p ON p.id = l.package_id
                 WHERE l.channel = ?1",
            )
            .map_err(self.fail())?;
        let rows = stmt
            .query_map(params![channel], |row| {
                Ok(AgedPlacement {
                    placed: PlacedPackage {
                        package: package_row(row)?,
                        channel: row.get(8)?,
                        dist: row.get(9)?,
                        component: row.get(10)?,
                    },
                    placed_at: row.get(11)?,
                })
            })
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// How many placements each placed package has, over every channel.
    pub fn placement_counts(&self) -> Result<HashMap<i64, u64>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT package_id, COUNT(*) FROM placements GROUP BY package_id")
            .map_err(self.fail())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// SHA-256 of every object that some placement references, as 32
    /// bytes rather than 64 hex digits: gc holds one for every object of
    /// the repository, and 250,000 hex strings were 34 MiB.
    pub fn placed_objects(&self) -> Result<HashSet<Sha256>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT p.sha256 FROM packages p
                 WHERE p.id IN (SELECT package_id FROM placements)
                 UNION
                 SELECT b.sha256 FROM boxes b
                 WHERE b.id IN (SELECT box_id FROM box_placements)",
            )
            .map_err(self.fail())?;
        let rows = stmt.query_map([], object_digest).map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// Package, version and object totals of the whole catalog.
    pub fn catalog_totals(&self) -> Result<CatalogTotals, CatalogError> {
        let (packages, versions) = self
            .conn
            .query_row(
                "SELECT COUNT(DISTINCT name), COUNT(*) FROM packages",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(self.fail())?;
        let (placed_objects, placed_bytes) = self
            .conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM
                   (SELECT DISTINCT sha256, size FROM packages
                    WHERE id IN (SELECT package_id FROM placements))",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(self.fail())?;
        Ok(CatalogTotals {
            packages,
            versions,
            placed_objects,
            placed_bytes,
        })
    }

    /// Totals per channel and dist.
    pub fn dist_totals(&self) -> Result<Vec<PlacementTotals>, CatalogError> {
        self.totals(
            "SELECT l.channel, l.dist, COUNT(DISTINCT p.name), COUNT(DISTINCT p.id),
                    COUNT(*), COALESCE(SUM(p.size), 0)
             FROM placements l JOIN packages p ON p.id = l.package_id
             GROUP BY l.channel, l.dist ORDER BY l.channel, l.dist",
        )
    }

    /// Totals per channel; files are counted once per channel pool tree.
    pub fn channel_totals(&self) -> Result<Vec<PlacementTotals>, CatalogError> {
        self.totals(
            "SELECT f.channel, '', COUNT(DISTINCT p.name), COUNT(DISTINCT p.id),
                    COUNT(*), COALESCE(SUM(p.size), 0)
             FROM (SELECT DISTINCT channel, component, package_id FROM placements) f
             JOIN packages p ON p.id = f.package_id
             GROUP BY f.channel ORDER BY f.channel",
        )
    }

    fn totals(&self, sql: &str) -> Result<Vec<PlacementTotals>, CatalogError> {
        let mut stmt = self.conn.prepare(sql).map_err(self.fail())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PlacementTotals {
                    channel: r.get(0)?,
                    dist: r.get(1)?,
                    packages: r.get::<_, i64>(2)? as u64,
                    versions: r.get::<_, i64>(3)? as u64,
                    files: r.get::<_, i64>(4)? as u64,
                    bytes: r.get::<_, i64>(5)? as u64,
                })
            })
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Catalog, NewPackage};

    fn sample(name: &str, version: &str, size: u64) -> NewPackage {
        NewPackage {
            name: name.into(),
            version: version.into(),
            version_key: version.into(),
            arch: "amd64".into(),
            source: name.into(),
            size,
            md5: "m".into(),
            sha1: "s1".into(),
            // A real digest: placed objects are read back as SHA-256s.
            sha256: crate::pool::Digests::of(format!("{name}{version}").as_bytes())
                .sha256
                .to_string(),
            sha512: "s5".into(),
            pool_name: format!("{}/{name}/{name}_{version}_amd64.deb", &name[..1]),
            control: format!("Package: {name}\n"),
        }
    }

    #[test]
    fn totals_count_links_per_dist_and_files_per_channel() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
        let w = catalog.write().unwrap();
        let a = w
            .try_insert_package(&sample("app", "1", 100))
            .unwrap()
            .unwrap();
        let b = w
            .try_insert_package(&sample("app", "2", 10))
            .unwrap()
            .unwrap();
        w.try_insert_package(&sample("lib", "1", 5))
            .unwrap()
            .unwrap();
        for dist in ["bookworm", "jammy"] {
            w.place(a, "preprod", dist, "main").unwrap();
        }
        w.place(a, "prod", "bookworm", "main").unwrap();
        w.place(b, "preprod", "bookworm", "main").unwrap();
        w.commit().unwrap();
        let r = catalog.reader();
        let totals = r.catalog_totals().unwrap();
        assert_eq!((totals.packages, totals.versions), (2, 3));
        assert_eq!((totals.placed_objects, totals.placed_bytes), (2, 110));
        let dists = r.dist_totals().unwrap();
        let bytes: Vec<(&str, &str, u64)> = dists
            .iter()
            .map(|t| (t.channel.as_str(), t.dist.as_str(), t.bytes))
            .collect();
        assert_eq!(
            bytes,
            [
                ("preprod", "bookworm", 110),
                ("preprod", "jammy", 100),
                ("prod", "bookworm", 100)
            ]
        );
        let channels = r.channel_totals().unwrap();
        assert_eq!((channels[0].files, channels[0].bytes), (2, 110));
        assert_eq!(r.placement_counts().unwrap()[&a], 3);
        assert_eq!(r.placed_objects().unwrap().len(), 2);
        assert_eq!(r.aged_placements("prod").unwrap().len(), 1);
    }
}
