//! Index chunks: how an index is cut, what names a chunk, and the
//! per-index manifests that make publishing incremental.
//!
//! A chunk is a run of consecutive stanzas. It ends after a package whose
//! SHA-256 starts with a value divisible by [`CHUNK_STANZAS`], or with its
//! section (see [`Section`]), so adding a package changes one chunk and
//! leaves the others byte-identical. A chunk is named by what determines
//! its text (package ids and components), so the chunks of a run of
//! `Architecture: all` packages have the same names in every index.
//!
//! Compressed chunks are not cached apart: the previous publication's
//! `Packages.gz` (gzip members) and `Packages.xz` (xz blocks) already hold
//! every one of them, and its manifest says where. Reading them back from
//! the by-hash store keeps each byte of index stored once. The manifest is
//! only an accelerator: a missing manifest or file means recompressing.
//! Each chunk was decoded and compared with its text when it was made, and
//! the manifest keeps a CRC of its bytes: a chunk read back that no longer
//! matches it was damaged on disk, and the publish stops ([`DamagedChunk`])
//! rather than put it in a new index.

use super::checksums::{HexDigests, MultiHasher};
use super::compress::{XZ_HEADER, XzBlock};
use super::index::Section;
use crate::catalog::IndexEntry;
use sha2::{Digest, Sha256};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Average number of stanzas per chunk: about 200 KB of Debian's own index
/// text. Each chunk is an independent xz block and gzip member, so larger
/// chunks compress better, and every publish that changes a chunk
/// compresses all of it again (see the README for the measured trade-off).
pub const CHUNK_STANZAS: u32 = 256;

/// A chunk: a range of an index's entries and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    pub key: [u8; 32],
    /// Part of a run that every architecture's index has (see [`Section`]).
    pub shared: bool,
}

/// Cuts an index's entries into chunks at content-defined boundaries,
/// section by section (a chunk never straddles two sections). `format`
/// says how the chunks' text is written and compressed (it is part of
/// their names). An empty index is one empty chunk, so every index has a
/// gzip member.
pub fn cut(entries: &[&IndexEntry], sections: &[Section], format: &[u8]) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut section_start = 0;
    for section in sections {
        for i in section_start..section.end {
            if ends_chunk(entries[i].sha256_head) || i + 1 == section.end {
                chunks.push(Chunk {
                    start,
                    end: i + 1,
                    key: chunk_key(&entries[start..=i], format),
                    shared: section.shared,
                });
                start = i + 1;
            }
        }
        section_start = section.end;
    }
    if chunks.is_empty() {
        chunks.push(Chunk {
            start: 0,
            end: 0,
            key: chunk_key(&[], format),
            shared: false,
        });
    }
    chunks
}

fn ends_chunk(sha256_head: Option<u32>) -> bool {
    sha256_head.is_some_and(|h| h % CHUNK_STANZAS == 0)
}

/// A chunk's text is a function of its packages' ids and components (a
/// package's control data and checksums never change), and of the stanza
/// format; its compressed forms also of the compression levels. Both are
/// in `format`, and the version of what bess writes is part of the name.
fn chunk_key(entries: &[&IndexEntry], format: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"bess-chunk-v2\0");
    hasher.update((format.len() as u64).to_le_bytes());
    hasher.update(format);
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

/// The compressed chunks of an index's previous publication, read back
/// from its published files.
#[derive(Debug, Default)]
pub struct PublishedChunks {
    files: Option<[StoredFile; 2]>,
    at: std::collections::HashMap<[u8; 32], Location>,
}

/// A published `Packages.gz` or `Packages.xz` whose chunks are reused.
#[derive(Debug)]
struct StoredFile {
    file: fs::File,
    path: PathBuf,
}

/// Where a chunk's gzip member and xz block are in the published files.
#[derive(Debug, Clone, Copy)]
struct Location {
    number: usize,
    gzip_offset: u64,
    xz_offset: u64,
    sizes: ChunkSizes,
}

/// A stored chunk whose bytes are not the ones it was published with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedChunk {
    /// Its number in the published index, from 0.
    pub number: usize,
    /// `Packages.gz` or `Packages.xz`.
    pub kind: &'static str,
    /// The published file it was read from, and its bytes there.
    pub path: PathBuf,
    pub range: std::ops::Range<u64>,
}

