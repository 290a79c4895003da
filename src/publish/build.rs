//! Building one index's files (`Packages`, `.gz`, `.xz`) chunk by chunk.
//!
//! Chunks stream through in windows: the ones that need text are rendered
//! and compressed in parallel, then every chunk is appended to the output
//! files in order. Hashing resumes from the last chunk the previous
//! publication shares with this one, and compressed chunks come from the
//! cache, so adding one package to a large index re-renders, recompresses
//! and rehashes only the tail.

use super::checksums::{HexDigests, MultiHasher};
use super::chunks::{Chunk, ChunkCache, CompressedChunk, Manifest, ManifestChunk, cut};
use super::compress::{XZ_HEADER, compress_chunk, xz_footer};
use super::index::render;
use crate::catalog::IndexEntry;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Chunks rendered and compressed together; bounds memory to a few MiB.
const WINDOW: usize = 32;

/// Fetches control paragraphs by package id.
pub type Controls<'a> = dyn Fn(&[i64]) -> io::Result<HashMap<i64, String>> + 'a;

/// The three files of one index: uncompressed, gzip, xz.
pub const KINDS: [&str; 3] = ["Packages", "Packages.gz", "Packages.xz"];

/// What building an index produced.
pub struct BuiltIndex {
    /// Sums of `Packages`, `Packages.gz`, `Packages.xz`.
    pub sums: [HexDigests; 3],
    /// Temp files holding the new data, for the files that were written.
    pub temps: [Option<PathBuf>; 3],
    pub manifest: Manifest,
}

/// Where and how to build.
pub struct IndexSource<'a> {
    pub entries: &'a [&'a IndexEntry],
    pub controls: &'a Controls<'a>,
    pub cache: &'a ChunkCache,
    /// Directory for temp files (on the publication's filesystem).
    pub temp_dir: &'a Path,
    /// Whether to write the uncompressed `Packages` too.
    pub write_plain: bool,
}

/// Builds the files of one index, resuming from `previous` where it can.
pub fn build_index(source: &IndexSource<'_>, previous: &Manifest) -> io::Result<BuiltIndex> {
    let chunks = cut(source.entries);
    if let Some(sums) = unchanged(&chunks, previous) {
        return Ok(BuiltIndex {
            sums,
            temps: [None, None, None],
            manifest: previous.clone(),
        });
    }
    let resume = shared_prefix(&chunks, previous, source.write_plain);
    let out = Outputs::create(source, resume, previous)?;
    // Hashing and writing run on their own thread, in chunk order, while
    // the next window is rendered and compressed on the others.
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Prepared)>(2 * WINDOW);
        let chunks = &chunks;
        let writer = scope.spawn(move || -> io::Result<BuiltIndex> {
            let mut out = out;
            for (index, (compressed, text)) in rx {
                out.append(
                    index,
                    &chunks[index],
                    &compressed,
                    text.as_deref(),
                    previous,
                )?;
            }
            out.finish()
        });
        let produced = produce(source, chunks, resume, &tx);
        drop(tx);
        let written = writer.join().expect("the index writer does not panic");
        produced.and(written)
    })
}

/// Feeds every chunk, window by window, to the writer.
fn produce(
    source: &IndexSource<'_>,
    chunks: &[Chunk],
    resume: usize,
    tx: &std::sync::mpsc::SyncSender<(usize, Prepared)>,
) -> io::Result<()> {
    for (w, window) in chunks.chunks(WINDOW).enumerate() {
        let first = w * WINDOW;
        for (offset, prepared) in prepare_window(source, window, first, resume)?
            .into_iter()
            .enumerate()
        {
            if tx.send((first + offset, prepared)).is_err() {
                return Ok(()); // the writer failed; its error is reported
            }
        }
    }
    Ok(())
}

/// The sums of the previous build when nothing changed.
fn unchanged(chunks: &[Chunk], previous: &Manifest) -> Option<[HexDigests; 3]> {
    let same = chunks.len() == previous.chunks.len()
        && chunks
            .iter()
            .zip(&previous.chunks)
            .all(|(c, p)| c.key == p.key);
    if same { previous.sums.clone() } else { None }
}

/// How many leading chunks the previous build shares (and so need no hashing).
/// Writing the uncompressed file needs every chunk's text, so it resumes nothing.
fn shared_prefix(chunks: &[Chunk], previous: &Manifest, write_plain: bool) -> usize {
    if write_plain {
        return 0;
    }
    chunks
        .iter()
        .zip(&previous.chunks)
        .take_while(|(c, p)| c.key == p.key)
        .count()
}

type Prepared = (CompressedChunk, Option<String>);

