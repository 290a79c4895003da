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
/// chunk first claims it and compresses it for all of them; the others
/// neither render nor compress it, and their writers wait for it. Only the
/// compressed forms are kept (a quarter of the text's size): the text is
/// inflated again.
#[derive(Default)]
pub struct SharedChunks(Mutex<HashMap<[u8; 32], Arc<SharedSlot>>>);

/// A shared chunk once compressed and verified, or why it could not be.
type SharedSlot = OnceLock<Result<CompressedChunk, String>>;

/// Who compresses a shared chunk.
enum Claim {
    /// This build: it fills the slot.
    Mine(Arc<SharedSlot>),
    /// Another build, which claimed it first.
    Theirs(Arc<SharedSlot>),
}

impl SharedChunks {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<SharedSlot>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The slot of a chunk some build claimed already.
    fn claimed(&self, key: &[u8; 32]) -> Option<Arc<SharedSlot>> {
        self.slots().get(key).cloned()
    }

    /// Claims a chunk for this build, unless another build did first.
    fn claim(&self, key: &[u8; 32]) -> Claim {
        match self.slots().entry(*key) {
            std::collections::hash_map::Entry::Occupied(e) => Claim::Theirs(e.get().clone()),
            std::collections::hash_map::Entry::Vacant(e) => {
                Claim::Mine(e.insert_entry(Default::default()).get().clone())
            }
        }
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

    /// What compressing chunk `index` of this index needs to know.
    fn job(&self, index: usize) -> Job {
        Job {
            index,
            dir: self.dir.to_string(),
            levels: self.levels,
        }
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
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<(usize, Piece)>();
    let (slot_tx, slot_rx) = std::sync::mpsc::sync_channel::<()>(IN_FLIGHT);
    std::thread::scope(|scope| {
        let chunks = &chunks;
        let writer = scope.spawn(move || -> io::Result<BuiltIndex> {
            let mut out = out;
            let mut waiting = std::collections::BTreeMap::new();
            let mut next = 0;
            for (index, piece) in ready_rx {
                waiting.insert(index, piece);
                while let Some(piece) = waiting.remove(&next) {
                    let (compressed, text) = piece.resolve(out.needs_text(next))?;
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
                let needs_text = first + i >= resume || source.write_plain;
                origin(source, first + i, c, needs_text)
            })
            .collect::<io::Result<Vec<Origin>>>()?;
        let rendered: Vec<bool> = origins
            .iter()
            .map(|o| matches!(o, Origin::Rendered))
            .collect();
        let parts = window_parts(source, window, &rendered)?;
        for (i, (chunk, origin)) in window.iter().zip(origins).enumerate() {
            // A full set of chunks in flight: wait for the writer to take one.
            if slots.send(()).is_err() {
                return Ok(()); // the writer failed; its error is reported
            }
            hand_over(source, (first + i, chunk), origin, &parts, ready);
        }
    }
    Ok(())
}

/// Sends chunk `index` to the writer, or renders it and sends it to be
/// compressed. A shared chunk is claimed only here, right before it is
/// compressed (never earlier: a build that claimed a chunk must be sure to
/// compress it, or another build's writer would wait forever).
fn hand_over(
    source: &IndexSource<'_>,
    (index, chunk): (usize, &Chunk),
    origin: Origin,
    parts: &HashMap<i64, StanzaParts>,
    ready: &Ready,
) {
    let claim = source
        .shared
        .filter(|_| chunk.shared && matches!(origin, Origin::Rendered))
        .map(|shared| shared.claim(&chunk.key));
    let piece = match (origin, claim) {
        (Origin::Compressed(compressed, text), _) => Piece::Ready(Ok((compressed, text))),
        (Origin::Shared(slot), _) | (Origin::Rendered, Some(Claim::Theirs(slot))) => {
            Piece::Shared(slot)
        }
        (Origin::Rendered, mine) => {
            // `Theirs` went to the arm above.
            let slot = match mine {
                Some(Claim::Mine(slot)) => Some(slot),
                _ => None,
            };
            let text = Arc::new(source.render(chunk, parts));
            return compress_later(source.job(index), text, slot, ready);
        }
    };
    let _ = ready.send((index, piece));
}

/// Where the writer receives chunks, by their number in the index.
type Ready = std::sync::mpsc::Sender<(usize, Piece)>;

/// A chunk as the writer receives it.
enum Piece {
    /// Compressed (or failed), with its text when it was rendered or needed.
    Ready(io::Result<Prepared>),
    /// Compressed by another index's build: the writer waits for it.
    Shared(Arc<SharedSlot>),
}

impl Piece {
    /// The chunk, with its text if `needs_text`.
    fn resolve(self, needs_text: bool) -> io::Result<Prepared> {
        let slot = match self {
            Piece::Ready(prepared) => return prepared,
            Piece::Shared(slot) => slot,
        };
        let compressed = slot.wait().clone().map_err(io::Error::other)?;
        if !needs_text {
            return Ok((compressed, None));
        }
        let text = inflate(&compressed.gzip)
            .ok_or_else(|| io::Error::other("a verified gzip member does not inflate"))?;
        Ok((compressed, Some(Arc::new(text))))
    }
}

/// Where a chunk of the index being built comes from.
enum Origin {
    /// Compressed by the previous publication; with its text when needed.
    Compressed(CompressedChunk, Option<Arc<String>>),
    /// Claimed by another index's build of this publication.
    Shared(Arc<SharedSlot>),
    /// To render from the catalog and compress (unless another build
    /// claims it first, when it is shared).
    Rendered,
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
    let shared = source.shared.filter(|_| chunk.shared);
    if let Some(slot) = shared.and_then(|s| s.claimed(&chunk.key)) {
        return Ok(Origin::Shared(slot));
    }
    let compressed = match source.published.get(&chunk.key) {
        Ok(Some(compressed)) => compressed,
        Ok(None) => return Ok(Origin::Rendered),
        Err(_) if source.repair => return Ok(Origin::Rendered),
        Err(damage) => return Err(refuse_damaged(source.dir, number, damage)),
    };
    if !needs_text {
        return Ok(Origin::Compressed(compressed, None));
    }
    match inflate(&compressed.gzip) {
        Some(text) if text.len() as u64 == compressed.plain_len => {
            Ok(Origin::Compressed(compressed, Some(Arc::new(text))))
        }
        _ => Ok(Origin::Rendered),
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

/// Compresses a rendered chunk on the pool and verifies it, fills the slot
/// of the other builds that share it, and hands it to the writer. No task
/// ever waits on the pool, so both cores keep compressing.
fn compress_later(job: Job, text: Arc<String>, slot: Option<Arc<SharedSlot>>, ready: &Ready) {
    let ready = ready.clone();
    rayon::spawn(move || {
        let made = compressed_and_verified(&job, &text);
        if let Some(slot) = slot {
            let _ = slot.set(made.clone());
        }
        let prepared = made
            .map(|made| (made, Some(text)))
            .map_err(io::Error::other);
        let _ = ready.send((job.index, Piece::Ready(prepared)));
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

    /// Whether chunk `index` is hashed here or written uncompressed, which
    /// takes its text.
    fn needs_text(&self, index: usize) -> bool {
        index >= self.resume || self.plain.is_some()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_claim_compresses_and_the_others_wait_for_its_slot() {
        let shared = SharedChunks::default();
        let key = [7; 32];
        assert!(shared.claimed(&key).is_none());
        let Claim::Mine(mine) = shared.claim(&key) else {
            panic!("the first claim is this build's");
        };
        let Claim::Theirs(theirs) = shared.claim(&key) else {
            panic!("a second claim is another build's");
        };
        assert!(Arc::ptr_eq(&mine, &theirs), "one slot for both");
        let waiter = std::thread::spawn(move || Piece::Shared(theirs).resolve(true));
        let text = "Package: a\n\n";
        let levels = Levels {
            xz_preset: 0,
            gzip_level: 1,
        };
        let _ = mine.set(Ok(compress_chunk(text.as_bytes(), levels).unwrap()));
        let (_, inflated) = waiter.join().unwrap().unwrap();
        assert_eq!(inflated.as_deref().map(String::as_str), Some(text));
        let _ = shared
            .claimed(&key)
            .expect("still there")
            .set(Err("late".into()));
    }
}
