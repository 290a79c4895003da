//! Publishing one dist of one channel: indices, Release, signatures, switch.

use super::build::{BuiltIndex, IndexSource, KINDS, SharedChunks, Stanzas, build_index};
use super::checksums::HexDigests;
use super::chunks::{Manifest, PublishedChunks};
use super::compress::Levels;
use super::generation::{DistTree, Generation};
use super::index::{PackagesIndex, split};
use super::release::{self, FileSums, ReleaseFields};
use crate::catalog::{IndexEntry, StanzaParts};
use crate::config::Checksum;
use crate::sign::Signer;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

/// What a publication of one dist is made from.
pub struct DistInput<'a> {
    pub tree: DistTree,
    pub entries: &'a [IndexEntry],
    pub stanzas: &'a Stanzas<'a>,
    pub fields: ReleaseFields,
    pub components: &'a [String],
    pub archs: &'a [String],
    /// Write a new generation even when no index changed (new Date/Valid-Until).
    pub refresh: bool,
    pub keep_generations: usize,
    /// Where this dist's index manifests live.
    pub manifest_dir: PathBuf,
    /// Also store the uncompressed `Packages` (it is always listed in Release).
    pub write_plain: bool,
    /// How hard the indices are compressed.
    pub levels: Levels,
    /// Compress again the chunks the previous publication stored damaged,
    /// instead of refusing to switch (`bess repo publish --refresh`).
    pub repair: bool,
    /// Called just before the new generation goes live: what it lists must
    /// be published by then (the pool links, made meanwhile elsewhere).
    pub before_switch: &'a (dyn Fn() -> io::Result<()> + Sync),
}

/// What a publication did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DistOutcome {
    pub dist: String,
    /// The generation now served.
    pub generation: u64,
    /// `false` when nothing changed and nothing was written.
    pub written: bool,
    pub packages: usize,
}

/// Why a dist could not be published; its previous generation still serves.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("cannot sign the Release of {dist}: {source}")]
    Sign {
        dist: String,
        #[source]
        source: crate::sign::SignError,
    },
}

/// The signatures of a Release text: detached (`Release.gpg`) and inline (`InRelease`).
fn sign_release(
    signer: &Signer,
    dist: &str,
    text: &str,
) -> Result<(Vec<u8>, Vec<u8>), PublishError> {
    let failed = |source| PublishError::Sign {
        dist: dist.to_string(),
        source,
    };
    let detached = signer.detached(text.as_bytes()).map_err(failed)?;
    let inline = signer.clearsign(text.as_bytes()).map_err(failed)?;
    Ok((detached, inline))
}

/// Renders, compresses, signs and atomically switches one dist.
pub fn publish_dist(input: &DistInput<'_>, signer: &Signer) -> Result<DistOutcome, PublishError> {
    let indices = split(input.entries, input.components, input.archs);
    let generation = input.tree.begin()?;
    let mut listed = Vec::new();
    let mut manifests = Vec::new();
    // Only worth its memory when another architecture's index will use it.
    let shared = (input.archs.len() > 1).then(SharedChunks::default);
    let built = build_all(input, &generation, &indices, shared.as_ref())?;
    for (index, built) in indices.iter().zip(built) {
        listed.extend(add_files(input, &generation, index, &built)?);
        manifests.push((manifest_path(&input.manifest_dir, index), built.manifest));
    }
    let dist = input.fields.codename.clone();
    let outcome = |generation, written| DistOutcome {
        dist: dist.clone(),
        generation,
        written,
        packages: input.entries.len(),
    };
    if !input.refresh
        && let Some(current) = unchanged_generation(&input.tree, &listed)?
    {
        generation.abandon()?;
        return Ok(outcome(current, false));
    }
    let release_text = release::render(&input.fields, &listed);
    let (detached, inline) = sign_release(signer, &dist, &release_text)?;
    generation.add_top_file("Release", release_text.as_bytes())?;
    generation.add_top_file("Release.gpg", &detached)?;
    generation.add_top_file("InRelease", &inline)?;
    (input.before_switch)()?;
    let number = generation.switch()?;
    for (path, manifest) in manifests {
        manifest.save(&path);
    }
    input.tree.prune(input.keep_generations)?;
    Ok(outcome(number, true))
}

