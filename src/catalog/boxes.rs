//! Vagrant boxes and their placements in channels.

use super::{CatalogError, Reader, Writer, now};
use rusqlite::{OptionalExtension, Row, params};

/// A box about to enter the catalog.
#[derive(Debug, Clone)]
pub struct NewBox {
    pub name: String,
    pub version: String,
    pub version_key: String,
    pub provider: String,
    pub arch: String,
    pub size: u64,
    pub sha256: String,
}

/// A box as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxRow {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub provider: String,
    pub arch: String,
    pub size: u64,
    pub sha256: String,
}

/// A box published in a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedBox {
    pub row: BoxRow,
    pub channel: String,
}

macro_rules! box_columns {
    () => {
        "b.id, b.name, b.version, b.provider, b.arch, b.size, b.sha256"
    };
}

fn box_row(row: &Row<'_>) -> rusqlite::Result<BoxRow> {
    Ok(BoxRow {
        id: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        provider: row.get(3)?,
        arch: row.get(4)?,
        size: row.get::<_, i64>(5)? as u64,
        sha256: row.get(6)?,
    })
}

impl Reader<'_> {
    /// The box with this identity, if known.
    pub fn find_box(
        &self,
        name: &str,
        version_key: &str,
        provider: &str,
        arch: &str,
    ) -> Result<Option<BoxRow>, CatalogError> {
        const SQL: &str = concat!(
            "SELECT ",
            box_columns!(),
            " FROM boxes b WHERE name = ?1 AND version_key = ?2 AND provider = ?3 AND arch = ?4"
        );
        let mut stmt = self.conn.prepare_cached(SQL).map_err(self.fail())?;
        stmt.query_row(params![name, version_key, provider, arch], box_row)
            .optional()
            .map_err(self.fail())
    }

    /// Every box of `name` and version key, placed or not (all providers and architectures).
    pub fn boxes_of_version(
        &self,
        name: &str,
        version_key: &str,
    ) -> Result<Vec<BoxRow>, CatalogError> {
        const SQL: &str = concat!(
            "SELECT ",
            box_columns!(),
            " FROM boxes b WHERE name = ?1 AND version_key = ?2 ORDER BY provider, arch"
        );
        let mut stmt = self.conn.prepare_cached(SQL).map_err(self.fail())?;
        let rows = stmt
            .query_map(params![name, version_key], box_row)
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// Box placements, optionally of one channel and one name.
    pub fn box_placements(
        &self,
        channel: Option<&str>,
        name: Option<&str>,
    ) -> Result<Vec<PlacedBox>, CatalogError> {
        const SQL: &str = concat!(
            "SELECT ",
            box_columns!(),
            ", l.channel FROM box_placements l JOIN boxes b ON b.id = l.box_id
             WHERE (?1 IS NULL OR l.channel = ?1) AND (?2 IS NULL OR b.name = ?2)"
        );
        let mut stmt = self.conn.prepare_cached(SQL).map_err(self.fail())?;
        let rows = stmt
            .query_map(params![channel, name], |row| {
                Ok(PlacedBox {
                    row: box_row(row)?,
                    channel: row.get(7)?,
                })
            })
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// The SHA-256 of every box placed in some channel (an unplaced box's
    /// object may be gone: `bess repo gc` collects it).
    pub fn box_objects(&self) -> Result<Vec<String>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT sha256 FROM boxes
                 WHERE id IN (SELECT box_id FROM box_placements)",
            )
            .map_err(self.fail())?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }
}

impl Writer<'_> {
    /// Records a new box and returns its id, or `None` (changing nothing)
    /// when its identity is taken.
    pub fn try_insert_box(&self, b: &NewBox) -> Result<Option<i64>, CatalogError> {
        let inserted = self
            .tx
            .execute(
                "INSERT INTO boxes (name, version, version_key, provider, arch, size, sha256, added_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
                params![
                    b.name,
                    b.version,
                    b.version_key,
                    b.provider,
                    b.arch,
                    b.size as i64,
                    b.sha256,
                    now()
                ],
            )
            .map_err(self.fail())?;
        Ok((inserted > 0).then(|| self.tx.last_insert_rowid()))
    }

    /// Places a box in a channel; `false` if it already was.
    pub fn place_box(&self, box_id: i64, channel: &str) -> Result<bool, CatalogError> {
        let changed = self
            .tx
            .execute(
                "INSERT OR IGNORE INTO box_placements (channel, box_id, placed_at) VALUES (?1, ?2, ?3)",
                params![channel, box_id, now()],
            )
            .map_err(self.fail())?;
        Ok(changed > 0)
    }

    /// Withdraws a box from a channel; `false` if it was not there.
    pub fn unplace_box(&self, box_id: i64, channel: &str) -> Result<bool, CatalogError> {
        let changed = self
            .tx
            .execute(
                "DELETE FROM box_placements WHERE channel = ?1 AND box_id = ?2",
                params![channel, box_id],
            )
            .map_err(self.fail())?;
        Ok(changed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Catalog;
    use super::*;

    fn sample(version: &str, sha: &str) -> NewBox {
        NewBox {
            name: "acme/base".into(),
            version: version.into(),
            version_key: crate::boxes::version_key(version),
            provider: "libvirt".into(),
            arch: "amd64".into(),
            size: 3,
            sha256: sha.into(),
        }
    }

    #[test]
    fn identity_is_unique_by_version_key_and_placements_toggle() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
        let w = catalog.write().unwrap();
        let id = w.try_insert_box(&sample("1.2.0", "aa")).unwrap().unwrap();
        assert!(w.try_insert_box(&sample("1.2", "bb")).unwrap().is_none());
        assert!(w.place_box(id, "preprod").unwrap());
        assert!(!w.place_box(id, "preprod").unwrap());
        w.commit().unwrap();
        let r = catalog.reader();
        assert_eq!(
            r.find_box("acme/base", "1.2", "libvirt", "amd64")
                .unwrap()
                .unwrap()
                .id,
            id
        );
        assert_eq!(r.box_placements(Some("preprod"), None).unwrap().len(), 1);
        assert!(r.box_placements(Some("prod"), None).unwrap().is_empty());
        assert_eq!(r.box_objects().unwrap(), ["aa"]);
        let w = catalog.write().unwrap();
        assert!(w.unplace_box(id, "preprod").unwrap());
        assert!(!w.unplace_box(id, "preprod").unwrap());
        w.commit().unwrap();
        assert!(catalog.reader().box_objects().unwrap().is_empty());
    }
}
