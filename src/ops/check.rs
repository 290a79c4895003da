//! `bess repo check`: verify the whole repository against itself.
//!
//! Problems are damage a client would notice or that loses data (a corrupt
//! object, a missing link, an index or signature that does not verify).
//! Warnings are what an interrupted writer left that costs space until a
//! command removes it (staging files of a killed ingest). Notes are
//! harmless leftovers (an unreferenced object after a crash, a change
//! waiting for `bess repo publish`).

use super::{OpsError, Repo};
use crate::catalog::{IndexEntry, PlacementFilter, Reader};
use crate::config::{Checksum, ReleaseSettings, RepoConfig};
use crate::pool::Sha256;
use crate::publish::release::{FileSums, field, parse_files};
use crate::publish::{DistTree, MultiHasher, split, write_stanza};
use crate::sign::KeyStore;
use rayon::prelude::*;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What `bess repo check` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    pub problems: Vec<String>,
    /// Leftovers of interrupted writers, each with the command that removes them.
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    pub objects: usize,
    pub dists: usize,
}

/// How many packages' stanzas are held at once while an index is checked:
/// the check's memory does not grow with the repository.
const STANZAS_PER_BATCH: usize = 2000;

/// Verifies objects, links, indices, Release files and signatures.
pub fn check(repo: &mut Repo) -> Result<CheckReport, OpsError> {
    // Every row is read once, in order: a large page cache would only grow
    // the check's memory with the repository.
    repo.catalog
        .limit_page_cache(super::heap::WALK_PAGE_CACHE_KIB)?;
    let mut report = CheckReport::default();
    check_staging(repo, &mut report)?;
    check_objects(repo, &mut report)?;
    check_links(repo, &mut report)?;
    report.problems.extend(super::boxes::check_box_links(repo)?);
    let channels = repo.config.settings.channels.clone();
    let dists = repo.config.dists.names().to_vec();
    let progress = repo.progress.clone();
    let total = (channels.len() * dists.len()) as u64;
    let stage = progress.stage("checking publications", total, false);
    for channel in &channels {
        for dist in &dists {
            check_dist(repo, channel, dist, &mut report)?;
            report.dists += 1;
            stage.advance(1);
        }
    }
    let (problems, notes) = super::targets::check_all(repo);
    report.problems.extend(problems);
    report.notes.extend(notes);
    Ok(report)
}

/// Staging files a killed ingest left in the pool: what `bess repo gc`
/// would delete of them.
fn check_staging(repo: &Repo, report: &mut CheckReport) -> Result<(), OpsError> {
    let stale = super::gc::stale_staging(&repo.config.layout.pool_dir())?;
    if stale.is_empty() {
        return Ok(());
    }
    let bytes: u64 = stale.iter().map(|(_, size)| size).sum();
    report.warnings.push(format!(
        "{} staging file(s) ({bytes} bytes) in {} were left by an interrupted ingest more than {} hour(s) ago; `bess repo gc` deletes them",
        stale.len(),
        repo.config.layout.pool_dir().display(),
        super::gc::STAGING_STALE_AFTER.as_secs() / 3600
    ));
    Ok(())
}

