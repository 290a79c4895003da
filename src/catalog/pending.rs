//! Which channel/dist pairs need publishing: marked in the same transaction
//! as the placement change, cleared by the publish that included it.

use super::{CatalogError, Reader, Writer};
use rusqlite::{OptionalExtension, params};

/// A dist waiting for its publication, and the change counter it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub channel: String,
    pub dist: String,
    pub seq: i64,
}

impl Writer<'_> {
    /// Marks `channel`/`dist` as changed since its last publication.
    pub fn mark_pending(&self, channel: &str, dist: &str) -> Result<(), CatalogError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO pending_publications (channel, dist, seq) VALUES (?1, ?2, 1)
                 ON CONFLICT (channel, dist) DO UPDATE SET seq = seq + 1",
            )
            .map_err(self.fail())?;
        stmt.execute(params![channel, dist]).map_err(self.fail())?;
        Ok(())
    }

    /// Clears a mark if nothing changed since `pending.seq` was read.
    pub fn clear_pending(&self, pending: &Pending) -> Result<(), CatalogError> {
        self.tx
            .execute(
                "DELETE FROM pending_publications WHERE channel = ?1 AND dist = ?2 AND seq = ?3",
                params![pending.channel, pending.dist, pending.seq],
            )
            .map_err(self.fail())?;
        Ok(())
    }
}

impl Reader<'_> {
    /// Every pending channel/dist.
    pub fn pending(&self) -> Result<Vec<Pending>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT channel, dist, seq FROM pending_publications ORDER BY channel, dist",
            )
            .map_err(self.fail())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Pending {
                    channel: r.get(0)?,
                    dist: r.get(1)?,
                    seq: r.get(2)?,
                })
            })
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// The change counter of one channel/dist, 0 when nothing is pending.
    pub fn pending_seq(&self, channel: &str, dist: &str) -> Result<i64, CatalogError> {
        self.conn
            .query_row(
                "SELECT seq FROM pending_publications WHERE channel = ?1 AND dist = ?2",
                params![channel, dist],
                |r| r.get(0),
            )
            .optional()
            .map(|seq| seq.unwrap_or(0))
            .map_err(self.fail())
    }
}