/// Signs the current generation of `tree` again with a new `Date` and
/// `Valid-Until`, before it expires: generation n+1 links the very same
/// index files and gets a new Release, InRelease and Release.gpg; nothing
/// is rendered, compressed or hashed. `None` when the dist is unpublished.
pub fn resign_dist(
    tree: &DistTree,
    (date, valid_until): (SystemTime, Option<SystemTime>),
    signer: &Signer,
    keep_generations: usize,
) -> Result<Option<DistOutcome>, PublishError> {
    let Some(old) = tree.current_release()? else {
        return Ok(None);
    };
    let files = release::parse_files(&old).ok_or_else(|| {
        io::Error::other(format!(
            "{}: its Release lists files inconsistently; run bess repo publish --refresh",
            tree.link_path().join("Release").display()
        ))
    })?;
    let dist = release::field(&old, "Codename")
        .unwrap_or_default()
        .to_string();
    let generation = tree.begin()?;
    for sums in &files {
        if generation.has_index_file(sums) {
            generation.add_index_file(sums, None)?;
        } else if !sums.path.ends_with("/Packages") {
            // Only the uncompressed index may be listed and not stored; a
            // Release listing a file the new generation lacks would make
            // apt fail where the old one worked.
            generation.abandon()?;
            return Err(io::Error::other(format!(
                "{}: {} is listed but missing from the by-hash store; run bess repo publish --refresh",
                tree.link_path().join("Release").display(),
                sums.path
            ))
            .into());
        }
    }
    let text = release::redate(&old, date, valid_until);
    let (detached, inline) = sign_release(signer, &dist, &text)?;
    generation.add_top_file("Release", text.as_bytes())?;
    generation.add_top_file("Release.gpg", &detached)?;
    generation.add_top_file("InRelease", &inline)?;
    let number = generation.switch()?;
    // The new Release is served: old generations left behind cost only
    // space, and the next publish or refresh prunes them again.
    if let Err(e) = tree.prune(keep_generations) {
        eprintln!(
            "bess: {}: older generations not pruned ({e}); the next publish retries",
            tree.link_path().display()
        );
    }
    Ok(Some(DistOutcome {
        dist,
        generation: number,
        written: true,
        packages: 0,
    }))
}

fn manifest_path(manifest_dir: &Path, index: &PackagesIndex<'_>) -> PathBuf {
    manifest_dir.join(index.dir())
}

/// A request to the thread that reads the catalog: stanza parts of these ids.
type StanzaRequest = (
    Vec<i64>,
    mpsc::Sender<io::Result<HashMap<i64, StanzaParts>>>,
);

/// Builds every index of the dist at once, a thread each: hashing an
/// index's files is serial, so architectures built one after the other
/// left a core idle at the end of each. Their catalog reads all come back
/// to this thread, which holds the snapshot.
fn build_all(
    input: &DistInput<'_>,
    generation: &Generation,
    indices: &[PackagesIndex<'_>],
    shared: Option<&SharedChunks>,
) -> io::Result<Vec<BuiltIndex>> {
    let (requests, served) = mpsc::channel::<StanzaRequest>();
    let target = IndexTarget {
        manifest_dir: &input.manifest_dir,
        write_plain: input.write_plain,
        hashes: &input.fields.hashes,
        levels: input.levels,
        repair: input.repair,
        generation,
        shared,
    };
    std::thread::scope(|scope| {
        let target = &target;
        let builders: Vec<_> = indices
            .iter()
            .map(|index| {
                let requests = requests.clone();
                scope.spawn(move || {
                    let stanzas = |ids: &[i64]| ask_catalog(&requests, ids);
                    build_one(target, index, &stanzas)
                })
            })
            .collect();
        drop(requests);
        for (ids, reply) in served {
            let _ = reply.send((input.stanzas)(&ids));
        }
        builders
            .into_iter()
            .map(|b| b.join().expect("an index builder does not panic"))
            .collect()
    })
}

fn ask_catalog(
    requests: &mpsc::Sender<StanzaRequest>,
    ids: &[i64],
) -> io::Result<HashMap<i64, StanzaParts>> {
    let gone = || io::Error::other("the catalog reader stopped");
    let (reply, answer) = mpsc::channel();
    requests.send((ids.to_vec(), reply)).map_err(|_| gone())?;
    answer.recv().map_err(|_| gone())?
}

/// Where one index is built and what with (the parts of [`DistInput`]
/// that index builders share across threads).
struct IndexTarget<'a> {
    manifest_dir: &'a Path,
    write_plain: bool,
    hashes: &'a [Checksum],
    levels: Levels,
    repair: bool,
    generation: &'a Generation,
    shared: Option<&'a SharedChunks>,
}

