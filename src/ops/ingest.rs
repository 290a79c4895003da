//! `bess repo ingest`: validate uploads, store them once, place them in the first channel.
//!
//! An ingest is all-or-nothing: every file is read, validated and hashed
//! (in parallel) before anything becomes visible; any refusal discards the
//! staged objects and leaves the pool, catalog and public tree untouched.

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
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
    pub packages: Vec<IngestedPackage>,
    /// The publications this ingest made (none with `publish: false`).
    pub published: Vec<Published>,
}

/// A validated upload, its object staged if the pool lacked it.
struct Candidate {
    file: PathBuf,
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
    let candidates = prepare_all(repo, &files, &request.dists)?;
    let candidates = match dedupe_and_precheck(repo, candidates) {
        Ok(candidates) => candidates,
        Err((error, staged)) => {
            repo.pool.discard(staged);
            return Err(error);
        }
    };
    let (candidates, staged): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .map(|mut c| {
            let staged = c.staged.take();
            (c, staged)
        })
        .unzip();
    repo.pool.commit(staged.into_iter().flatten().collect())?;
    let mut outcome = record(repo, candidates, (&channel, &component))?;
    drop(pool_lock);
    if request.publish {
        let targets = changed_dists(&outcome.packages);
        outcome.published = publish_targets(repo, targets)?;
    }
    Ok(outcome)
}

/// The channel/dist pairs that gained a placement.
fn changed_dists(packages: &[IngestedPackage]) -> Vec<(String, String)> {
    let mut pairs = std::collections::BTreeSet::new();
    for p in packages.iter().filter(|p| p.placements_added > 0) {
        for dist in &p.dists {
            pairs.insert((p.channel.clone(), dist.clone()));
        }
    }
    pairs.into_iter().collect()
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

/// Reads, validates, hashes and stages every file; reports every bad file at once.
fn prepare_all(
    repo: &Repo,
    files: &[PathBuf],
    dists: &[String],
) -> Result<Vec<Candidate>, OpsError> {
    let (config, pool) = (&repo.config, &repo.pool);
    let stage = repo
        .progress
        .stage("reading packages", files.len() as u64, false);
    let results: Vec<Result<Candidate, String>> = files
        .par_iter()
        .map(|file| {
            let candidate = prepare(config, pool, file, dists);
            stage.advance(1);
            candidate
        })
        .collect();
    drop(stage);
    let mut candidates = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(candidate) => candidates.push(candidate),
            Err(message) => errors.push(message),
        }
    }
    if errors.is_empty() {
        return Ok(candidates);
    }
    repo.pool
        .discard(candidates.into_iter().filter_map(|c| c.staged).collect());
    errors.push("nothing was ingested: fix or leave out the files above".to_string());
    Err(OpsError::Invalid(errors))
}

