//! Building one index's files (`Packages`, `.gz`, `.xz`) chunk by chunk.
//!
//! Chunks stream through in windows: the ones that need text are rendered
//! and compressed in parallel, then every chunk is appended to the output
//! files in order. Hashing resumes from the last chunk the previous
//! publication shares with this one, and compressed chunks come from the
//! cache, so adding one package to a large index re-renders, recompresses
//! and rehashes only the tail.

use super::checksums::{HexDigests, MultiHasher};
use super::chunks::{
    Chunk, ChunkSizes, CompressedChunk, Manifest, ManifestChunk, PublishedChunks, cut,
};
use super::compress::{Levels, XZ_HEADER, compress_chunk, verify_chunk, xz_footer};
use super::index::{Section, render};
use crate::catalog::{IndexEntry, StanzaParts};
use crate::config::Checksum;
use crate::pool::EagerWriteback;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Chunks whose stanza parts are read from the catalog in one query
/// (about 2,000 stanzas).
const WINDOW: usize = 8;

/// Fetches what packages' stanzas are rendered from, by package id.
pub type Stanzas<'a> = dyn Fn(&[i64]) -> io::Result<HashMap<i64, StanzaParts>> + 'a;

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

/// Chunks of `Architecture: all` runs compressed during this publication.
/// Every architecture's index has the same runs, cut into the same chunks.
/// The indices are built at the same time, and whichever reaches a shared
/// chunk first compresses it for all of them; the others take it from here
/// (or wait for it if it is being compressed). Only the compressed forms
/// are kept (a quarter of the text's size): the text is inflated again.
#[derive(Default)]
pub struct SharedChunks(Mutex<HashMap<[u8; 32], Arc<SharedSlot>>>);

/// A shared chunk once compressed and verified, or why it could not be.
type SharedSlot = OnceLock<Result<CompressedChunk, String>>;

impl SharedChunks {
    fn slot(&self, key: &[u8; 32]) -> Arc<SharedSlot> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(*key)
            .or_default()
            .clone()
    }
}

/// Where and how to build.
pub struct IndexSource<'a> {
    /// `<component>/binary-<arch>`, to name the index in errors.
    pub dir: &'a str,
    pub entries: &'a [&'a IndexEntry],
    /// Runs of `entries` that chunks never straddle.
    pub sections: &'a [Section],
    pub stanzas: &'a Stanzas<'a>,
    /// The previous publication's compressed chunks.
    pub published: &'a PublishedChunks,
    /// Directory for temp files (on the publication's filesystem).
    pub temp_dir: &'a Path,
    /// Whether to write the uncompressed `Packages` too.
    pub write_plain: bool,
    /// Where chunks of shared runs are kept for the other architectures'
    /// indices (none when the dist has one architecture).
    pub shared: Option<&'a SharedChunks>,
    /// The checksums each stanza lists.
    pub hashes: &'a [Checksum],
    pub levels: Levels,
    /// Compress again the previous publication's chunks that were damaged
    /// on disk, instead of refusing to publish.
    pub repair: bool,
}

impl IndexSource<'_> {
    /// What the chunks' names depend on besides their packages: the stanza
    /// format and the compression.
    fn format(&self) -> Vec<u8> {
        let hashes: Vec<&str> = self.hashes.iter().map(|h| h.release_name()).collect();
        let levels = self.levels;
        format!(
            "hashes={};xz={};gz={}",
            hashes.join(","),
            levels.xz_preset,
            levels.gzip_level
        )
        .into_bytes()
    }

    /// The text of `chunk`, rendered from the catalog's `parts`.
    fn render(&self, chunk: &Chunk, parts: &HashMap<i64, StanzaParts>) -> String {
        render(&self.entries[chunk.start..chunk.end], parts, self.hashes)
    }
}

/// A chunk of the shared prefix could not be read back and compressed to
/// other bytes than before, so the saved hash states do not apply.
#[derive(Debug)]
struct StalePrefix;

impl std::fmt::Display for StalePrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a reused index chunk changed")
    }
}

impl std::error::Error for StalePrefix {}

/// Builds the files of one index, resuming from `previous` where it can
/// (and from nothing when what it resumed from turns out stale).
pub fn build_index(source: &IndexSource<'_>, previous: &Manifest) -> io::Result<BuiltIndex> {
    match build_resumed(source, previous) {
        Err(e) if e.get_ref().is_some_and(|inner| inner.is::<StalePrefix>()) => {
            build_resumed(source, &Manifest::default())
        }
        built => built,
    }
}