impl std::fmt::Display for DamagedChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "chunk {} of the published {} (bytes {}..{} of {}) no longer matches the CRC \
             recorded when it was published: the file was damaged on disk",
            self.number,
            self.kind,
            self.range.start,
            self.range.end,
            self.path.display()
        )
    }
}

impl std::error::Error for DamagedChunk {}

impl PublishedChunks {
    /// The chunks of `previous`, whose files are in the by-hash store
    /// `by_hash_dir` (`<index dir>` of the dist's store); none when the
    /// files are gone or are not the ones the manifest describes.
    pub fn open(previous: &Manifest, by_hash_dir: &Path) -> PublishedChunks {
        let Some(sums) = &previous.sums else {
            return PublishedChunks::default();
        };
        let open = |s: &HexDigests| {
            let path = by_hash_dir.join("SHA256").join(&s.sha256);
            let file = fs::File::open(&path).ok()?;
            let size = file.metadata().ok()?.len();
            (size == s.size).then_some(StoredFile { file, path })
        };
        let (Some(gzip), Some(xz)) = (open(&sums[1]), open(&sums[2])) else {
            return PublishedChunks::default();
        };
        let (mut gzip_offset, mut xz_offset) = (0, XZ_HEADER.len() as u64);
        let mut at = std::collections::HashMap::with_capacity(previous.chunks.len());
        for (number, chunk) in previous.chunks.iter().enumerate() {
            let sizes = chunk.sizes;
            at.insert(
                chunk.key,
                Location {
                    number,
                    gzip_offset,
                    xz_offset,
                    sizes,
                },
            );
            gzip_offset += sizes.gzip;
            xz_offset += sizes.xz;
        }
        PublishedChunks {
            files: Some([gzip, xz]),
            at,
        }
    }

    /// The chunk named `key`, if the previous publication has it; an error
    /// if its bytes there are not the ones that were published.
    pub fn get(&self, key: &[u8; 32]) -> Result<Option<CompressedChunk>, DamagedChunk> {
        let (Some([gzip_file, xz_file]), Some(at)) = (&self.files, self.at.get(key)) else {
            return Ok(None);
        };
        let sizes = at.sizes;
        let read = |file: &StoredFile, kind, offset, len, crc| {
            let range = offset..offset + len;
            read_range(&file.file, &range)
                .filter(|bytes| crc32(bytes) == crc)
                .ok_or_else(|| DamagedChunk {
                    number: at.number,
                    kind,
                    path: file.path.clone(),
                    range,
                })
        };
        let gzip = read(
            gzip_file,
            "Packages.gz",
            at.gzip_offset,
            sizes.gzip,
            sizes.gzip_crc,
        )?;
        let xz = read(xz_file, "Packages.xz", at.xz_offset, sizes.xz, sizes.xz_crc)?;
        Ok(Some(CompressedChunk {
            plain_len: sizes.plain,
            gzip,
            xz: XzBlock {
                bytes: xz,
                unpadded_size: sizes.xz_unpadded,
                uncompressed_size: sizes.plain,
            },
        }))
    }
}

/// The bytes of `range` in `file` (`None` when the file is shorter).
fn read_range(file: &fs::File, range: &std::ops::Range<u64>) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0; usize::try_from(range.end - range.start).ok()?];
    file.read_exact_at(&mut bytes, range.start).ok()?;
    Some(bytes)
}

/// CRC-32 of a chunk's compressed form, to notice damage before reuse.
fn crc32(bytes: &[u8]) -> u32 {
    let mut check = flate2::Crc::new();
    check.update(bytes);
    check.sum()
}

/// How long a chunk is in each file, and the CRCs of its bytes there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkSizes {
    pub plain: u64,
    pub gzip: u64,
    pub xz: u64,
    /// The xz block's unpadded size, for the stream index.
    pub xz_unpadded: u64,
    pub gzip_crc: u32,
    pub xz_crc: u32,
}

