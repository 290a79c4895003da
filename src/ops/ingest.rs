//! `bess repo ingest`: validate uploads, store them once, place them in the first channel.
//!
//! An ingest is all-or-nothing: every file is read, validated and hashed
//! (in parallel) before anything becomes visible; any refusal discards the
//! staged objects and leaves the pool, catalog and public tree untouched.
//! Files are read [`FILES_PER_BATCH`] at a time, and what they admit waits
//! in an on-disk spool (`admitted.rs`) until the catalog records it all in
//! one transaction, so an ingest's memory does not grow with its size.

use super::admitted::{Admitted, AdmittedSpool};
use super::lock::PoolLock;
use super::package_file::read_package;
use super::publish::{Published, publish_targets};
use super::{OpsError, Repo};
use crate::catalog::{AuditEntry, NewPackage, Reader, Writer};
use crate::config::RepoConfig;
use crate::deb::{self, DebInfo};
use crate::pool::{Digests, Pool, Sha256, Staged};
use crate::publish::pool_name;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// How many files are read and validated at once: with the spool, what an
/// ingest holds in memory whatever its size.
const FILES_PER_BATCH: usize = 512;

/// What to ingest, and where to publish it.
#[derive(Debug, Clone, Default)]
pub struct IngestRequest {
    /// Files and directories (searched recursively for `*.deb`).
    pub paths: Vec<PathBuf>,
    /// Restrict to these dists; empty means the dist rules, else every dist.
    pub dists: Vec<String>,
    /// Component; `None` means the configured default.
    pub component: Option<String>,
    /// Publish the changed dists before returning (`--no-publish` defers).
    pub publish: bool,
    /// Channel to place in; `None` means the first channel.
    pub channel: Option<String>,
    /// Count the packages instead of listing them in the outcome: a
    /// caller that prints only the totals keeps an ingest's memory from
    /// growing with its size.
    pub summary_only: bool,
}

/// One package of an ingest and what happened to it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IngestedPackage {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub sha256: String,
    pub size: u64,
    pub file: PathBuf,
    pub channel: String,
    pub component: String,
    pub dists: Vec<String>,
    /// `false` when the repository already held these exact bytes.
    pub new: bool,
    /// Placements this ingest added (0 for an identical re-ingest).
    pub placements_added: usize,
}

/// The result of an ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestOutcome {
    /// Each package (none with `summary_only`).
    pub packages: Vec<IngestedPackage>,
    pub totals: IngestTotals,
    /// The publications this ingest made (none with `publish: false`).
    pub published: Vec<Published>,
}

/// What an ingest took, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestTotals {
    pub packages: usize,
    /// Packages the repository did not hold before.
    pub new: usize,
    /// The bytes of the new packages.
    pub new_bytes: u64,
    /// The channel/dist pairs that gained a placement.
    pub changed: Vec<(String, String)>,
}

/// A validated upload, its object staged if the pool lacked it.
struct Candidate {
    file: PathBuf,
    /// Its place in the ingest's list of files.
    index: usize,
    row: NewPackage,
    sha256: Sha256,
    dists: Vec<String>,
    staged: Option<Staged>,
}

/// Ingests every `.deb` under `request.paths` into the first channel.
pub fn ingest(repo: &mut Repo, request: &IngestRequest) -> Result<IngestOutcome, OpsError> {
    let component = request
        .component
        .clone()
        .unwrap_or_else(|| repo.config.settings.default_component.clone());
    check_component(repo, &component)?;
    let channel = match &request.channel {
        Some(channel) => channel.clone(),
        None => repo.config.first_channel().to_string(),
    };
    repo.check_channel(&channel)?;
    repo.check_dists(&request.dists)?;
    let files = collect_files(&request.paths)?;
    // From "is the object already stored?" until the rows that reference
    // it commit, gc must not delete it: see `gc.rs`.
    let pool_lock = PoolLock::shared(&PoolLock::path(&repo.config.layout.catalog_file()))?;
    let (spool, staged) = admit_all(repo, &files, &request.dists)?;
    repo.pool.commit(staged)?;
    let place = (channel.as_str(), component.as_str());
    let mut outcome = record(repo, &files, &spool, place, request.summary_only)?;
    // Freed before the publish, which has its own peak.
    drop((spool, files));
    drop(pool_lock);
    if request.publish {
        let targets = outcome.totals.changed.clone();
        outcome.published = publish_targets(repo, targets)?;
    }
    Ok(outcome)
}

fn check_component(repo: &Repo, component: &str) -> Result<(), OpsError> {
    if repo
        .config
        .settings
        .components
        .iter()
        .any(|c| c == component)
    {
        return Ok(());
    }
    Err(OpsError::Usage(format!(
        "unknown component `{component}`; components in {} are: {}",
        repo.config.layout.settings_file().display(),
        repo.config.settings.components.join(", ")
    )))
}