fn build_resumed(source: &IndexSource<'_>, previous: &Manifest) -> io::Result<BuiltIndex> {
    let chunks = cut(source.entries, source.sections, &source.format());
    if let Some(sums) = unchanged(&chunks, previous) {
        return Ok(BuiltIndex {
            sums,
            temps: [None, None, None],
            manifest: previous.clone(),
        });
    }
    let resume = shared_prefix(&chunks, previous, source.write_plain);
    let out = Outputs::create(source, resume, previous)?;
    // Three stages overlap: this thread reads the catalog and renders, the
    // rayon pool compresses, and a writer thread hashes and appends in
    // chunk order. No stage waits for a whole batch of another, so both
    // cores stay busy until the last chunk.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<(usize, io::Result<Prepared>)>();
    let (slot_tx, slot_rx) = std::sync::mpsc::sync_channel::<()>(IN_FLIGHT);
    std::thread::scope(|scope| {
        let chunks = &chunks;
        let writer = scope.spawn(move || -> io::Result<BuiltIndex> {
            let mut out = out;
            let mut waiting = std::collections::BTreeMap::new();
            let mut next = 0;
            for (index, prepared) in ready_rx {
                waiting.insert(index, prepared);
                while let Some(prepared) = waiting.remove(&next) {
                    let (compressed, text) = prepared?;
                    let chunk = &chunks[next];
                    let plain = text.as_deref().map(String::as_str);
                    out.append(next, chunk, &compressed, plain, previous)?;
                    let _ = slot_rx.try_recv();
                    next += 1;
                }
            }
            out.finish()
        });
        let produced = produce(source, chunks, resume, &ready_tx, &slot_tx);
        drop(ready_tx);
        let written = writer.join().expect("the index writer does not panic");
        produced.and(written)
    })
}

/// Chunks between rendering and writing at most: enough to keep both cores
/// compressing, and a bound on memory (about 200 KB of text each).
const IN_FLIGHT: usize = 16;

/// Renders every chunk that needs text, window by window, and hands it to
/// the compressing pool (or, when already compressed, straight to the writer).
fn produce(
    source: &IndexSource<'_>,
    chunks: &[Chunk],
    resume: usize,
    ready: &Ready,
    slots: &std::sync::mpsc::SyncSender<()>,
) -> io::Result<()> {
    for (w, window) in chunks.chunks(WINDOW).enumerate() {
        let first = w * WINDOW;
        let origins = window
            .iter()
            .enumerate()
            .map(|(i, c)| {
                origin(
                    source,
                    first + i,
                    c,
                    first + i >= resume || source.write_plain,
                )
            })
            .collect::<io::Result<Vec<Origin>>>()?;
        let rendered: Vec<bool> = origins
            .iter()
            .map(|o| matches!(o, Origin::Rendered(_)))
            .collect();
        let parts = window_parts(source, window, &rendered)?;
        for (i, (chunk, origin)) in window.iter().zip(origins).enumerate() {
            // A full set of chunks in flight: wait for the writer to take one.
            if slots.send(()).is_err() {
                return Ok(()); // the writer failed; its error is reported
            }
            let index = first + i;
            match origin {
                Origin::Compressed(compressed, text) => {
                    let _ = ready.send((index, Ok((compressed, text))));
                }
                Origin::Rendered(slot) => {
                    let text = Arc::new(source.render(chunk, &parts));
                    let job = Job {
                        index,
                        dir: source.dir.to_string(),
                        levels: source.levels,
                    };
                    compress_later(job, text, slot, ready);
                }
            }
        }
    }
    Ok(())
}

/// Where the writer receives chunks, by their number in the index.
type Ready = std::sync::mpsc::Sender<(usize, io::Result<Prepared>)>;

/// Where a chunk of the index being built comes from.
enum Origin {
    /// Compressed already, for another architecture's index of this
    /// publication or by the previous one; with its text when needed.
    Compressed(CompressedChunk, Option<Arc<String>>),
    /// Rendered from the catalog and compressed (once for every index
    /// that shares it, when it has a slot).
    Rendered(Option<Arc<SharedSlot>>),
}

/// The cheapest way to get chunk `number`, with its text if `needs_text`
/// (for hashing or writing the uncompressed index). Text is decompressed
/// from a gzip member rather than rendered again: inflating is far
/// cheaper than reading stanzas back from the catalog. A reused chunk
/// damaged on disk stops the build, unless repairing.
fn origin(
    source: &IndexSource<'_>,
    number: usize,
    chunk: &Chunk,
    needs_text: bool,
) -> io::Result<Origin> {
    let slot = source
        .shared
        .filter(|_| chunk.shared)
        .map(|s| s.slot(&chunk.key));
    let made = slot.as_ref().and_then(|s| s.get()?.as_ref().ok().cloned());
    let found = match made {
        Some(made) => Ok(Some(made)),
        None => source.published.get(&chunk.key),
    };
    let compressed = match found {
        Ok(Some(compressed)) => compressed,
        Ok(None) => return Ok(Origin::Rendered(slot)),
        Err(_) if source.repair => return Ok(Origin::Rendered(slot)),
        Err(damage) => return Err(refuse_damaged(source.dir, number, damage)),
    };
    if !needs_text {
        return Ok(Origin::Compressed(compressed, None));
    }
    match inflate(&compressed.gzip) {
        Some(text) if text.len() as u64 == compressed.plain_len => {
            Ok(Origin::Compressed(compressed, Some(Arc::new(text))))
        }
        _ => Ok(Origin::Rendered(slot)),
    }
}

