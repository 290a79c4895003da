//! What a publication needs from the catalog: the packages of one channel
//! and dist with their checksums, and their control data on demand.

use super::{CatalogError, Reader};
use rusqlite::params_from_iter;
use std::collections::HashMap;

/// One package as an index lists it (its control text is fetched apart).
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
}

/// Most ids bound in one `IN (…)` query.
const IDS_PER_QUERY: usize = 500;

impl Reader<'_> {
    /// Every package placed in `channel`/`dist`, in placement order: a new
    /// placement comes last, so publishing it leaves the start of every
    /// index unchanged (and its compressed chunks reusable).
    pub fn index_entries(
        &self,
        channel: &str,
        dist: &str,
    ) -> Result<Vec<IndexEntry>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT p.id, p.name, p.version, p.arch, l.component, p.pool_name, p.size,
                        p.md5, p.sha1, p.sha256, p.sha512
                 FROM placements l JOIN packages p ON p.id = l.package_id
                 WHERE l.channel = ?1 AND l.dist = ?2
                 ORDER BY l.placed_at, l.package_id, l.component",
            )
            .map_err(self.fail())?;
        let rows = stmt
            .query_map([channel, dist], |row| {
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
                })
            })
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// The control paragraphs of these packages, by package id.
    pub fn controls(&self, ids: &[i64]) -> Result<HashMap<i64, String>, CatalogError> {
        let mut found = HashMap::with_capacity(ids.len());
        for batch in ids.chunks(IDS_PER_QUERY) {
            let marks = vec!["?"; batch.len()].join(",");
            let sql =
                format!("SELECT package_id, control FROM controls WHERE package_id IN ({marks})");
            let mut stmt = self.conn.prepare_cached(&sql).map_err(self.fail())?;
            let rows = stmt
                .query_map(params_from_iter(batch), |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(self.fail())?;
            for row in rows {
                let (id, control) = row.map_err(self.fail())?;
                found.insert(id, control);
            }
        }
        Ok(found)
    }
}