/// Expands directories (recursively, sorted) into their `.deb` files.
fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, OpsError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(OpsError::io("read", path))?;
        if !meta.is_dir() {
            files.push(path.clone());
            continue;
        }
        let before = files.len();
        for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
            let entry = entry
                .map_err(|e| OpsError::Usage(format!("cannot walk {}: {e}", path.display())))?;
            if entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "deb") {
                files.push(entry.into_path());
            }
        }
        if files.len() == before {
            return Err(OpsError::NotFound(format!(
                "no .deb file under {}",
                path.display()
            )));
        }
    }
    if files.is_empty() {
        return Err(OpsError::Usage(
            "nothing to ingest: name .deb files or directories".into(),
        ));
    }
    Ok(files)
}

/// Reads, validates, hashes and stages every file, a batch at a time, and
/// admits each package into the spool after the duplicate and conflict
/// checks. Reports every bad file at once; any refusal discards every
/// staged object.
fn admit_all(
    repo: &Repo,
    files: &[PathBuf],
    dists: &[String],
) -> Result<(AdmittedSpool, Vec<Staged>), OpsError> {
    let (config, pool) = (&repo.config, &repo.pool);
    let spool = AdmittedSpool::create(&config.layout.tmp_dir())?;
    let reader = repo.catalog.reader();
    let mut admission = Admission::default();
    let stage = repo
        .progress
        .stage("reading packages", files.len() as u64, false);
    for (n, batch) in files.chunks(FILES_PER_BATCH).enumerate() {
        let first = n * FILES_PER_BATCH;
        let results: Vec<Result<Candidate, String>> = batch
            .par_iter()
            .enumerate()
            .map(|(i, file)| {
                let candidate = prepare(config, pool, file, first + i, dists);
                stage.advance(1);
                candidate
            })
            .collect();
        for result in results {
            admission.take(repo, &reader, &spool, files, result);
        }
    }
    drop(stage);
    admission.finish(repo, spool)
}

/// What the batches admitted and refused so far.
#[derive(Default)]
struct Admission {
    /// Objects staged for admitted packages (and, after a refusal, for all).
    staged: Vec<Staged>,
    /// Files that could not be read or validated.
    errors: Vec<String>,
    /// The first conflict: once there is one, nothing more is admitted.
    failure: Option<OpsError>,
}

impl Admission {
    /// Admits one prepared file, drops it as an identical duplicate, or
    /// records why it is refused.
    fn take(
        &mut self,
        repo: &Repo,
        reader: &Reader<'_>,
        spool: &AdmittedSpool,
        files: &[PathBuf],
        result: Result<Candidate, String>,
    ) {
        let mut c = match result {
            Ok(c) => c,
            Err(message) => return self.errors.push(message),
        };
        let staged = c.staged.take();
        if !self.errors.is_empty() || self.failure.is_some() {
            return self.staged.extend(staged);
        }
        let admitted = admit(reader, spool, files, &c).and_then(|new| {
            if new {
                spool.push(&Admitted {
                    file: c.index,
                    row: c.row,
                    dists: c.dists,
                })?;
            }
            Ok(new)
        });
        match admitted {
            Ok(true) => self.staged.extend(staged),
            Ok(false) => repo.pool.discard(staged.into_iter().collect()),
            Err(error) => {
                self.failure = Some(error);
                self.staged.extend(staged);
            }
        }
    }

    /// The spool and the staged objects, or the refusal (every staged
    /// object discarded).
    fn finish(
        mut self,
        repo: &Repo,
        spool: AdmittedSpool,
    ) -> Result<(AdmittedSpool, Vec<Staged>), OpsError> {
        let refusal = if !self.errors.is_empty() {
            self.errors
                .push("nothing was ingested: fix or leave out the files above".to_string());
            Some(OpsError::Invalid(self.errors))
        } else {
            self.failure
        };
        match refusal {
            None => Ok((spool, self.staged)),
            Some(error) => {
                repo.pool.discard(self.staged);
                Err(error)
            }
        }
    }
}

fn prepare(
    config: &RepoConfig,
    pool: &Pool,
    file: &Path,
    index: usize,
    dists: &[String],
) -> Result<Candidate, String> {
    let settings_file = config.layout.settings_file();
    let data = read_package(file, &config.settings.ingest, &settings_file)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let info = deb::inspect(&data).map_err(|e| format!("{}: {e}", file.display()))?;
    check_architecture(config, &info).map_err(|e| format!("{}: {e}", file.display()))?;
    let digests = Digests::of(&data);
    let staged = if pool.contains(&digests.sha256) {
        None
    } else {
        let staged = pool
            .stage(digests.sha256, &data)
            .map_err(|e| e.to_string())?;
        Some(staged)
    };
    let dists = target_dists(config, &info, dists);
    Ok(Candidate {
        file: file.to_path_buf(),
        index,
        sha256: digests.sha256,
        row: new_package(&info, &digests),
        dists,
        staged,
    })
}

