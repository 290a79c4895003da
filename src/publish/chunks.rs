//! Index chunks: how an index is cut, what names a chunk, and the cache of
//! compressed chunks and per-index manifests that makes publishing
//! incremental.
//!
//! A chunk is a run of consecutive stanzas. It ends after a package whose
//! SHA-256 starts with a value divisible by [`CHUNK_STANZAS`], so adding a
//! package changes one chunk and leaves the others byte-identical. A chunk
//! is named by what determines its text (package ids and components), so a
//! cached compressed chunk is valid for as long as its name matches. The
//! cache is only an accelerator: entries carry a CRC and a bad one is
//! recomputed, so a crash while writing it costs time, never correctness.

use super::checksums::{HexDigests, MultiHasher};
use super::compress::XzBlock;
use crate::catalog::IndexEntry;
use sha2::{Digest, Sha256};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Average number of stanzas per chunk (about 100 KiB of index text).
pub const CHUNK_STANZAS: u32 = 64;

/// A chunk: a range of an index's entries and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    pub key: [u8; 32],
}

/// Cuts an index's entries into chunks at content-defined boundaries.
/// An empty index is one empty chunk, so every index has a gzip member.
pub fn cut(entries: &[&IndexEntry]) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut start = 0;
    for (i, entry) in entries.iter().enumerate() {
        if ends_chunk(&entry.sha256) || i + 1 == entries.len() {
            chunks.push(Chunk {
                start,
                end: i + 1,
                key: chunk_key(&entries[start..=i]),
            });
            start = i + 1;
        }
    }
    if chunks.is_empty() {
        chunks.push(Chunk {
            start: 0,
            end: 0,
            key: chunk_key(&[]),
        });
    }
    chunks
}

fn ends_chunk(sha256_hex: &str) -> bool {
    let head = sha256_hex
        .get(..8)
        .and_then(|h| u32::from_str_radix(h, 16).ok());
    head.is_some_and(|h| h % CHUNK_STANZAS == 0)
}

/// A chunk's text is a function of its packages' ids and components (a
/// package's control data and checksums never change), and of the stanza
/// format, whose version is part of the name.
fn chunk_key(entries: &[&IndexEntry]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"bess-chunk-v1\0");
    for entry in entries {
        hasher.update(entry.id.to_le_bytes());
        hasher.update(entry.component.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().into()
}

/// One chunk compressed both ways, as stored in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedChunk {
    /// Length of the chunk's text.
    pub plain_len: u64,
    /// A complete gzip member.
    pub gzip: Vec<u8>,
    pub xz: XzBlock,
}

/// Compressed chunks on disk, named by chunk key.
#[derive(Debug, Clone)]
pub struct ChunkCache {
    dir: PathBuf,
}

const CHUNK_MAGIC: &[u8; 8] = b"BESSCHK1";

impl ChunkCache {
    /// The cache under `dir`.
    pub fn new(dir: PathBuf) -> ChunkCache {
        ChunkCache { dir }
    }

    fn path(&self, key: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(key);
        self.dir.join("chunks").join(&hex[..2]).join(hex)
    }

    /// The cached chunk, if present and intact.
    pub fn get(&self, key: &[u8; 32]) -> Option<CompressedChunk> {
        let bytes = fs::read(self.path(key)).ok()?;
        let body = checked_body(&bytes, CHUNK_MAGIC)?;
        let mut r = Fields(body);
        let plain_len = r.u64()?;
        let gzip = r.bytes()?.to_vec();
        let unpadded_size = r.u64()?;
        let uncompressed_size = r.u64()?;
        let xz = r.bytes()?.to_vec();
        Some(CompressedChunk {
            plain_len,
            gzip,
            xz: XzBlock {
                bytes: xz,
                unpadded_size,
                uncompressed_size,
            },
        })
    }

    /// Stores a chunk (best effort: a cache that cannot be written only
    /// makes the next publish slower).
    pub fn put(&self, key: &[u8; 32], chunk: &CompressedChunk) {
        let mut body = Vec::with_capacity(chunk.gzip.len() + chunk.xz.bytes.len() + 64);
        put_u64(&mut body, chunk.plain_len);
        put_bytes(&mut body, &chunk.gzip);
        put_u64(&mut body, chunk.xz.unpadded_size);
        put_u64(&mut body, chunk.xz.uncompressed_size);
        put_bytes(&mut body, &chunk.xz.bytes);
        let _ = write_checked(&self.path(key), CHUNK_MAGIC, &body);
    }

    /// Deletes cached chunks no manifest under the cache refers to.
    pub fn prune(&self, keep: &std::collections::HashSet<[u8; 32]>) -> io::Result<()> {
        let root = self.dir.join("chunks");
        for entry in walkdir::WalkDir::new(&root)
            .min_depth(2)
            .max_depth(2)
            .into_iter()
            .flatten()
        {
            let name = entry.file_name().to_str().unwrap_or_default();
            let mut key = [0u8; 32];
            let known = hex::decode_to_slice(name, &mut key).is_ok() && keep.contains(&key);
            if !known {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
}

/// What a publication of one index left behind, to resume the next one:
/// its chunks, their sizes, and the three hash states after each chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub chunks: Vec<ManifestChunk>,
    /// Final sums of the uncompressed, gzip and xz files.
    pub sums: Option<[HexDigests; 3]>,
}

/// One chunk of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestChunk {
    pub key: [u8; 32],
    /// Hash states of the uncompressed, gzip and xz streams after this chunk.
    pub states: [MultiHasher; 3],
}

const MANIFEST_MAGIC: &[u8; 8] = b"BESSMAN1";

impl Manifest {
    /// Reads a manifest; a missing or damaged one reads as empty.
    pub fn load(path: &Path) -> Manifest {
        fs::read(path)
            .ok()
            .and_then(|bytes| Manifest::decode(checked_body(&bytes, MANIFEST_MAGIC)?))
            .unwrap_or_default()
    }

