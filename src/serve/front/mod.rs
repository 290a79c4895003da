//! A stateless frontend: `bess serve --from s3://bucket/prefix` serves
//! what a primary published to an S3 store, with no repository of its own.
//!
//! It reads the store's manifest, users, keyring, box indices and each
//! dist's Release files, then looks again every `[serve]
//! reload-interval-secs`: a HEAD per file, comparing ETags, and a dist
//! whose `InRelease` changed is read whole before it replaces the one
//! served (see `snapshot`). Pool files and index files are fetched by
//! their SHA-256 into a bounded disk cache (`disk_cache`) and checked on
//! the way. Writes belong to the primary: they are redirected there.

mod disk_cache;
mod routes;
mod snapshot;
mod store;

pub use routes::route;

use crate::config::{FrontSettings, StoreUrl};
use crate::publish::store_manifest;
use crate::serve::verifier::PublishedDirectory;
use snapshot::{ChannelView, Publication, SnapshotError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use store::Store;

/// The frontend's store, cache and what it serves now.
pub struct Front {
    store: Store,
    cache: disk_cache::DiskCache,
    users: Arc<PublishedDirectory>,
    current: RwLock<Arc<Publication>>,
    primary: Option<String>,
    interval: Duration,
    /// Dists switched to a new publication.
    switches: AtomicU64,
    /// Looks at the store that failed, the publication kept.
    failed_looks: AtomicU64,
    /// When a look last succeeded (seconds since the epoch).
    last_look: AtomicU64,
}

impl Front {
    /// Connects to the store and reads the whole publication once.
    pub async fn start(settings: &FrontSettings, url: StoreUrl) -> anyhow::Result<Front> {
        let shown = format!("s3://{}/{}", url.bucket, url.prefix);
        let store = Store::connect(settings, url)?;
        let serve = &settings.serve;
        let cache = disk_cache::DiskCache::open(&serve.cache_dir, serve.cache_max_gib << 30)?;
        let (manifest, manifest_etag) = snapshot::manifest(&store).await.map_err(|e| {
            anyhow::anyhow!(
                "{shown} holds no publication bess can serve ({e}); run `bess repo publish` on \
                 the primary with a [[publish.target]] for this bucket and prefix"
            )
        })?;
        let empty = Publication {
            manifest,
            manifest_etag,
            keyring: None,
            armored: Arc::default(),
            users_etag: None,
            channels: HashMap::new(),
        };
        let front = Front {
            store,
            cache,
            users: Arc::default(),
            current: RwLock::new(Arc::new(empty)),
            primary: serve.primary.clone(),
            interval: Duration::from_secs(serve.reload_interval_secs),
            switches: AtomicU64::new(0),
            failed_looks: AtomicU64::new(0),
            last_look: AtomicU64::new(0),
        };
        front.look(true).await?;
        Ok(front)
    }

    /// The users the gate checks.
    pub fn users(&self) -> Arc<PublishedDirectory> {
        self.users.clone()
    }

    /// What is served now.
    pub fn publication(&self) -> Arc<Publication> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Looks at the store twice per interval, start to start, for as long
    /// as the server runs: a change is then noticed within half of it and
    /// served within it, the reading of the changed dist included.
    pub fn watch(self: &Arc<Self>) {
        let front = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(front.interval / 2);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(e) = front.look(false).await {
                    front.failed_looks.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "bess serve: cannot read the store, serving what was read before: {e}"
                    );
                }
            }
        });
    }

    /// One look at the store: what changed is read and switched to.
    async fn look(&self, first: bool) -> Result<(), SnapshotError> {
        let old = self.publication();
        let mut next = (*old).clone();
        let etag = self.store.etag(store_manifest::MANIFEST_KEY).await?;
        if etag != old.manifest_etag {
            (next.manifest, next.manifest_etag) = snapshot::manifest(&self.store).await?;
        }
        self.look_at_users(first, &mut next).await?;
        self.look_at_keyring(&mut next).await?;
        let mut channels = HashMap::new();
        for channel in &next.manifest.channels {
            let view = self
                .look_at_channel(&next, channel, old.channels.get(channel))
                .await?;
            channels.insert(channel.clone(), view);
        }
        next.channels = channels;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        self.last_look
            .store(now.map_or(0, |d| d.as_secs()), Ordering::Relaxed);
        Ok(())
    }

    /// The frontend's lines of `/metrics`, in Prometheus' text format.
    pub fn metrics(&self) -> String {
        let cache = &self.cache;
        let read = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let lines = [
            (
                "cache_hits_total",
                "counter",
                "Files served from the disk cache.",
                read(&cache.hits),
            ),
            (
                "cache_misses_total",
                "counter",
                "Files fetched from the store first.",
                read(&cache.misses),
            ),
            (
                "cache_bytes",
                "gauge",
                "Bytes the disk cache holds.",
                cache.total(),
            ),
            (
                "store_fetched_bytes_total",
                "counter",
                "Bytes fetched from the store into the cache.",
                read(&cache.fetched_bytes),
            ),
            (
                "publication_switches_total",
                "counter",
                "Dists switched to a new publication.",
                read(&self.switches),
            ),
            (
                "failed_looks_total",
                "counter",
                "Looks at the store that failed (the publication served was kept).",
                read(&self.failed_looks),
            ),
            (
                "last_look_timestamp_seconds",
                "gauge",
                "When a look at the store last succeeded.",
                read(&self.last_look),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in lines {
            out.push_str(&format!(
                "# HELP bess_frontend_{name} {help}\n# TYPE bess_frontend_{name} {kind}\nbess_frontend_{name} {value}\n"
            ));
        }
        out
    }

    async fn look_at_users(
        &self,
        first: bool,
        next: &mut Publication,
    ) -> Result<(), SnapshotError> {
        let etag = self.store.etag(store_manifest::USERS_KEY).await?;
        if etag == next.users_etag && !first {
            return Ok(());
        }
        let (users, etag) = snapshot::users(&self.store).await?;
        if users.is_empty() {
            eprintln!(
                "bess serve: the store has no users yet; every request needing credentials is refused"
            );
        }
        self.users.replace(users);
        next.users_etag = etag;
        Ok(())
    }

    async fn look_at_keyring(&self, next: &mut Publication) -> Result<(), SnapshotError> {
        let etag = self.store.etag(store_manifest::KEYRING_KEY).await?;
        if etag.is_none() || next.keyring.as_ref().map(|(_, e)| e) == Some(&etag) {
            return Ok(());
        }
        let fetched = self.store.get(store_manifest::KEYRING_KEY).await?;
        next.armored = Arc::new(armor(&fetched.bytes).map_err(|e| {
            SnapshotError::Inconsistent(format!("key.gpg in the store is not a keyring: {e}"))
        })?);
        next.keyring = Some((
            snapshot::loaded(fetched.bytes, fetched.modified),
            fetched.etag,
        ));
        Ok(())
    }

    /// A channel as it is now: each dist kept while its `InRelease` is
    /// unchanged, read again when it changed (kept as it was when that
    /// fails: a publish may be under way).
    async fn look_at_channel(
        &self,
        next: &Publication,
        channel: &str,
        old: Option<&Arc<ChannelView>>,
    ) -> Result<Arc<ChannelView>, SnapshotError> {
        let mut changed = old.is_none();
        let mut dists = HashMap::new();
        for dist in &next.manifest.dists {
            let kept = old.and_then(|view| view.dists.get(dist));
            let key = format!("{channel}/dists/{dist}/InRelease");
            let Some(etag) = self.store.etag(&key).await? else {
                changed |= kept.is_some();
                continue;
            };
            if let Some(kept) = kept.filter(|d| d.inrelease_etag == etag) {
                dists.insert(dist.clone(), kept.clone());
                continue;
            }
            match snapshot::dist(&self.store, &self.cache, channel, dist).await {
                Ok(Some(view)) => {
                    eprintln!("bess serve: serving a new publication of {channel}/{dist}");
                    self.switches.fetch_add(1, Ordering::Relaxed);
                    dists.insert(dist.clone(), Arc::new(view));
                    changed = true;
                }
                Ok(None) => changed |= kept.is_some(),
                Err(e) => {
                    eprintln!("bess serve: {channel}/{dist} stays as it was: {e}");
                    if let Some(kept) = kept {
                        dists.insert(dist.clone(), kept.clone());
                    }
                }
            }
        }
        let boxes_key = store_manifest::boxes_key(channel);
        let boxes_etag = self.store.etag(&boxes_key).await?;
        let old_boxes = old.map(|v| (&v.boxes, &v.boxes_etag));
        let boxes = match old_boxes {
            Some((boxes, etag)) if *etag == boxes_etag => boxes.clone(),
            _ => {
                changed = true;
                snapshot::boxes(&self.store, channel).await?.0
            }
        };
        if !changed && let Some(old) = old {
            return Ok(old.clone());
        }
        let mut view = ChannelView::with_dists(dists, boxes);
        view.boxes_etag = boxes_etag;
        Ok(Arc::new(view))
    }
}

/// The ASCII-armored form of a binary keyring, for `bess.sources`.
fn armor(binary: &[u8]) -> anyhow::Result<String> {
    use sequoia_openpgp::armor::{Kind, Writer};
    use std::io::Write;
    let mut writer = Writer::new(Vec::new(), Kind::PublicKey)?;
    writer.write_all(binary)?;
    Ok(String::from_utf8(writer.finalize()?)?)
}