fn check_architecture(config: &RepoConfig, info: &DebInfo) -> Result<(), String> {
    let arch = &info.architecture;
    if arch == "all" || config.archs.contains(arch) {
        return Ok(());
    }
    Err(format!(
        "field `Architecture`: `{arch}` is not in {} ({}); add it there to publish this package",
        config.layout.archs_file().display(),
        config.archs.names().join(", ")
    ))
}

/// `--dist` wins; else the first dist rule matching the version; else every dist.
fn target_dists(config: &RepoConfig, info: &DebInfo, requested: &[String]) -> Vec<String> {
    if !requested.is_empty() {
        return requested.to_vec();
    }
    match config.settings.dists_for_version(info.version.as_str()) {
        Some(dists) => dists.to_vec(),
        None => config.dists.names().to_vec(),
    }
}

fn new_package(info: &DebInfo, digests: &Digests) -> NewPackage {
    let mut control = String::with_capacity(1024);
    info.control.write_to(&mut control);
    NewPackage {
        name: info.package.clone(),
        version: info.version.as_str().to_string(),
        version_key: info.version.canonical(),
        arch: info.architecture.clone(),
        source: info.source.clone(),
        size: digests.size,
        md5: hex::encode(digests.md5),
        sha1: hex::encode(digests.sha1),
        sha256: digests.sha256.to_hex(),
        sha512: hex::encode(digests.sha512),
        pool_name: pool_name(
            &info.source,
            &info.package,
            info.version.without_epoch(),
            &info.architecture,
        ),
        control,
    }
}

/// Whether `c` is new to this upload (`false`: an identical duplicate of
/// an admitted file), after refusing conflicts within the upload and
/// against the catalog.
fn admit(
    reader: &Reader<'_>,
    spool: &AdmittedSpool,
    files: &[PathBuf],
    c: &Candidate,
) -> Result<bool, OpsError> {
    let row = &c.row;
    if let Some((sha256, first)) = spool.identity(&row.name, &row.version_key, &row.arch)? {
        return same_bytes(&files[first], &sha256, c).map(|()| false);
    }
    spelled_apart(&spool.versions(&row.name, &row.arch)?, files, c)?;
    known_identity(reader, &c.row, &c.file)?;
    Ok(true)
}

fn same_bytes(first: &Path, sha256: &str, other: &Candidate) -> Result<(), OpsError> {
    if sha256 == other.row.sha256 {
        return Ok(());
    }
    Err(OpsError::Conflict(format!(
        "{} and {} are both {} {} ({}) but differ: SHA256 {} vs {}; the same name, version and architecture must always be the same bytes",
        first.display(),
        other.file.display(),
        other.row.name,
        other.row.version,
        other.row.arch,
        sha256,
        other.sha256
    )))
}

/// Refuses two spellings of one version in an upload (`1.0` and `1.0-0`,
/// `01` and `1`): dpkg orders them alike, so apt could not tell them apart.
/// `admitted`: the versions and files admitted with `c`'s name and
/// architecture.
fn spelled_apart(
    admitted: &[(String, usize)],
    files: &[PathBuf],
    c: &Candidate,
) -> Result<(), OpsError> {
    let other = admitted
        .iter()
        .find(|(version, _)| same_order(version, &c.row.version));
    match other {
        None => Ok(()),
        Some((version, file)) => Err(equal_versions(
            &c.row,
            &c.file,
            version,
            &format!("in {}", files[*file].display()),
        )),
    }
}

/// Whether two version strings (valid, as ingest checked) compare equal.
fn same_order(a: &str, b: &str) -> bool {
    match (deb::Version::parse(a), deb::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b) == std::cmp::Ordering::Equal,
        _ => false,
    }
}

fn equal_versions(row: &NewPackage, file: &Path, other: &str, holder: &str) -> OpsError {
    OpsError::Conflict(format!(
        "{}: {} {} ({}) is the same version to dpkg and apt as {other} ({holder}), only \
         spelled differently, so apt could not tell the two apart; give the package a version \
         that sorts after {other}",
        file.display(),
        row.name,
        row.version,
        row.arch,
    ))
}