impl ChunkSizes {
    /// The sizes and CRC of a compressed chunk.
    pub fn of(chunk: &CompressedChunk) -> ChunkSizes {
        ChunkSizes {
            plain: chunk.plain_len,
            gzip: chunk.gzip.len() as u64,
            xz: chunk.xz.bytes.len() as u64,
            xz_unpadded: chunk.xz.unpadded_size,
            gzip_crc: crc32(&chunk.gzip),
            xz_crc: crc32(&chunk.xz.bytes),
        }
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
    pub sizes: ChunkSizes,
}

/// Version 2 added chunk sizes, version 3 liblzma's and zlib's chunks and
/// RustCrypto's hash states; an older manifest reads as empty, so the
/// first publish after an upgrade compresses every chunk again, once.
const MANIFEST_MAGIC: &[u8; 8] = b"BESSMAN3";

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
            let sizes = ChunkSizes {
                plain: r.u64()?,
                gzip: r.u64()?,
                xz: r.u64()?,
                xz_unpadded: r.u64()?,
                gzip_crc: u32::try_from(r.u64()?).ok()?,
                xz_crc: u32::try_from(r.u64()?).ok()?,
            };
            chunks.push(ManifestChunk { key, states, sizes });
        }
        let sums = match r.u64()? {
            0 => None,
            _ => Some([read_sums(&mut r)?, read_sums(&mut r)?, read_sums(&mut r)?]),
        };
        Some(Manifest { chunks, sums })
    }

    /// Writes the manifest (best effort: without it the next publish
    /// recompresses).
    pub fn save(&self, path: &Path) {
        let mut body = Vec::new();
        put_u64(&mut body, self.chunks.len() as u64);
        for chunk in &self.chunks {
            put_bytes(&mut body, &chunk.key);
            for state in &chunk.states {
                put_bytes(&mut body, &state.to_bytes());
            }
            let sizes = chunk.sizes;
            for value in [sizes.plain, sizes.gzip, sizes.xz, sizes.xz_unpadded] {
                put_u64(&mut body, value);
            }
            put_u64(&mut body, u64::from(sizes.gzip_crc));
            put_u64(&mut body, u64::from(sizes.xz_crc));
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
    let dir = path.parent().expect("manifest paths have a parent");
    fs::create_dir_all(dir)?;
    let mut check = flate2::Crc::new();
    check.update(body);
    let mut bytes = Vec::with_capacity(body.len() + 12);
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&check.sum().to_le_bytes());
    bytes.extend_from_slice(body);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("manifest");
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = fs::write(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        // A manifest is a cache: the next publish does without it, but a
        // half-written temp would stay on a disk that is already full.
        let _ = fs::remove_file(&temp);
    }
    written
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
    use crate::config::Checksum;

    const FORMAT: &[u8] = b"test";

    fn entry(id: i64, sha256_head: u32) -> IndexEntry {
        IndexEntry {
            id,
            arch: "amd64".into(),
            component: "main".into(),
            sha256_head: Some(sha256_head),
        }
    }

    #[test]
    fn appending_keeps_earlier_chunks() {
        let entries: Vec<IndexEntry> = (0..2000)
            .map(|i| entry(i, (i as u32).wrapping_mul(2_654_435_761)))
            .collect();
        let refs: Vec<&IndexEntry> = entries.iter().collect();
        let whole = |end| [Section { end, shared: false }];
        let before = cut(&refs[..1999], &whole(1999), FORMAT);
        let after = cut(&refs, &whole(2000), FORMAT);
        assert!(before.len() > 3, "several chunks: {}", before.len());
        let same = before
            .iter()
            .zip(&after)
            .take_while(|(a, b)| a == b)
            .count();
        assert!(same >= before.len() - 1, "only the last chunk may change");
        assert_eq!(after.last().unwrap().end, 2000);
    }

    #[test]
    fn empty_index_is_one_empty_chunk() {
        let chunks = cut(&[], &[], FORMAT);
        assert_eq!(chunks.len(), 1);
        assert_eq!((chunks[0].start, chunks[0].end), (0, 0));
    }

    #[test]
    fn chunks_end_with_their_section_and_carry_its_sharing() {
        // No content-defined boundary at all: only the sections cut.
        let entries: Vec<IndexEntry> = (0..10).map(|i| entry(i, 1)).collect();
        let refs: Vec<&IndexEntry> = entries.iter().collect();
        let sections = [
            Section {
                end: 4,
                shared: false,
            },
            Section {
                end: 10,
                shared: true,
            },
        ];
        let chunks = cut(&refs, &sections, FORMAT);
        assert_ne!(
            cut(&refs, &sections, b"other")[0].key,
            chunks[0].key,
            "the format names chunks"
        );
        let spans: Vec<(usize, usize, bool)> =
            chunks.iter().map(|c| (c.start, c.end, c.shared)).collect();
        assert_eq!(spans, [(0, 4, false), (4, 10, true)]);
        // The shared run is named by its packages alone, wherever it sits.
        let alone = cut(
            &refs[4..],
            &[Section {
                end: 6,
                shared: true,
            }],
            FORMAT,
        );
        assert_eq!(alone[0].key, chunks[1].key);
    }

    #[test]
    fn published_chunks_are_read_back_and_damage_is_named() {
        use super::super::compress::{Levels, compress_chunk, xz_footer};
        let dir = tempfile::tempdir().unwrap();
        let texts = ["Package: a\n\n".repeat(50), "Package: b\n\n".repeat(70)];
        let levels = Levels {
            xz_preset: 1,
            gzip_level: 1,
        };
        let compressed: Vec<CompressedChunk> = texts
            .iter()
            .map(|t| compress_chunk(t.as_bytes(), levels).unwrap())
            .collect();
        let (mut gzip, mut xz) = (Vec::new(), XZ_HEADER.to_vec());
        let mut chunks = Vec::new();
        for (i, c) in compressed.iter().enumerate() {
            gzip.extend_from_slice(&c.gzip);
            xz.extend_from_slice(&c.xz.bytes);
            chunks.push(ManifestChunk {
                key: [i as u8; 32],
                states: Default::default(),
                sizes: ChunkSizes::of(c),
            });
        }
        let blocks: Vec<(u64, u64)> = compressed
            .iter()
            .map(|c| (c.xz.unpadded_size, c.xz.uncompressed_size))
            .collect();
        xz.extend_from_slice(&xz_footer(&blocks));
        let digest = |data: &[u8]| {
            let mut hasher = MultiHasher::new(&[Checksum::Sha256]);
            hasher.update(data);
            hasher.finish()
        };
        let store = |data: &[u8]| {
            let sums = digest(data);
            std::fs::create_dir_all(dir.path().join("SHA256")).unwrap();
            std::fs::write(dir.path().join("SHA256").join(&sums.sha256), data).unwrap();
            sums
        };
        let sums = [digest(b""), store(&gzip), store(&xz)];
        let manifest = Manifest {
            chunks,
            sums: Some(sums.clone()),
        };
        let published = PublishedChunks::open(&manifest, dir.path());
        assert_eq!(published.get(&[1; 32]), Ok(Some(compressed[1].clone())));
        assert_eq!(published.get(&[0; 32]), Ok(Some(compressed[0].clone())));
        assert_eq!(published.get(&[9; 32]), Ok(None));

        // A flipped byte inside chunk 0's gzip member: that chunk is named.
        gzip[10] ^= 1;
        let gzip_path = dir.path().join("SHA256").join(&sums[1].sha256);
        std::fs::write(&gzip_path, &gzip).unwrap();
        let published = PublishedChunks::open(&manifest, dir.path());
        let damage = published.get(&[0; 32]).unwrap_err();
        let expected = DamagedChunk {
            number: 0,
            kind: "Packages.gz",
            path: gzip_path,
            range: 0..compressed[0].gzip.len() as u64,
        };
        assert_eq!(damage, expected);
        assert!(damage.to_string().contains("damaged on disk"), "{damage}");
        assert!(published.get(&[1; 32]).unwrap().is_some());
    }

    #[test]
    fn a_manifest_of_an_earlier_version_reads_as_empty() {
        // What the bess with its own encoder left: its chunks and hash
        // states are never resumed, so the first publish recompresses all.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let manifest = Manifest {
            chunks: Vec::new(),
            sums: Some(Default::default()),
        };
        manifest.save(&path);
        assert_eq!(Manifest::load(&path), manifest);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..8].copy_from_slice(b"BESSMAN2");
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(Manifest::load(&path), Manifest::default());
    }

    #[test]
    fn manifest_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let mut state = MultiHasher::new(&Checksum::ALL);
        state.update(b"hello");
        let empty = MultiHasher::new(&[Checksum::Md5, Checksum::Sha256]);
        let manifest = Manifest {
            chunks: vec![ManifestChunk {
                key: [1; 32],
                states: [state.clone(), empty.clone(), state.clone()],
                sizes: ChunkSizes {
                    plain: 5,
                    gzip: 3,
                    xz: 4,
                    xz_unpadded: 2,
                    gzip_crc: 0xdead_beef,
                    xz_crc: 7,
                },
            }],
            sums: Some([state.finish(), state.finish(), empty.finish()]),
        };
        manifest.save(&path);
        assert_eq!(Manifest::load(&path), manifest);
        assert_eq!(
            Manifest::load(&dir.path().join("missing")),
            Manifest::default()
        );
    }
}
