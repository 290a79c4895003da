//! `bess repo publish` and the publication that follows every change.

use super::progress::Stage;
use super::{OpsError, Repo};
use crate::catalog::{Catalog, Pending, PlacementFilter, QueuedFile, Reader};
use crate::config::RepoConfig;
use crate::publish::{
    DistInput, DistOutcome, DistTree, Levels, PoolTree, PublishError, publish_dist,
    release::ReleaseFields, valid_until,
};
use crate::sign::{KeyStore, Signer};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Mutex, mpsc};
use std::thread::ScopedJoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which dists to publish.
#[derive(Debug, Clone, Default)]
pub struct PublishRequest {
    /// Specific channel/dist pairs; empty means everything pending or never published.
    pub targets: Vec<(String, String)>,
    /// Republish every dist with a new Date and Valid-Until, changed or
    /// not, and repair: relink every file, move files to Debian's pool
    /// layout, compress again index chunks damaged on disk.
    pub refresh: bool,
}

/// One dist's publication.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    pub channel: String,
    #[serde(flatten)]
    pub outcome: DistOutcome,
}

/// Publishes the requested dists, then brings every publish target up to
/// date; a target left behind is an error, but the local publication stands.
pub fn publish(repo: &mut Repo, request: &PublishRequest) -> Result<Vec<Published>, OpsError> {
    let publication = publish_everywhere(repo, request)?;
    match super::targets::failures(&publication.targets) {
        Some(error) => Err(error),
        None => Ok(publication.published),
    }
}

/// Brings every publish target up to date with the local publication,
/// publishing nothing locally: what `bess serve` runs now and then, so a
/// target left behind by a failed publish catches up without waiting for
/// the next one.
pub fn sync_targets(repo: &Repo) -> Result<Vec<super::TargetSync>, OpsError> {
    super::targets::sync_all(repo)
}

/// What a publish did, locally and in each `[[publish.target]]`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Publication {
    pub published: Vec<Published>,
    pub targets: Vec<super::TargetSync>,
}

/// The local publish, then every target (each report says whether it
/// failed). Targets are synced even when nothing was pending locally, so
/// the next publish resumes an upload that failed.
pub fn publish_everywhere(
    repo: &mut Repo,
    request: &PublishRequest,
) -> Result<Publication, OpsError> {
    let published = publish_locally(repo, request)?;
    let targets = super::targets::sync_all(repo)?;
    Ok(Publication { published, targets })
}

/// Publishes the requested dists; one publisher at a time per repository.
///
/// The public pool trees change only here, under the publish lock: files
/// are linked before any index lists them, and withdrawn only once no
/// published index of their channel can list them any more.
fn publish_locally(repo: &mut Repo, request: &PublishRequest) -> Result<Vec<Published>, OpsError> {
    let _lock = super::lock::PublishLock::of(repo)?;
    if request.refresh {
        super::boxes::relink_all(repo)?;
        super::pool_layout::move_to_debian_layout(repo)?;
    }
    let targets = targets(repo, request)?;
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    repo.catalog
        .limit_page_cache(super::heap::WALK_PAGE_CACHE_KIB)?;
    // What the command did before (an ingest's parallel reads, the page
    // cache just shrunk) is free but still resident: without this the
    // publish's peak comes on top of it.
    super::heap::release_free_memory();
    let signer = signer(repo)?;
    let now = publication_time();
    let published = publish_targets_locked(repo, &signer, &targets, (now, request.refresh));
    // Even a publish that failed half-way may have switched some dists.
    let bumped = bump_serial(repo);
    let published = published?;
    bumped?;
    drop_chunk_cache(repo)?;
    Ok(published)
}

/// Publishes `targets`, channel by channel, under the publish lock.
fn publish_targets_locked(
    repo: &mut Repo,
    signer: &Signer,
    targets: &[(String, String)],
    when: (SystemTime, bool),
) -> Result<Vec<Published>, OpsError> {
    let mut published = Vec::new();
    let channels: BTreeSet<String> = targets.iter().map(|(c, _)| c.clone()).collect();
    let progress = repo.progress.clone();
    let stage = progress.stage("publishing", targets.len() as u64, false);
    for channel in channels {
        let dists: Vec<&String> = targets
            .iter()
            .filter(|(c, _)| *c == channel)
            .map(|(_, d)| d)
            .collect();
        let outcomes = publish_channel(repo, signer, &channel, &dists, when, &*stage)?;
        published.extend(outcomes.into_iter().map(|outcome| Published {
            channel: channel.clone(),
            outcome,
        }));
    }
    Ok(published)
}