/// Every pool object must hash to its name; every catalogued package must
/// have its object. Objects are named by 32-byte hashes in memory, and
/// placements are read one at a time.
fn check_objects(repo: &Repo, report: &mut CheckReport) -> Result<(), OpsError> {
    let pool_dir = repo.config.layout.pool_dir();
    let files: Vec<_> = walkdir::WalkDir::new(&pool_dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            !e.file_name()
                .to_str()
                .is_some_and(crate::pool::Pool::is_temp_name)
        })
        .map(|e| e.into_path())
        .collect();
    report.objects = files.len();
    let stage = repo
        .progress
        .stage("checking objects", files.len() as u64, false);
    let damaged: Vec<String> = files
        .par_iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_string();
            // Streamed: box objects can be gigabytes.
            let ok = crate::pool::sha256_of_file(path).is_ok_and(|sha| sha.to_hex() == name);
            stage.advance(1);
            (!ok).then(|| format!("pool object {} does not hash to its name", path.display()))
        })
        .collect();
    drop(stage);
    report.problems.extend(damaged);
    let present: HashSet<Sha256> = files
        .into_iter()
        .filter_map(|p| Sha256::from_hex(p.file_name()?.to_str()?))
        .collect();
    let reader = repo.catalog.reader();
    let mut referenced = HashSet::new();
    for sha in reader.box_objects()? {
        let object = Sha256::from_hex(&sha);
        if !object.is_some_and(|o| present.contains(&o)) {
            report.problems.push(format!(
                "a placed box's pool object {sha} is missing; restore it from a backup"
            ));
        }
        referenced.extend(object);
    }
    reader.each_placement(&PlacementFilter::default(), |p| {
        let object = Sha256::from_hex(&p.package.sha256);
        let first = object.is_none_or(|o| referenced.insert(o));
        if first && !object.is_some_and(|o| present.contains(&o)) {
            report.problems.push(format!(
                "{} {} ({}) is placed but its pool object {} is missing; restore it from a backup",
                p.package.name, p.package.version, p.package.arch, p.package.sha256
            ));
        }
        Ok::<_, OpsError>(())
    })?;
    let orphans = present.difference(&referenced).count();
    if orphans > 0 {
        report.notes.push(format!(
            "{orphans} pool object(s) are referenced by no placement; `bess repo gc` deletes them"
        ));
    }
    Ok(())
}

/// Every placement's file must be published as a link to its object; files
/// no placement needs are only noted (a crash can leave them; they are
/// never listed in an index).
fn check_links(repo: &Repo, report: &mut CheckReport) -> Result<(), OpsError> {
    let reader = repo.catalog.reader();
    let tree = repo.tree();
    let mut queued = HashSet::new();
    for channel in &repo.config.settings.channels {
        reader.each_queued_batch(channel, 0, 4096, |batch| {
            queued.extend(
                batch
                    .iter()
                    .map(|f| fingerprint(&tree.path(channel, &f.component, &f.pool_name))),
            );
            Ok::<_, OpsError>(())
        })?;
    }
    let mut wanted = HashSet::new();
    reader.each_placement(&PlacementFilter::default(), |p| {
        let path = tree.path(&p.channel, &p.component, &p.package.pool_name);
        let key = fingerprint(&path);
        if !wanted.insert(key) {
            return Ok(());
        }
        if queued.contains(&key) {
            return Ok(()); // the next publish links it
        }
        let object = repo
            .config
            .layout
            .pool_dir()
            .join(&p.package.sha256[..2])
            .join(&p.package.sha256);
        if !same_content(&object, &path) {
            report.problems.push(format!(
                "{} is not a link to pool object {}; run `bess repo publish --refresh` to relink",
                path.display(),
                p.package.sha256
            ));
        }
        Ok::<_, OpsError>(())
    })?;
    note_old_layout(repo, report)?;
    for channel in &repo.config.settings.channels {
        let root = repo.config.layout.channel_dir(channel).join("pool");
        let strays = walkdir::WalkDir::new(&root)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file() && !wanted.contains(&fingerprint(e.path())))
            .count();
        if strays > 0 {
            report.notes.push(format!(
                "{strays} file(s) under {} belong to no placement",
                root.display()
            ));
        }
    }
    Ok(())
}

/// A published path as 128 bits of its SHA-256: the sets of every path a
/// placement wants take 16 bytes a file instead of the path (250,000
/// paths were 38 MiB), and two paths of a repository share a fingerprint
/// with a probability near 10^-28.
fn fingerprint(path: &Path) -> u128 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(path.as_os_str().as_encoded_bytes());
    u128::from_le_bytes(digest[..16].try_into().expect("a SHA-256 has 32 bytes"))
}