/// Compressed bytes for every chunk of a window, and text for those that
/// are hashed (at or after `resume`), rendering and compressing in parallel.
fn prepare_window(
    source: &IndexSource<'_>,
    window: &[Chunk],
    first: usize,
    resume: usize,
) -> io::Result<Vec<Prepared>> {
    let cache = source.cache;
    let cached: Vec<Option<CompressedChunk>> =
        window.par_iter().map(|c| cache.get(&c.key)).collect();
    let write_plain = source.write_plain;
    let wanted: Vec<bool> = (0..window.len())
        .map(|i| first + i >= resume || cached[i].is_none() || write_plain)
        .collect();
    let needs_text = |i: usize| wanted[i];
    let ids: Vec<i64> = window
        .iter()
        .enumerate()
        .filter(|(i, _)| needs_text(*i))
        .flat_map(|(_, c)| source.entries[c.start..c.end].iter().map(|e| e.id))
        .collect();
    let controls = if ids.is_empty() {
        HashMap::new()
    } else {
        (source.controls)(&ids)?
    };
    let (entries, cache) = (source.entries, source.cache);
    Ok(window
        .par_iter()
        .zip(cached)
        .enumerate()
        .map(|(i, (chunk, cached))| {
            let text = needs_text(i).then(|| render(&entries[chunk.start..chunk.end], &controls));
            let compressed = cached.unwrap_or_else(|| {
                let fresh = compress_chunk(text.as_deref().unwrap_or_default().as_bytes());
                cache.put(&chunk.key, &fresh);
                fresh
            });
            (compressed, text)
        })
        .collect())
}

/// The output files being written and their running hashes.
struct Outputs {
    plain: Option<(BufWriter<File>, PathBuf)>,
    gzip: (BufWriter<File>, PathBuf),
    xz: (BufWriter<File>, PathBuf),
    hashers: [MultiHasher; 3],
    /// Chunks before this one are hashed already (states from the previous build).
    resume: usize,
    blocks: Vec<(u64, u64)>,
    manifest: Manifest,
}

impl Outputs {
    fn create(source: &IndexSource<'_>, resume: usize, previous: &Manifest) -> io::Result<Outputs> {
        let hashers = if resume == 0 {
            let mut xz = MultiHasher::default();
            xz.update(&XZ_HEADER);
            [MultiHasher::default(), MultiHasher::default(), xz]
        } else {
            previous.chunks[resume - 1].states.clone()
        };
        let plain = if source.write_plain {
            Some(temp_file(source.temp_dir, "plain")?)
        } else {
            None
        };
        let mut xz = temp_file(source.temp_dir, "xz")?;
        xz.0.write_all(&XZ_HEADER)?;
        Ok(Outputs {
            plain,
            gzip: temp_file(source.temp_dir, "gz")?,
            xz,
            hashers,
            resume,
            blocks: Vec::new(),
            manifest: Manifest::default(),
        })
    }

    /// Appends chunk `index`; hashes it unless the previous build already did.
    fn append(
        &mut self,
        index: usize,
        chunk: &Chunk,
        compressed: &CompressedChunk,
        text: Option<&str>,
        previous: &Manifest,
    ) -> io::Result<()> {
        if let (Some((file, _)), Some(text)) = (&mut self.plain, text) {
            file.write_all(text.as_bytes())?;
        }
        self.gzip.0.write_all(&compressed.gzip)?;
        self.xz.0.write_all(&compressed.xz.bytes)?;
        if !compressed.xz.bytes.is_empty() {
            self.blocks
                .push((compressed.xz.unpadded_size, compressed.xz.uncompressed_size));
        }
        let states = if index < self.resume {
            previous.chunks[index].states.clone()
        } else {
            self.hashers[0].update(text.unwrap_or_default().as_bytes());
            self.hashers[1].update(&compressed.gzip);
            self.hashers[2].update(&compressed.xz.bytes);
            self.hashers.clone()
        };
        self.manifest.chunks.push(ManifestChunk {
            key: chunk.key,
            states,
        });
        Ok(())
    }

    fn finish(mut self) -> io::Result<BuiltIndex> {
        let tail = xz_footer(&self.blocks);
        self.xz.0.write_all(&tail)?;
        self.hashers[2].update(&tail);
        let sums = [
            self.hashers[0].finish(),
            self.hashers[1].finish(),
            self.hashers[2].finish(),
        ];
        self.manifest.sums = Some(sums.clone());
        let plain = match self.plain {
            Some((file, path)) => Some(close(file, path)?),
            None => None,
        };
        Ok(BuiltIndex {
            sums,
            temps: [
                plain,
                Some(close(self.gzip.0, self.gzip.1)?),
                Some(close(self.xz.0, self.xz.1)?),
            ],
            manifest: self.manifest,
        })
    }
}

fn temp_file(dir: &Path, what: &str) -> io::Result<(BufWriter<File>, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!(".build-{}-{n}-{what}", std::process::id()));
    Ok((
        BufWriter::with_capacity(1 << 20, File::create(&path)?),
        path,
    ))
}

fn close(file: BufWriter<File>, path: PathBuf) -> io::Result<PathBuf> {
    file.into_inner().map_err(|e| e.into_error())?;
    Ok(path)
}
