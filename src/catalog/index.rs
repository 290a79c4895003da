//! What a publication needs from the catalog: the packages of one channel
//! and dist with their checksums, and their control data on demand.

use super::{CatalogError, Reader};
use rusqlite::params_from_iter;
use std::collections::HashMap;

/// One package as an index lists it: enough to split a dist into indices
/// and cut them into chunks. What its stanza says is fetched apart
/// ([`StanzaParts`]), and only for the chunks that need rendering: an
/// incremental publish of a 60,000-package dist renders one or two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub id: i64,
    pub arch: String,
    pub component: String,
    /// The first 32 bits of the `.deb`'s SHA-256, which place chunk boundaries.
    pub sha256_head: Option<u32>,
}

/// What one package's stanza is rendered from: its control paragraph and
/// the fields the repository computes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StanzaParts {
    pub control: String,
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
                "SELECT p.id, p.arch, l.component, substr(p.sha256, 1, 8), l.placed_at
                 FROM placements l JOIN packages p ON p.id = l.package_id
                 WHERE l.channel = ?1 AND l.dist = ?2",
            )
            .map_err(self.fail())?;
        let rows = stmt
            .query_map([channel, dist], |row| {
                let placed_at: i64 = row.get(4)?;
                let head = row.get_ref(3)?.as_str().ok();
                let entry = IndexEntry {
                    id: row.get(0)?,
                    arch: row.get(1)?,
                    component: row.get(2)?,
                    sha256_head: head.and_then(|h| u32::from_str_radix(h, 16).ok()),
                };
                Ok((placed_at, entry))
            })
            .map_err(self.fail())?;
        let mut placed: Vec<(i64, IndexEntry)> =
            rows.collect::<Result<_, _>>().map_err(self.fail())?;
        // Sorted here, not by SQLite: ORDER BY over 60,000 wide rows spills
        // SQLite's sorter to temporary files under the small page cache a
        // publish runs with, which cost more than the rest of an
        // incremental publish's catalog work.
        placed.sort_unstable_by(|(a_at, a), (b_at, b)| {
            (a_at, a.id, &a.component).cmp(&(b_at, b.id, &b.component))
        });
        Ok(placed.into_iter().map(|(_, entry)| entry).collect())
    }

    /// What the stanzas of these packages are rendered from, by package id.
    pub fn stanza_parts(&self, ids: &[i64]) -> Result<HashMap<i64, StanzaParts>, CatalogError> {
        let mut found = HashMap::with_capacity(ids.len());
        for batch in ids.chunks(IDS_PER_QUERY) {
            let marks = vec!["?"; batch.len()].join(",");
            let sql = format!(
                "SELECT c.package_id, c.control, p.pool_name, p.size, p.md5, p.sha1, p.sha256, p.sha512
                 FROM controls c JOIN packages p ON p.id = c.package_id
                 WHERE c.package_id IN ({marks})"
            );
            let mut stmt = self.conn.prepare_cached(&sql).map_err(self.fail())?;
            let rows = stmt
                .query_map(params_from_iter(batch), |r| {
                    let parts = StanzaParts {
                        control: r.get(1)?,
                        pool_name: r.get(2)?,
                        size: r.get::<_, i64>(3)? as u64,
                        md5: r.get(4)?,
                        sha1: r.get(5)?,
                        sha256: r.get(6)?,
                        sha512: r.get(7)?,
                    };
                    Ok((r.get(0)?, parts))
                })
                .map_err(self.fail())?;
            for row in rows {
                let (id, parts) = row.map_err(self.fail())?;
                found.insert(id, parts);
            }
        }
        Ok(found)
    }
}