/// Packages an earlier bess named outside Debian's pool layout.
fn note_old_layout(repo: &Repo, report: &mut CheckReport) -> Result<(), OpsError> {
    let mut old = 0;
    repo.catalog.reader().each_package(|p| {
        let version = crate::deb::Version::parse(&p.version);
        let moved = version.is_ok_and(|v| {
            crate::publish::pool_name(&p.source, &p.name, v.without_epoch(), &p.arch) != p.pool_name
        });
        old += usize::from(moved);
        Ok(())
    })?;
    if old > 0 {
        report.notes.push(format!(
            "{old} package(s) are published outside Debian's pool layout \
             (pool/<component>/<prefix>/<source>/); `bess repo publish --refresh` moves them"
        ));
    }
    Ok(())
}

fn same_content(object: &Path, published: &Path) -> bool {
    match (std::fs::metadata(object), std::fs::metadata(published)) {
        (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino() => true,
        (Ok(a), Ok(b)) if a.len() == b.len() => {
            std::fs::read(object).ok() == std::fs::read(published).ok()
        }
        _ => false,
    }
}

/// The published metadata of one dist: Release entries, by-hash copies,
/// signatures, and the indices against the catalog.
fn check_dist(
    repo: &mut Repo,
    channel: &str,
    dist: &str,
    report: &mut CheckReport,
) -> Result<(), OpsError> {
    let tree = DistTree::new(repo.config.layout.channel_dir(channel), dist);
    let here = format!("{channel}/dists/{dist}");
    let release = match tree.current_release() {
        Ok(Some(text)) => text,
        Ok(None) => {
            report
                .problems
                .push(format!("{here} is not published; run `bess repo publish`"));
            return Ok(());
        }
        Err(e) => {
            report
                .problems
                .push(format!("{here}: cannot read Release: {e}"));
            return Ok(());
        }
    };
    let root = tree.link_path();
    check_signatures(repo, &root, &release, &here, report);
    check_validity(&repo.config.settings.release, &release, &here, report);
    let Some(files) = parse_files(&release) else {
        report
            .problems
            .push(format!("{here}/Release: checksum lists are inconsistent"));
        return Ok(());
    };
    for file in &files {
        // The uncompressed index is listed but stored only on request; it
        // is checked through the compressed files below.
        let absent_plain = file.path.ends_with("/Packages") && !root.join(&file.path).exists();
        if !absent_plain {
            check_listed_file(&root, file, &here, report);
        }
    }
    let snapshot = repo.catalog.snapshot()?;
    let reader = snapshot.reader();
    if reader.pending_seq(channel, dist)? > 0 {
        // The catalog is ahead of what is served: the indices are checked
        // against their own Release instead.
        report.notes.push(format!(
            "{here} has changes waiting for `bess repo publish`"
        ));
        report
            .problems
            .extend(check_indices_match_release(&root, &files, &here));
        return Ok(());
    }
    let entries = reader.index_entries(channel, dist)?;
    let problems =
        check_indices_match_catalog(&repo.config, &reader, &root, &files, &entries, &here)?;
    report.problems.extend(problems);
    Ok(())
}

/// Each listed `Packages` must be what both compressed files decompress to
/// (its listed size and checksums), and every file it names must be
/// published. Both are read as streams, never whole.
fn check_indices_match_release(root: &Path, files: &[FileSums], here: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let channel_dir = root.parent().and_then(Path::parent).unwrap_or(root);
    for listed in files.iter().filter(|f| f.path.ends_with("/Packages")) {
        let rel = &listed.path;
        let mut unpublished = None;
        for (suffix, decoded) in decompressed(root, rel) {
            let mut missing = Vec::new();
            let sums = decoded.and_then(|reader| {
                sums_of_lines(reader, rel, &listed.kinds(), |line| {
                    let name = line.strip_prefix(b"Filename: ")?;
                    let name = String::from_utf8_lossy(name).trim_end().to_string();
                    (!channel_dir.join(&name).is_file()).then(|| missing.push(name))
                })
            });
            if sums.as_ref() == Some(listed) {
                unpublished.get_or_insert(missing);
            } else {
                problems.push(format!(
                    "{here}/{rel}{suffix} does not decompress to the Packages its Release lists"
                ));
            }
        }
        for name in unpublished.unwrap_or_default() {
            problems.push(format!("{here}/{rel}: {name} is not published"));
        }
    }
    problems
}

/// The `.gz` and `.xz` files of the index `rel`, each as a decompressing
/// reader (`None` when it cannot be opened).
fn decompressed(root: &Path, rel: &str) -> [(&'static str, Option<Box<dyn Read>>); 2] {
    let open = |suffix: &str| std::fs::File::open(root.join(format!("{rel}{suffix}"))).ok();
    let gz = open(".gz").map(|f| Box::new(flate2::read::MultiGzDecoder::new(f)) as Box<dyn Read>);
    let xz = open(".xz").map(|f| Box::new(xz2::read::XzDecoder::new(f)) as Box<dyn Read>);
    [(".gz", gz), (".xz", xz)]
}

/// The sums of everything `reader` gives, read line by line, each line
/// shown to `on_line`; `None` if it cannot be read to its end.
fn sums_of_lines(
    reader: impl Read,
    rel: &str,
    kinds: &[Checksum],
    mut on_line: impl FnMut(&[u8]) -> Option<()>,
) -> Option<FileSums> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut hasher = MultiHasher::new(kinds);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).ok()? == 0 {
            break;
        }
        hasher.update(&line);
        on_line(&line);
    }
    Some(sums(rel, &hasher))
}