fn prepare(
    config: &RepoConfig,
    pool: &Pool,
    file: &Path,
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

type Refusal = (OpsError, Vec<Staged>);

/// Drops identical duplicates inside the upload and refuses conflicts, both
/// within it and against the catalog, before anything reaches the pool.
fn dedupe_and_precheck(repo: &Repo, candidates: Vec<Candidate>) -> Result<Vec<Candidate>, Refusal> {
    let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
    let mut by_name: HashMap<(String, String), Vec<usize>> = HashMap::new();
    let mut kept: Vec<Candidate> = Vec::with_capacity(candidates.len());
    let mut dropped = Vec::new();
    let reader = repo.catalog.reader();
    let mut failure = None;
    for candidate in candidates {
        let key = (
            candidate.row.name.clone(),
            candidate.row.version_key.clone(),
            candidate.row.arch.clone(),
        );
        if failure.is_none() {
            failure = match seen.get(&key) {
                Some(&first) => same_bytes(&kept[first], &candidate).err(),
                None => {
                    let name = (candidate.row.name.clone(), candidate.row.arch.clone());
                    let same_name = by_name.get(&name).map_or(&[][..], Vec::as_slice);
                    spelled_apart(&kept, same_name, &candidate)
                        .and_then(|()| known_identity(&reader, &candidate).map(|_| ()))
                        .err()
                }
            };
        }
        if seen.contains_key(&key) || failure.is_some() {
            dropped.extend(candidate.staged);
            continue;
        }
        by_name
            .entry((candidate.row.name.clone(), candidate.row.arch.clone()))
            .or_default()
            .push(kept.len());
        seen.insert(key, kept.len());
        kept.push(candidate);
    }
    match failure {
        None => {
            repo.pool.discard(dropped);
            Ok(kept)
        }
        Some(error) => {
            dropped.extend(kept.into_iter().filter_map(|c| c.staged));
            Err((error, dropped))
        }
    }
}

fn same_bytes(first: &Candidate, other: &Candidate) -> Result<(), OpsError> {
    if first.sha256 == other.sha256 {
        return Ok(());
    }
    Err(OpsError::Conflict(format!(
        "{} and {} are both {} {} ({}) but differ: SHA256 {} vs {}; the same name, version and architecture must always be the same bytes",
        first.file.display(),
        other.file.display(),
        first.row.name,
        first.row.version,
        first.row.arch,
        first.sha256,
        other.sha256
    )))
}

/// Refuses two spellings of one version in an upload (`1.0` and `1.0-0`,
/// `01` and `1`): dpkg orders them alike, so apt could not tell them apart.
/// `same_name`: the indices in `kept` of the candidates with `c`'s name
/// and architecture.
fn spelled_apart(kept: &[Candidate], same_name: &[usize], c: &Candidate) -> Result<(), OpsError> {
    let other = same_name
        .iter()
        .map(|&i| &kept[i])
        .find(|k| same_order(&k.row.version, &c.row.version));
    match other {
        None => Ok(()),
        Some(k) => Err(equal_versions(
            c,
            &k.row.version,
            &format!("in {}", k.file.display()),
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

fn equal_versions(c: &Candidate, other: &str, holder: &str) -> OpsError {
    let row = &c.row;
    OpsError::Conflict(format!(
        "{}: {} {} ({}) is the same version to dpkg and apt as {other} ({holder}), only \
         spelled differently, so apt could not tell the two apart; give the package a version \
         that sorts after {other}",
        c.file.display(),
        row.name,
        row.version,
        row.arch,
    ))
}

/// The catalog id of the candidate if the repository already has it, after
/// refusing different bytes under the same identity or the same file name.
fn known_identity(reader: &Reader<'_>, c: &Candidate) -> Result<Option<i64>, OpsError> {
    let row = &c.row;
    if let Some(known) = reader.find_package(&row.name, &row.version_key, &row.arch)? {
        if known.sha256 == row.sha256 {
            return Ok(Some(known.id));
        }
        return Err(OpsError::Conflict(format!(
            "{}: {} {} ({}) is already in the repository with different contents: \
             catalog SHA256 {}, uploaded SHA256 {}. apt clients would see hash mismatches; \
             rebuild the package with a new version",
            c.file.display(),
            row.name,
            row.version,
            row.arch,
            known.sha256,
            row.sha256
        )));
    }
    let known = reader.versions_of(&row.name, &row.arch)?;
    if let Some(other) = known.iter().find(|v| same_order(v, &row.version)) {
        return Err(equal_versions(c, other, "already in the repository"));
    }
    if let Some(other) = reader.find_by_pool_name(&row.pool_name)? {
        return Err(OpsError::Conflict(format!(
            "{}: {} {} ({}) would be published as pool file {}, which already belongs to {} {} ({}); \
             versions that differ only by epoch cannot share a file name — bump the upstream version or revision",
            c.file.display(),
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
    candidates: Vec<Candidate>,
    (channel, component): (&str, &str),
) -> Result<IngestOutcome, OpsError> {
    let channel = channel.to_string();
    let audit = repo.actor.entry("ingest");
    let writer = repo.catalog.write()?;
    let mut outcome = IngestOutcome::default();
    let mut changed_dists = std::collections::BTreeSet::new();
    for c in candidates {
        // Most uploads are new: try the insert first and look the identity
        // up only when it collides (a concurrent upload, or a re-ingest).
        let (id, new) = match writer.try_insert_package(&c.row)? {
            Some(id) => (id, true),
            None => {
                let id = known_identity(&writer.reader(), &c)?.ok_or_else(|| {
                    OpsError::Conflict(format!(
                        "{}: the catalog refused the package",
                        c.file.display()
                    ))
                })?;
                (id, false)
            }
        };
        let mut added = Vec::new();
        for dist in &c.dists {
            if writer.place(id, &channel, dist, component)? {
                changed_dists.insert(dist.clone());
                added.push(dist.as_str());
            }
        }
        if !added.is_empty() {
            writer.enqueue_file(&channel, component, id)?;
            audit_ingest(&writer, &audit, &c, (&channel, component), (&added, new))?;
        }
        let added = added.len();
        outcome.packages.push(IngestedPackage {
            package: c.row.name,
            version: c.row.version,
            architecture: c.row.arch,
            sha256: c.row.sha256,
            size: c.row.size,
            file: c.file,
            channel: channel.clone(),
            component: component.to_string(),
            dists: c.dists,
            new,
            placements_added: added,
        });
    }
    for dist in &changed_dists {
        writer.mark_pending(&channel, dist)?;
    }
    writer.commit()?;
    Ok(outcome)
}

/// The audit entry of one package that gained placements.
fn audit_ingest(
    writer: &Writer<'_>,
    audit: &AuditEntry,
    c: &Candidate,
    (channel, component): (&str, &str),
    (dists, new): (&[&str], bool),
) -> Result<(), OpsError> {
    let detail = serde_json::json!({
        "component": component,
        "sha256": c.row.sha256,
        "size": c.row.size,
        "new": new,
    });
    let entry = AuditEntry {
        channel: Some(channel.to_string()),
        dist: Some(dists.join(",")),
        package: Some(c.row.name.clone()),
        version: Some(c.row.version.clone()),
        arch: Some(c.row.arch.clone()),
        detail: detail.to_string(),
        ..audit.clone()
    };
    Ok(writer.append_audit(&entry)?)
}