/// The catalog id of the candidate if the repository already has it, after
/// refusing different bytes under the same identity or the same file name.
fn known_identity(
    reader: &Reader<'_>,
    row: &NewPackage,
    file: &Path,
) -> Result<Option<i64>, OpsError> {
    if let Some(known) = reader.find_package(&row.name, &row.version_key, &row.arch)? {
        if known.sha256 == row.sha256 {
            return Ok(Some(known.id));
        }
        return Err(OpsError::Conflict(format!(
            "{}: {} {} ({}) is already in the repository with different contents: \
             catalog SHA256 {}, uploaded SHA256 {}. apt clients would see hash mismatches; \
             rebuild the package with a new version",
            file.display(),
            row.name,
            row.version,
            row.arch,
            known.sha256,
            row.sha256
        )));
    }
    let known = reader.versions_of(&row.name, &row.arch)?;
    if let Some(other) = known.iter().find(|v| same_order(v, &row.version)) {
        return Err(equal_versions(
            row,
            file,
            other,
            "already in the repository",
        ));
    }
    if let Some(other) = reader.find_by_pool_name(&row.pool_name)? {
        return Err(OpsError::Conflict(format!(
            "{}: {} {} ({}) would be published as pool file {}, which already belongs to {} {} ({}); \
             versions that differ only by epoch cannot share a file name — bump the upstream version or revision",
            file.display(),
            row.name,
            row.version,
            row.arch,
            row.pool_name,
            other.name,
            other.version,
            other.arch
        )));
    }
    Ok(None)
}

/// Records packages, placements and their audit entries in one catalog
/// transaction, so concurrent ingests serialise cleanly; the publish that
/// follows links the files into the public tree.
fn record(
    repo: &mut Repo,
    files: &[PathBuf],
    spool: &AdmittedSpool,
    (channel, component): (&str, &str),
    summary_only: bool,
) -> Result<IngestOutcome, OpsError> {
    let channel = channel.to_string();
    let audit = repo.actor.entry("ingest");
    let writer = repo.catalog.write()?;
    let mut outcome = IngestOutcome::default();
    let mut changed_dists = std::collections::BTreeSet::new();
    spool.for_each(|a| {
        let file = &files[a.file];
        // Most uploads are new: try the insert first and look the identity
        // up only when it collides (a concurrent upload, or a re-ingest).
        let (id, new) = match writer.try_insert_package(&a.row)? {
            Some(id) => (id, true),
            None => {
                let known = known_identity(&writer.reader(), &a.row, file)?;
                let refused = || {
                    OpsError::Conflict(format!(
                        "{}: the catalog refused the package",
                        file.display()
                    ))
                };
                (known.ok_or_else(refused)?, false)
            }
        };
        let mut added = Vec::new();
        for dist in &a.dists {
            if writer.place(id, &channel, dist, component)? {
                changed_dists.insert(dist.clone());
                added.push(dist.as_str());
            }
        }
        if !added.is_empty() {
            writer.enqueue_file(&channel, component, id)?;
            audit_ingest(
                &writer,
                &audit,
                &a.row,
                (&channel, component),
                (&added, new),
            )?;
        }
        let added = added.len();
        count(&mut outcome.totals, &a.row, new);
        if summary_only {
            return Ok(());
        }
        outcome.packages.push(IngestedPackage {
            package: a.row.name,
            version: a.row.version,
            architecture: a.row.arch,
            sha256: a.row.sha256,
            size: a.row.size,
            file: file.clone(),
            channel: channel.clone(),
            component: component.to_string(),
            dists: a.dists,
            new,
            placements_added: added,
        });
        Ok(())
    })?;
    for dist in &changed_dists {
        writer.mark_pending(&channel, dist)?;
    }
    writer.commit()?;
    outcome.totals.changed = changed_dists
        .into_iter()
        .map(|dist| (channel.clone(), dist))
        .collect();
    Ok(outcome)
}

fn count(totals: &mut IngestTotals, row: &NewPackage, new: bool) {
    totals.packages += 1;
    if new {
        totals.new += 1;
        totals.new_bytes += row.size;
    }
}

/// The audit entry of one package that gained placements.
fn audit_ingest(
    writer: &Writer<'_>,
    audit: &AuditEntry,
    row: &NewPackage,
    (channel, component): (&str, &str),
    (dists, new): (&[&str], bool),
) -> Result<(), OpsError> {
    let detail = serde_json::json!({
        "component": component,
        "sha256": row.sha256,
        "size": row.size,
        "new": new,
    });
    let entry = AuditEntry {
        channel: Some(channel.to_string()),
        dist: Some(dists.join(",")),
        package: Some(row.name.clone()),
        version: Some(row.version.clone()),
        arch: Some(row.arch.clone()),
        detail: detail.to_string(),
        ..audit.clone()
    };
    Ok(writer.append_audit(&entry)?)
}
