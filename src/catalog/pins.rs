//! Pins: versions a channel keeps whatever the retention rules say.

use super::{CatalogError, Reader, Writer, now};
use rusqlite::params;

/// "Channel `channel` keeps `package` at `version`."
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pin {
    pub channel: String,
    pub package: String,
    /// As the operator wrote it.
    pub version: String,
    /// The version's identity (epoch 0 dropped), for matching.
    #[serde(skip)]
    pub version_key: String,
}

impl Writer<'_> {
    /// Records a pin; `false` if it already existed.
    pub fn pin(&self, pin: &Pin) -> Result<bool, CatalogError> {
        let changed = self
            .tx
            .execute(
                "INSERT OR IGNORE INTO pins (channel, package, version, version_key, pinned_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    pin.channel,
                    pin.package,
                    pin.version,
                    pin.version_key,
                    now()
                ],
            )
            .map_err(self.fail())?;
        Ok(changed > 0)
    }

    /// Drops a pin; `false` if there was none.
    pub fn unpin(
        &self,
        channel: &str,
        package: &str,
        version_key: &str,
    ) -> Result<bool, CatalogError> {
        let changed = self
            .tx
            .execute(
                "DELETE FROM pins WHERE channel = ?1 AND package = ?2 AND version_key = ?3",
                params![channel, package, version_key],
            )
            .map_err(self.fail())?;
        Ok(changed > 0)
    }
}

impl Reader<'_> {
    /// Every pin, of one channel or all, by channel, package and version.
    pub fn pins(&self, channel: Option<&str>) -> Result<Vec<Pin>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT channel, package, version, version_key FROM pins
                 WHERE ?1 IS NULL OR channel = ?1 ORDER BY channel, package, version_key",
            )
            .map_err(self.fail())?;
        let rows = stmt
            .query_map(params![channel], |r| {
                Ok(Pin {
                    channel: r.get(0)?,
                    package: r.get(1)?,
                    version: r.get(2)?,
                    version_key: r.get(3)?,
                })
            })
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Catalog;
    use super::*;

    #[test]
    fn pin_unpin() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
        let pin = Pin {
            channel: "prod".into(),
            package: "app".into(),
            version: "0:1.0".into(),
            version_key: "1.0".into(),
        };
        let w = catalog.write().unwrap();
        assert!(w.pin(&pin).unwrap());
        assert!(!w.pin(&pin).unwrap());
        w.commit().unwrap();
        assert_eq!(catalog.reader().pins(Some("prod")).unwrap(), [pin]);
        assert!(catalog.reader().pins(Some("preprod")).unwrap().is_empty());
        let w = catalog.write().unwrap();
        assert!(w.unpin("prod", "app", "1.0").unwrap());
        assert!(!w.unpin("prod", "app", "1.0").unwrap());
    }
}