/// Publishes some dists of one channel, with its pool-tree changes.
///
/// New files are linked while the indices are built (one is kernel work,
/// the other compression); no index goes live before both are done. The
/// linking thread reads the queue through a connection of its own, so its
/// read overlaps the first dist's; each dist then links itself whatever
/// its own snapshot queued after what the thread read (an ingest may have
/// committed in between), so a live index never lists a file its pool
/// tree lacks. The thread dequeues what it linked; files to withdraw wait
/// for the switch.
fn publish_channel(
    repo: &mut Repo,
    signer: &Signer,
    channel: &str,
    dists: &[&String],
    when: (SystemTime, bool),
    stage: &dyn Stage,
) -> Result<Vec<DistOutcome>, OpsError> {
    let Repo {
        config,
        catalog,
        pool,
        ..
    } = &mut *repo;
    let tree = PoolTree::new(&config.layout, pool);
    let catalog_file = config.layout.catalog_file();
    let (outcomes, linked) = std::thread::scope(|scope| {
        let (read_tx, read_rx) = mpsc::channel();
        let tree = &tree;
        let linker =
            scope.spawn(move || link_queued(tree, &catalog_file, channel, when.1, &read_tx));
        let links = Links {
            tree,
            channel,
            thread: Mutex::new(Some(linker)),
            read: Mutex::new(read_rx),
            upto: Mutex::new(None),
        };
        let mut outcomes = Vec::new();
        for dist in dists {
            outcomes.push(publish_one(
                config, catalog, signer, channel, dist, when, &links,
            )?);
            stage.advance(1);
        }
        let linked = links.finish()?;
        Ok::<_, OpsError>((outcomes, linked))
    })?;
    withdraw_unwanted(repo, channel, linked)?;
    if when.1 {
        super::pool_layout::remove_strays(repo, channel)?;
    }
    Ok(outcomes)
}

/// Publishes the pairs a change touched; nothing when there are none.
pub(super) fn publish_targets(
    repo: &mut Repo,
    targets: Vec<(String, String)>,
) -> Result<Vec<Published>, OpsError> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    publish(
        repo,
        &PublishRequest {
            targets,
            refresh: false,
        },
    )
}

/// The requested pairs, or every pending or never-published pair (or all, with refresh).
fn targets(repo: &Repo, request: &PublishRequest) -> Result<Vec<(String, String)>, OpsError> {
    for (channel, dist) in &request.targets {
        repo.check_channel(channel)?;
        repo.check_dists(std::slice::from_ref(dist))?;
    }
    if !request.targets.is_empty() {
        return Ok(request.targets.clone());
    }
    let pending: BTreeSet<(String, String)> = repo
        .catalog
        .reader()
        .pending()?
        .into_iter()
        .map(|Pending { channel, dist, .. }| (channel, dist))
        .collect();
    let mut chosen = Vec::new();
    for channel in &repo.config.settings.channels {
        for dist in repo.config.dists.names() {
            let tree = DistTree::new(repo.config.layout.channel_dir(channel), dist);
            let unpublished = tree
                .current()
                .map_err(OpsError::io("read", tree.link_path()))?
                .is_none();
            let key = (channel.clone(), dist.clone());
            if request.refresh || unpublished || pending.contains(&key) {
                chosen.push(key);
            }
        }
    }
    Ok(chosen)
}

/// Tells running servers that published paths may name other files now.
pub(super) fn bump_serial(repo: &Repo) -> Result<(), OpsError> {
    let public = repo.config.layout.public_dir();
    crate::serial::bump(&crate::serial::publish_serial(&public))
        .map_err(OpsError::io("update the publish serial in", public))
}

pub(super) fn signer(repo: &Repo) -> Result<Signer, OpsError> {
    KeyStore::open(repo.config.layout.root())
        .signer()
        .map_err(|e| OpsError::Usage(format!("cannot sign the publication: {e}")))
}