/// The sums a hasher took, listed under `rel`.
fn sums(rel: &str, hasher: &MultiHasher) -> FileSums {
    let d = hasher.finish();
    FileSums {
        path: rel.to_string(),
        size: d.size,
        md5: d.md5,
        sha1: d.sha1,
        sha256: d.sha256,
        sha512: d.sha512,
    }
}

fn check_signatures(repo: &Repo, root: &Path, release: &str, here: &str, report: &mut CheckReport) {
    let keys = KeyStore::open(repo.config.layout.root());
    match std::fs::read(root.join("InRelease")) {
        Ok(inline) => match keys.verify_cleartext(&inline) {
            Ok(text)
                if strip_trailing_blanks(&text) == strip_trailing_blanks(release.as_bytes()) => {}
            Ok(_) => report.problems.push(format!(
                "{here}/InRelease signs a different text than Release"
            )),
            Err(e) => signature_finding(report, &format!("{here}/InRelease"), e),
        },
        Err(e) => report.problems.push(format!("{here}/InRelease: {e}")),
    }
    match std::fs::read(root.join("Release.gpg")) {
        Ok(sig) => {
            if let Err(e) = keys.verify_detached(release.as_bytes(), &sig) {
                signature_finding(report, &format!("{here}/Release.gpg"), e);
            }
        }
        Err(e) => report.problems.push(format!("{here}/Release.gpg: {e}")),
    }
}

/// A key generated since the last publication does not sign yet: clients
/// verify with the keys that do, so it is a warning, not damage.
fn signature_finding(report: &mut CheckReport, file: &str, error: crate::sign::SignError) {
    match error {
        crate::sign::SignError::NotSignedBy { .. } => report.warnings.push(format!(
            "{file}: {error}; `bess repo refresh` signs with every current key, once clients have the new one"
        )),
        other => report.problems.push(format!("{file}: {other}")),
    }
}