    fn decode(body: &[u8]) -> Option<Manifest> {
        let mut r = Fields(body);
        let count = r.u64()? as usize;
        let mut chunks = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            let key: [u8; 32] = r.bytes()?.try_into().ok()?;
            let mut state = || MultiHasher::from_bytes(r.bytes()?);
            let states = [state()?, state()?, state()?];
            chunks.push(ManifestChunk { key, states });
        }
        let sums = match r.u64()? {
            0 => None,
            _ => Some([read_sums(&mut r)?, read_sums(&mut r)?, read_sums(&mut r)?]),
        };
        Some(Manifest { chunks, sums })
    }

    /// Writes the manifest (best effort, like the chunk cache).
    pub fn save(&self, path: &Path) {
        let mut body = Vec::new();
        put_u64(&mut body, self.chunks.len() as u64);
        for chunk in &self.chunks {
            put_bytes(&mut body, &chunk.key);
            for state in &chunk.states {
                put_bytes(&mut body, &state.to_bytes());
            }
        }
        match &self.sums {
            None => put_u64(&mut body, 0),
            Some(sums) => {
                put_u64(&mut body, 1);
                sums.iter().for_each(|s| write_sums(&mut body, s));
            }
        }
        let _ = write_checked(path, MANIFEST_MAGIC, &body);
    }
}

fn write_sums(out: &mut Vec<u8>, sums: &HexDigests) {
    put_u64(out, sums.size);
    for text in [&sums.md5, &sums.sha1, &sums.sha256, &sums.sha512] {
        put_bytes(out, text.as_bytes());
    }
}

fn read_sums(r: &mut Fields<'_>) -> Option<HexDigests> {
    let size = r.u64()?;
    let mut text = || String::from_utf8(r.bytes()?.to_vec()).ok();
    Some(HexDigests {
        size,
        md5: text()?,
        sha1: text()?,
        sha256: text()?,
        sha512: text()?,
    })
}

/// The body after a magic and a CRC32 that must match it.
fn checked_body<'a>(bytes: &'a [u8], magic: &[u8; 8]) -> Option<&'a [u8]> {
    let rest = bytes.strip_prefix(magic.as_slice())?;
    let (crc, body) = rest.split_at_checked(4)?;
    let mut check = flate2::Crc::new();
    check.update(body);
    (check.sum().to_le_bytes() == crc).then_some(body)
}

fn write_checked(path: &Path, magic: &[u8; 8], body: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("cache paths have a parent");
    fs::create_dir_all(dir)?;
    let mut check = flate2::Crc::new();
    check.update(body);
    let mut bytes = Vec::with_capacity(body.len() + 12);
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&check.sum().to_le_bytes());
    bytes.extend_from_slice(body);
    let temp = dir.join(format!(".tmp-{}", std::process::id()));
    fs::write(&temp, bytes)?;
    fs::rename(&temp, path)
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads the fields written by `put_u64`/`put_bytes`.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_at_checked(8)?;
        self.0 = rest;
        Some(u64::from_le_bytes(head.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u64()?).ok()?;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, sha: &str) -> IndexEntry {
        IndexEntry {
            id,
            name: format!("p{id}"),
            version: "1".into(),
            arch: "amd64".into(),
            component: "main".into(),
            pool_name: String::new(),
            size: 0,
            md5: String::new(),
            sha1: String::new(),
            sha256: sha.into(),
            sha512: String::new(),
        }
    }

    #[test]
    fn appending_keeps_earlier_chunks() {
        let entries: Vec<IndexEntry> = (0..500)
            .map(|i| {
                entry(
                    i,
                    &format!("{:08x}", (i as u32).wrapping_mul(2_654_435_761)),
                )
            })
            .collect();
        let refs: Vec<&IndexEntry> = entries.iter().collect();
        let before = cut(&refs[..499]);
        let after = cut(&refs);
        assert!(before.len() > 3, "several chunks: {}", before.len());
        let same = before
            .iter()
            .zip(&after)
            .take_while(|(a, b)| a == b)
            .count();
        assert!(same >= before.len() - 1, "only the last chunk may change");
        assert_eq!(after.last().unwrap().end, 500);
    }

    #[test]
    fn empty_index_is_one_empty_chunk() {
        let chunks = cut(&[]);
        assert_eq!(chunks.len(), 1);
        assert_eq!((chunks[0].start, chunks[0].end), (0, 0));
    }

    #[test]
    fn cache_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ChunkCache::new(dir.path().to_path_buf());
        let chunk = CompressedChunk {
            plain_len: 5,
            gzip: vec![1, 2, 3],
            xz: XzBlock {
                bytes: vec![4, 5, 6, 7],
                unpadded_size: 3,
                uncompressed_size: 5,
            },
        };
        let key = [7u8; 32];
        cache.put(&key, &chunk);
        assert_eq!(cache.get(&key), Some(chunk));
        let path = cache.path(&key);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert_eq!(cache.get(&key), None, "a damaged entry is a miss");
    }

    #[test]
    fn manifest_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let mut state = MultiHasher::default();
        state.update(b"hello");
        let manifest = Manifest {
            chunks: vec![ManifestChunk {
                key: [1; 32],
                states: [state.clone(), MultiHasher::default(), state.clone()],
            }],
            sums: Some([
                state.finish(),
                state.finish(),
                MultiHasher::default().finish(),
            ]),
        };
        manifest.save(&path);
        assert_eq!(Manifest::load(&path), manifest);
        assert_eq!(
            Manifest::load(&dir.path().join("missing")),
            Manifest::default()
        );
    }
}
