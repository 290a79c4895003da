//! Publishing one dist of one channel: indices, Release, signatures, switch.

use super::compress::{CompressedChunk, compress_chunk, xz_stream};
use super::generation::DistTree;
use super::index::{PackagesIndex, split, write_stanza};
use super::release::{self, FileSums, ReleaseFields};
use crate::catalog::IndexEntry;
use crate::sign::Signer;
use rayon::prelude::*;
use std::io;
use std::time::{Duration, SystemTime};

/// What a publication of one dist is made from.
pub struct DistInput<'a> {
    pub tree: DistTree,
    pub entries: &'a [IndexEntry],
    pub fields: ReleaseFields,
    pub components: &'a [String],
    pub archs: &'a [String],
    /// Write a new generation even when no index changed (new Date/Valid-Until).
    pub refresh: bool,
    pub keep_generations: usize,
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

/// An index file ready to be written: its path under `dists/<dist>/` and bytes.
struct IndexFile {
    sums: FileSums,
    data: Vec<u8>,
}

/// Renders, compresses, signs and atomically switches one dist.
pub fn publish_dist(input: &DistInput<'_>, signer: &Signer) -> io::Result<DistOutcome> {
    let indices = split(input.entries, input.components, input.archs);
    let files: Vec<IndexFile> = indices
        .par_iter()
        .flat_map_iter(|index| index_files(index, &input.fields))
        .collect();
    let sums: Vec<FileSums> = files.iter().map(|f| f.sums.clone()).collect();
    let dist = input.fields.codename.clone();
    if !input.refresh
        && let Some(generation) = unchanged_generation(&input.tree, &sums)?
    {
        return Ok(DistOutcome {
            dist,
            generation,
            written: false,
            packages: input.entries.len(),
        });
    }
    let generation = input.tree.begin()?;
    for file in &files {
        generation.add_index_file(&file.sums, &file.data)?;
    }
    let release_text = release::render(&input.fields, &sums);
    let detached = signer
        .detached(release_text.as_bytes())
        .map_err(io::Error::other)?;
    let inline = signer
        .clearsign(release_text.as_bytes())
        .map_err(io::Error::other)?;
    generation.add_top_file("Release", release_text.as_bytes())?;
    generation.add_top_file("Release.gpg", &detached)?;
    generation.add_top_file("InRelease", &inline)?;
    let number = generation.switch()?;
    input.tree.prune(input.keep_generations)?;
    Ok(DistOutcome {
        dist,
        generation: number,
        written: true,
        packages: input.entries.len(),
    })
}

/// The current generation if it lists exactly these index files.
fn unchanged_generation(tree: &DistTree, sums: &[FileSums]) -> io::Result<Option<u64>> {
    let Some(text) = tree.current_release()? else {
        return Ok(None);
    };
    let same = release::parse_files(&text).is_some_and(|listed| listed == sums);
    Ok(if same { tree.current()? } else { None })
}

/// `Packages`, `Packages.gz`, `Packages.xz` and `Release` of one index.
fn index_files(index: &PackagesIndex<'_>, fields: &ReleaseFields) -> Vec<IndexFile> {
    let dir = format!("{}/binary-{}", index.component, index.arch);
    let chunks = chunk_texts(index);
    let compressed: Vec<CompressedChunk> = chunks
        .par_iter()
        .map(|c| compress_chunk(c.as_bytes()))
        .collect();
    let plain: Vec<u8> = chunks.concat().into_bytes();
    let gz: Vec<u8> = compressed
        .iter()
        .flat_map(|c| c.gzip.iter().copied())
        .collect();
    let xz = xz_stream(compressed.iter().map(|c| &c.xz));
    let local_release =
        release::render_index_release(fields, &index.component, &index.arch).into_bytes();
    let named = [
        (format!("{dir}/Packages"), plain),
        (format!("{dir}/Packages.gz"), gz),
        (format!("{dir}/Packages.xz"), xz),
        (format!("{dir}/Release"), local_release),
    ];
    named
        .into_par_iter()
        .map(|(path, data)| IndexFile {
            sums: FileSums::of(path, &data),
            data,
        })
        .collect()
}

/// Average number of stanzas per chunk; about 100 KiB of index text.
const CHUNK_STANZAS: u32 = 64;

/// Cuts an index into chunks at content-defined stanza boundaries: a chunk
/// ends after a package whose SHA-256 starts with a value divisible by
/// [`CHUNK_STANZAS`]. Inserting one package then changes one chunk only,
/// and the others compress to the same bytes as before.
fn chunk_texts(index: &PackagesIndex<'_>) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    for entry in &index.entries {
        write_stanza(&mut current, entry);
        if ends_chunk(&entry.sha256) {
            chunks.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() || chunks.is_empty() {
        chunks.push(current);
    }
    chunks
}

fn ends_chunk(sha256_hex: &str) -> bool {
    let head = sha256_hex
        .get(..8)
        .and_then(|h| u32::from_str_radix(h, 16).ok());
    head.is_some_and(|h| h % CHUNK_STANZAS == 0)
}

/// `Valid-Until` for a publication made at `now`.
pub fn valid_until(now: SystemTime, days: u32) -> Option<SystemTime> {
    (days > 0).then(|| now + Duration::from_secs(u64::from(days) * 86_400))
}