/// Publishes one channel/dist from a consistent snapshot of the catalog,
/// then clears its pending mark unless it changed meanwhile.
fn publish_one(
    config: &RepoConfig,
    catalog: &mut Catalog,
    signer: &Signer,
    channel: &str,
    dist: &str,
    (now, refresh): (SystemTime, bool),
    links: &Links<'_, '_>,
) -> Result<DistOutcome, OpsError> {
    let layout = &config.layout;
    let settings = &config.settings;
    let snapshot = catalog.snapshot()?;
    let reader = snapshot.reader();
    let entries = reader.index_entries(channel, dist)?;
    links.catch_up(&reader)?;
    let before_switch = || {
        links
            .wait()
            .map_err(|e| std::io::Error::other(e.to_string()))
    };
    let seq = reader.pending_seq(channel, dist)?;
    let stanzas = |ids: &[i64]| reader.stanza_parts(ids).map_err(std::io::Error::other);
    let input = DistInput {
        tree: DistTree::new(layout.channel_dir(channel), dist),
        entries: &entries,
        stanzas: &stanzas,
        fields: release_fields(config, dist, now),
        components: &settings.components,
        archs: config.archs.names(),
        refresh,
        keep_generations: settings.release.by_hash_generations as usize,
        manifest_dir: layout
            .cache_dir()
            .join("manifests")
            .join(channel)
            .join(dist),
        write_plain: settings.release.uncompressed_index,
        levels: Levels {
            xz_preset: settings.publish.xz_preset,
            gzip_level: settings.publish.gzip_level,
        },
        repair: refresh,
        before_switch: &before_switch,
    };
    let outcome = publish_dist(&input, signer).map_err(|e| match e {
        PublishError::Io(source) => OpsError::io("publish", input.tree.link_path())(source),
        signing => OpsError::Publish(signing),
    })?;
    drop(snapshot);
    let writer = catalog.write()?;
    writer.clear_pending(&Pending {
        channel: channel.to_string(),
        dist: dist.to_string(),
        seq,
    })?;
    writer.commit()?;
    Ok(outcome)
}

/// The pool-tree linking of a channel's publication: the thread that
/// links what the queue held when it read it, and how far the dists have
/// linked the queue since.
struct Links<'scope, 'a> {
    tree: &'a PoolTree<'a>,
    channel: &'a str,
    thread: Mutex<Option<Linker<'scope>>>,
    /// Sends the last queue id the thread read, once it read it.
    read: Mutex<mpsc::Receiver<Option<i64>>>,
    /// The last queue id linked or being linked (unknown until the thread read).
    upto: Mutex<Option<i64>>,
}

/// The linking thread, which returns the last queue id it read.
type Linker<'scope> = ScopedJoinHandle<'scope, Result<Option<i64>, OpsError>>;

impl Links<'_, '_> {
    /// Links the files queued after what is linked so far, as `reader`'s
    /// snapshot sees them.
    fn catch_up(&self, reader: &Reader<'_>) -> Result<(), OpsError> {
        let mut upto = self.upto.lock().expect("links lock");
        let after = match *upto {
            Some(id) => id,
            None => match self.read.lock().expect("links lock").recv() {
                Ok(read) => read.unwrap_or(0),
                // The thread failed before it read; its error says why.
                Err(_) => {
                    drop(upto);
                    return self.wait();
                }
            },
        };
        *upto = Some(after);
        let mut last = None;
        reader.each_queued_batch(self.channel, after, LINK_BATCH, |batch| {
            last = batch.last().map(|f| f.id);
            link_wanted(self.tree, self.channel, batch)
        })?;
        if last.is_some() {
            *upto = last;
        }
        Ok(())
    }

