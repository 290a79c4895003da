//! What a publication needs from the catalog: the packages of one channel
//! and dist, with their control data and checksums.

use super::{CatalogError, Reader};
use rusqlite::params;

/// One package as an index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub arch: String,
    pub component: String,
    pub pool_name: String,
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub sha512: String,
    /// The control paragraph, `Name: value` lines ending in `\n`.
    pub control: String,
}

impl Reader<'_> {
    /// Every package placed in `channel`/`dist`, in no particular order.
    pub fn index_entries(
        &self,
        channel: &str,
        dist: &str,
    ) -> Result<Vec<IndexEntry>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT p.id, p.name, p.version, p.arch, l.component, p.pool_name, p.size,
                        p.md5, p.sha1, p.sha256, p.sha512, p.control
                 FROM placements l JOIN packages p ON p.id = l.package_id
                 WHERE l.channel = ?1 AND l.dist = ?2",
            )
            .map_err(self.fail())?;
        let rows = stmt
            .query_map(params![channel, dist], |row| {
                Ok(IndexEntry {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    version: row.get(2)?,
                    arch: row.get(3)?,
                    component: row.get(4)?,
                    pool_name: row.get(5)?,
                    size: row.get::<_, i64>(6)? as u64,
                    md5: row.get(7)?,
                    sha1: row.get(8)?,
                    sha256: row.get(9)?,
                    sha512: row.get(10)?,
                    control: row.get(11)?,
                })
            })
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }
}