/// The error that stops a publish reusing a damaged chunk: what is damaged,
/// that nothing was switched, and how to repair.
fn refuse_damaged(dir: &str, number: usize, damage: super::chunks::DamagedChunk) -> io::Error {
    io::Error::other(format!(
        "{dir}: chunk {number} of the new index would reuse {damage}; nothing was switched \
         (the dist still serves its current generation). Run `bess repo check`, then \
         `bess repo publish --refresh` to compress damaged chunks again from the catalog"
    ))
}

/// The text of one gzip member.
fn inflate(member: &[u8]) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(member)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// Stanza parts of the packages in the window's chunks that are rendered.
fn window_parts(
    source: &IndexSource<'_>,
    window: &[Chunk],
    rendered: &[bool],
) -> io::Result<HashMap<i64, StanzaParts>> {
    let ids: Vec<i64> = window
        .iter()
        .zip(rendered)
        .filter(|(_, rendered)| **rendered)
        .flat_map(|(c, _)| source.entries[c.start..c.end].iter().map(|e| e.id))
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    (source.stanzas)(&ids)
}

/// A chunk to compress: its number, its index and the levels.
struct Job {
    index: usize,
    dir: String,
    levels: Levels,
}

/// Compresses a rendered chunk on the pool and verifies it (unless another
/// index's build did or is doing it), then hands it to the writer.
fn compress_later(job: Job, text: Arc<String>, slot: Option<Arc<SharedSlot>>, ready: &Ready) {
    let ready = ready.clone();
    rayon::spawn(move || {
        let make = || compressed_and_verified(&job, &text);
        let made = match slot {
            // Blocks only while another build's task compresses this chunk.
            Some(slot) => slot.get_or_init(make).clone(),
            None => make(),
        };
        let prepared = made
            .map(|made| (made, Some(text)))
            .map_err(io::Error::other);
        let _ = ready.send((job.index, prepared));
    });
}

/// A chunk compressed with the libraries, and decoded again by them to
/// its exact text: what fails here is never published.
fn compressed_and_verified(job: &Job, text: &str) -> Result<CompressedChunk, String> {
    let why = |e: &dyn std::fmt::Display| {
        format!(
            "{}: chunk {} of the new index: {e}; nothing was published",
            job.dir, job.index
        )
    };
    let compressed = compress_chunk(text.as_bytes(), job.levels).map_err(|e| why(&e))?;
    verify_chunk(&compressed, text.as_bytes()).map_err(|fault| {
        why(&format_args!(
            "{fault}: the compressor's output does not give back the chunk's text"
        ))
    })?;
    Ok(compressed)
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

type Prepared = (CompressedChunk, Option<Arc<String>>);

/// The output files being written and their running hashes.
struct Outputs {
    plain: Option<(BufWriter<EagerWriteback>, PathBuf)>,
    gzip: (BufWriter<EagerWriteback>, PathBuf),
    xz: (BufWriter<EagerWriteback>, PathBuf),
    hashers: [MultiHasher; 3],
    /// Chunks before this one are hashed already (states from the previous build).
    resume: usize,
    blocks: Vec<(u64, u64)>,
    manifest: Manifest,
}

impl Outputs {
    fn create(source: &IndexSource<'_>, resume: usize, previous: &Manifest) -> io::Result<Outputs> {
        let hashers = if resume == 0 {
            let fresh = || MultiHasher::new(source.hashes);
            let mut xz = fresh();
            xz.update(&XZ_HEADER);
            [fresh(), fresh(), xz]
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
        let sizes = ChunkSizes::of(compressed);
        let states = if index < self.resume {
            // The saved hash states describe the previous bytes: a chunk
            // that had to be compressed again must have come out the same.
            if sizes != previous.chunks[index].sizes {
                return Err(io::Error::other(StalePrefix));
            }
            previous.chunks[index].states.clone()
        } else {
            let [plain, gzip, xz] = &mut self.hashers;
            plain.update(text.unwrap_or_default().as_bytes());
            gzip.update(&compressed.gzip);
            xz.update(&compressed.xz.bytes);
            self.hashers.clone()
        };
        self.manifest.chunks.push(ManifestChunk {
            key: chunk.key,
            states,
            sizes,
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

fn temp_file(dir: &Path, what: &str) -> io::Result<(BufWriter<EagerWriteback>, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!(".build-{}-{n}-{what}", std::process::id()));
    Ok((
        BufWriter::with_capacity(1 << 20, EagerWriteback::new(File::create(&path)?)),
        path,
    ))
}

fn close(file: BufWriter<EagerWriteback>, path: PathBuf) -> io::Result<PathBuf> {
    file.into_inner().map_err(|e| e.into_error())?.finish();
    Ok(path)
}