    /// Waits for the thread's links (once; later calls return at once).
    fn wait(&self) -> Result<(), OpsError> {
        let handle = self.thread.lock().expect("links lock").take();
        match handle.map(|h| h.join().expect("the linking thread does not panic")) {
            Some(Err(error)) => Err(error),
            Some(Ok(read)) => {
                let mut upto = self.upto.lock().expect("links lock");
                *upto = (*upto).max(read);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The last queue id linked, once every link is made.
    fn finish(self) -> Result<Option<i64>, OpsError> {
        self.wait()?;
        Ok(self.upto.into_inner().expect("links lock"))
    }
}

/// Removes the separate chunk cache earlier versions kept (compressed
/// chunks are now read back from the published index files).
fn drop_chunk_cache(repo: &Repo) -> Result<(), OpsError> {
    let dir = repo.config.layout.cache_dir().join("chunks");
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(OpsError::io("remove", dir)(e)),
        _ => Ok(()),
    }
}

/// The linking thread: reads the channel's queue through a connection of
/// its own, says how far it read, links, then dequeues what it linked.
fn link_queued(
    tree: &PoolTree<'_>,
    catalog_file: &Path,
    channel: &str,
    full: bool,
    read: &mpsc::Sender<Option<i64>>,
) -> Result<Option<i64>, OpsError> {
    let mut catalog = Catalog::open(catalog_file)?;
    catalog.limit_page_cache(super::heap::WALK_PAGE_CACHE_KIB)?;
    let last_id = link_snapshot(&mut catalog, tree, channel, full, read)?;
    // Dequeued here, beside the compression, rather than after the switch
    // on one core: 60,000 rows took about 0.1 s there. What is left for
    // the end is the files to withdraw and what the dists caught up.
    if let Some(last_id) = last_id {
        let writer = catalog.write()?;
        writer.dequeue_wanted(channel, last_id)?;
        writer.commit()?;
    }
    Ok(last_id)
}

/// Queued files linked at a time: a first publish queues the whole
/// repository, and 250,000 rows held at once were 55 MiB.
const LINK_BATCH: usize = 4096;

/// Files to link: (component, pool name, SHA-256).
type Link = (String, String, String);

/// Links what the channel's pool tree needs as one snapshot sees it: the
/// queued files still wanted, or with `full` every placed file too (a
/// repair after damage). Returns the last queue id read, which is sent on
/// `read` before any row is: the dists need only it to catch up, and
/// reading 60,000 rows took about 0.15 s they used to wait for.
fn link_snapshot(
    catalog: &mut Catalog,
    tree: &PoolTree<'_>,
    channel: &str,
    full: bool,
    read: &mpsc::Sender<Option<i64>>,
) -> Result<Option<i64>, OpsError> {
    let snapshot = catalog.snapshot()?;
    let reader = snapshot.reader();
    let last_id = reader.last_queued(channel)?;
    let _ = read.send(last_id);
    // The same snapshot: exactly the rows up to `last_id`.
    reader.each_queued_batch(channel, 0, LINK_BATCH, |batch| {
        link_wanted(tree, channel, batch)
    })?;
    if full {
        let filter = PlacementFilter {
            channel: Some(channel.to_string()),
            ..PlacementFilter::default()
        };
        let mut links: Vec<Link> = Vec::with_capacity(LINK_BATCH);
        reader.each_placement(&filter, |p| {
            links.push((p.component, p.package.pool_name, p.package.sha256));
            if links.len() == LINK_BATCH {
                tree.link_all(channel, &links)?;
                links.clear();
            }
            Ok::<_, OpsError>(())
        })?;
        tree.link_all(channel, &links)?;
    }
    Ok(last_id)
}

/// Links the files of a batch of the queue that a placement still wants.
fn link_wanted(tree: &PoolTree<'_>, channel: &str, batch: Vec<QueuedFile>) -> Result<(), OpsError> {
    let links: Vec<Link> = batch
        .into_iter()
        .filter(|f| f.wanted)
        .map(|f| (f.component, f.pool_name, f.sha256))
        .collect();
    tree.link_all(channel, &links)?;
    Ok(())
}

/// Removes queued files no placement of the channel wants, once no dist of
/// the channel is pending (a pending dist's live index may still list them).
/// It looks and dequeues in one write transaction: a change committed in
/// between could want a file again.
fn withdraw_unwanted(repo: &mut Repo, channel: &str, linked: Option<i64>) -> Result<(), OpsError> {
    let Some(last_id) = linked else {
        return Ok(());
    };
    let Repo {
        config,
        catalog,
        pool,
        ..
    } = repo;
    let tree = PoolTree::new(&config.layout, pool);
    let writer = catalog.write()?;
    let reader = writer.reader();
    if reader.pending()?.iter().any(|p| p.channel == channel) {
        return Ok(());
    }
    for file in reader.unwanted_files(channel, last_id)? {
        let path = tree.path(channel, &file.component, &file.pool_name);
        tree.unlink(channel, &file.component, &file.pool_name)
            .map_err(OpsError::io("remove", path))?;
    }
    writer.dequeue_files(channel, last_id)?;
    writer.commit()?;
    Ok(())
}

fn release_fields(config: &RepoConfig, dist: &str, now: SystemTime) -> ReleaseFields {
    let release = &config.settings.release;
    let suite = if release.suite.is_empty() {
        dist
    } else {
        &release.suite
    };
    ReleaseFields {
        origin: release.origin.clone(),
        label: release.label.clone(),
        suite: suite.to_string(),
        codename: dist.to_string(),
        date: now,
        valid_until: valid_until(now, release.valid_days),
        architectures: config.archs.names().to_vec(),
        components: config.settings.components.clone(),
        description: None,
        hashes: release.hashes.clone(),
    }
}

/// Now, or `$SOURCE_DATE_EPOCH` for reproducible output (golden tests).
pub(super) fn publication_time() -> SystemTime {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or_else(SystemTime::now)
}