/// Cleartext signatures do not sign trailing blanks of lines.
fn strip_trailing_blanks(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    text.lines()
        .map(|l| l.trim_end_matches([' ', '\t']))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

/// An expired Release makes every `apt-get update` fail (a problem); one
/// closer to its `Valid-Until` than `[release] refresh-before-days` means
/// nothing refreshed it in time (a warning).
fn check_validity(settings: &ReleaseSettings, release: &str, here: &str, report: &mut CheckReport) {
    let Some(text) = field(release, "Valid-Until") else {
        if settings.valid_days > 0 {
            report.warnings.push(format!(
                "{here}/Release has no Valid-Until but valid-days = {}; `bess repo refresh --due` adds it",
                settings.valid_days
            ));
        }
        return;
    };
    let Some(until) = crate::publish::release::parse_rfc1123(text) else {
        report.problems.push(format!(
            "{here}/Release: Valid-Until {text:?} is not an RFC 1123 date"
        ));
        return;
    };
    let now = std::time::SystemTime::now();
    if until < now {
        report.problems.push(format!(
            "{here}/Release expired on {text}; apt refuses it. Run `bess repo refresh`"
        ));
    } else if until < now + settings.refresh_before() {
        report.warnings.push(format!(
            "{here}/Release expires on {text}, within refresh-before-days; is `bess serve` or \
             bess-refresh.timer running? `bess repo refresh --due` signs it again"
        ));
    }
}

/// A listed file must exist with its size and every hash, and so must its
/// by-hash copy under each hash kind.
fn check_listed_file(root: &Path, file: &FileSums, here: &str, report: &mut CheckReport) {
    let path = root.join(&file.path);
    match std::fs::read(&path) {
        Ok(data) if FileSums::of(file.path.clone(), &data, &file.kinds()) == *file => {}
        Ok(_) => report.problems.push(format!(
            "{here}/{} does not match its Release entry",
            file.path
        )),
        Err(e) => report.problems.push(format!("{here}/{}: {e}", file.path)),
    }
    let dir = Path::new(&file.path).parent().unwrap_or(Path::new(""));
    for (kind, hash) in file.by_hash() {
        let copy = root.join(dir).join("by-hash").join(kind).join(hash);
        if !same_content(&path, &copy) {
            report.problems.push(format!(
                "{here}/{}: by-hash copy {kind}/{hash} is missing or differs",
                file.path
            ));
        }
    }
}

/// Each index must be exactly what the catalog renders to: the listed
/// uncompressed sums, and both compressed files once decompressed; every
/// file it names must be published. Stanzas are rendered and hashed
/// [`STANZAS_PER_BATCH`] at a time, and the compressed files are hashed as
/// they decompress, so nothing the size of an index is held.
fn check_indices_match_catalog(
    config: &RepoConfig,
    reader: &Reader<'_>,
    root: &Path,
    files: &[FileSums],
    entries: &[IndexEntry],
    here: &str,
) -> Result<Vec<String>, OpsError> {
    let mut problems = Vec::new();
    let channel_dir = root
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let components = &config.settings.components;
    let hashes = &config.settings.release.hashes;
    for index in split(entries, components, config.archs.names()) {
        let rel = format!("{}/Packages", index.dir());
        let mut hasher = MultiHasher::new(hashes);
        let mut stanza = String::new();
        for batch in index.entries.chunks(STANZAS_PER_BATCH) {
            let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
            let parts = reader.stanza_parts(&ids)?;
            for entry in batch {
                let Some(parts) = parts.get(&entry.id) else {
                    problems.push(format!(
                        "{here}/{rel}: package {} has no control data in the catalog",
                        entry.id
                    ));
                    continue;
                };
                stanza.clear();
                write_stanza(&mut stanza, &entry.component, parts, hashes);
                hasher.update(stanza.as_bytes());
                let file = channel_dir
                    .join("pool")
                    .join(&entry.component)
                    .join(&parts.pool_name);
                if !file.is_file() {
                    problems.push(format!("{here}/{rel}: {} is not published", file.display()));
                }
            }
        }
        let expected = sums(&rel, &hasher);
        if files.iter().find(|f| f.path == rel) != Some(&expected) {
            problems.push(format!("{here}/{rel}: Release disagrees with the catalog; run `bess repo publish --refresh`"));
        }
        for (suffix, decoded) in decompressed(root, &rel) {
            let got = decoded.and_then(|r| sums_of_lines(r, &rel, hashes, |_| None));
            if got.as_ref() != Some(&expected) {
                problems.push(format!(
                    "{here}/{rel}{suffix} does not decompress to what the catalog lists"
                ));
            }
        }
    }
    Ok(problems)
}
