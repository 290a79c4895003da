//! Pool-tree changes waiting for a publish: each placement added or removed
//! queues its file, and the publish that follows links or withdraws it.

use super::{CatalogError, Reader, Writer};
use rusqlite::params;

/// SQL that is true when a placement of the queued row `q` still wants its
/// file: the one definition linking, dequeuing and withdrawing agree on.
macro_rules! wanted {
    () => {
        "EXISTS (SELECT 1 FROM placements l WHERE l.package_id = q.package_id
                 AND l.channel = q.channel AND l.component = q.component)"
    };
}

/// A file of a channel's pool tree that may need linking or withdrawing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedFile {
    pub id: i64,
    pub component: String,
    pub pool_name: String,
    pub sha256: String,
    /// Whether any dist of the channel places the package in this component.
    pub wanted: bool,
}

impl Writer<'_> {
    /// Queues the file of `package_id` in `channel`/`component` for the next publish.
    pub fn enqueue_file(
        &self,
        channel: &str,
        component: &str,
        package_id: i64,
    ) -> Result<(), CatalogError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO tree_queue (channel, component, package_id) VALUES (?1, ?2, ?3)",
            )
            .map_err(self.fail())?;
        stmt.execute(params![channel, component, package_id])
            .map_err(self.fail())?;
        Ok(())
    }

    /// Forgets queued files of `channel` up to `last_id` (later ones were queued after the snapshot).
    pub fn dequeue_files(&self, channel: &str, last_id: i64) -> Result<(), CatalogError> {
        self.tx
            .execute(
                "DELETE FROM tree_queue WHERE channel = ?1 AND id <= ?2",
                params![channel, last_id],
            )
            .map_err(self.fail())?;
        Ok(())
    }

    /// Forgets queued files of `channel` up to `last_id` that a placement
    /// of the channel still wants: once linked, nothing is left to do for
    /// them. A file placed or removed since was queued again, later.
    pub fn dequeue_wanted(&self, channel: &str, last_id: i64) -> Result<(), CatalogError> {
        self.tx
            .execute(
                concat!(
                    "DELETE FROM tree_queue AS q WHERE q.channel = ?1 AND q.id <= ?2 AND ",
                    wanted!()
                ),
                params![channel, last_id],
            )
            .map_err(self.fail())?;
        Ok(())
    }
}

impl Reader<'_> {
    /// The last queue id of `channel`, if anything is queued.
    pub fn last_queued(&self, channel: &str) -> Result<Option<i64>, CatalogError> {
        self.conn
            .query_row(
                "SELECT max(id) FROM tree_queue WHERE channel = ?1",
                params![channel],
                |r| r.get(0),
            )
            .map_err(self.fail())
    }

    /// The files queued for `channel` up to queue id `last_id` that no
    /// placement of the channel wants any more. Only those are read: the
    /// queue of a full publish holds every package, nearly all wanted.
    pub fn unwanted_files(
        &self,
        channel: &str,
        last_id: i64,
    ) -> Result<Vec<QueuedFile>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(concat!(
                "SELECT u.id, u.component, p.pool_name, p.sha256, 0
                     FROM (SELECT q.id, q.component, q.package_id FROM tree_queue q
                           WHERE q.channel = ?1 AND q.id <= ?2 AND NOT ",
                wanted!(),
                ") u JOIN packages p ON p.id = u.package_id ORDER BY u.id"
            ))
            .map_err(self.fail())?;
        let rows = stmt
            .query_map(params![channel, last_id], queued_file)
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// The files queued for `channel` after queue id `after`, handed to
    /// `each` in queue order and in batches of at most `size`, so that a
    /// queue holding a whole repository (a first publish) is never in
    /// memory at once. `each` may fail with the caller's own error.
    pub fn each_queued_batch<E: From<CatalogError>>(
        &self,
        channel: &str,
        after: i64,
        size: usize,
        each: impl FnMut(Vec<QueuedFile>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut stmt = self
            .conn
            .prepare_cached(concat!(
                "SELECT q.id, q.component, p.pool_name, p.sha256, ",
                wanted!(),
                " FROM tree_queue q JOIN packages p ON p.id = q.package_id
                     WHERE q.channel = ?1 AND q.id > ?2 ORDER BY q.id"
            ))
            .map_err(self.fail())?;
        let rows = stmt
            .query_map(params![channel, after], queued_file)
            .map_err(self.fail())?;
        super::each_batch(rows, size, |e| (self.fail())(e), each)
    }
}

/// A row of (id, component, pool name, SHA-256, wanted).
fn queued_file(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedFile> {
    Ok(QueuedFile {
        id: r.get(0)?,
        component: r.get(1)?,
        pool_name: r.get(2)?,
        sha256: r.get(3)?,
        wanted: r.get(4)?,
    })
}