fn build_one(
    target: &IndexTarget<'_>,
    index: &PackagesIndex<'_>,
    stanzas: &Stanzas<'_>,
) -> io::Result<BuiltIndex> {
    let generation = target.generation;
    let dir = index.dir();
    let temp_dir = generation.temp_dir(&dir);
    let previous = Manifest::load(&manifest_path(target.manifest_dir, index));
    // The by-hash store is where index files are built and kept.
    let published = PublishedChunks::open(&previous, &temp_dir);
    let source = IndexSource {
        dir: &dir,
        entries: &index.entries,
        sections: &index.sections,
        stanzas,
        published: &published,
        temp_dir: &temp_dir,
        write_plain: target.write_plain,
        shared: target.shared,
        hashes: target.hashes,
        levels: target.levels,
        repair: target.repair,
    };
    let built = build_index(&source, &previous)?;
    // An unchanged index whose files were pruned away must be written again.
    let stored = (1..3).all(|i| generation.has_index_file(&sums_at(index, i, &built.sums[i])));
    let plain_ok =
        !target.write_plain || generation.has_index_file(&sums_at(index, 0, &built.sums[0]));
    if built.temps.iter().all(Option::is_none) && !(stored && plain_ok) {
        return build_index(&source, &Manifest::default());
    }
    Ok(built)
}

fn sums_at(index: &PackagesIndex<'_>, kind: usize, digests: &HexDigests) -> FileSums {
    FileSums {
        path: format!("{}/{}", index.dir(), KINDS[kind]),
        size: digests.size,
        md5: digests.md5.clone(),
        sha1: digests.sha1.clone(),
        sha256: digests.sha256.clone(),
        sha512: digests.sha512.clone(),
    }
}

/// Adds an index's files to the generation; returns what Release lists.
fn add_files(
    input: &DistInput<'_>,
    generation: &Generation,
    index: &PackagesIndex<'_>,
    built: &BuiltIndex,
) -> io::Result<Vec<FileSums>> {
    let mut listed = Vec::new();
    for kind in 0..3 {
        let sums = sums_at(index, kind, &built.sums[kind]);
        let temp: Option<&Path> = built.temps[kind].as_deref();
        // The uncompressed index is always listed (apt checks what it
        // decompresses against it) but stored only when configured, as on
        // Debian's own mirrors.
        if kind > 0 || input.write_plain {
            generation.add_index_file(&sums, temp)?;
        }
        listed.push(sums);
    }
    let text = release::render_index_release(&input.fields, &index.component, &index.arch);
    let path = format!("{}/Release", index.dir());
    let sums = FileSums::of(path, text.as_bytes(), &input.fields.hashes);
    generation.add_index_bytes(&sums, text.as_bytes())?;
    listed.push(sums);
    Ok(listed)
}

/// The current generation if it lists exactly these index files.
fn unchanged_generation(tree: &DistTree, sums: &[FileSums]) -> io::Result<Option<u64>> {
    let Some(text) = tree.current_release()? else {
        return Ok(None);
    };
    let same = release::parse_files(&text).is_some_and(|listed| listed == sums);
    Ok(if same { tree.current()? } else { None })
}

/// `Valid-Until` for a publication made at `now`.
pub fn valid_until(now: SystemTime, days: u32) -> Option<SystemTime> {
    (days > 0).then(|| now + Duration::from_secs(u64::from(days) * 86_400))
}
