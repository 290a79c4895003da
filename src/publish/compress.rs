//! Compressed indices made of independently compressed chunks.
//!
//! apt reads a `.gz` made of concatenated gzip members, and an `.xz` single
//! stream made of many blocks (but only the first of several streams). So a
//! `Packages` file is cut into chunks, each chunk compressed on its own (in
//! parallel, and cacheable), and the pieces are assembled into one valid
//! file: unchanged chunks never need compressing again.
//!
//! liblzma (through xz2) compresses a chunk into a one-block xz stream, and
//! the block is lifted out of it to join the others' in one stream; zlib-rs
//! (through flate2) makes the chunk's gzip member. bess writes only the
//! stream's header and index around the blocks. Every chunk compressed is
//! decoded again by the same libraries and compared with its text
//! ([`verify_chunk`]) before a publication can use it.

use super::chunks::CompressedChunk;
use flate2::Crc;
use std::io::{self, Read, Write};

/// How hard chunks are compressed: `[publish]` of `bess.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// liblzma preset, 0 to 9.
    pub xz_preset: u32,
    /// zlib level, 1 to 9.
    pub gzip_level: u32,
}

/// One xz block lifted out of a single-block stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XzBlock {
    pub bytes: Vec<u8>,
    pub unpadded_size: u64,
    pub uncompressed_size: u64,
}

/// Compresses one chunk of index text both ways.
pub fn compress_chunk(text: &[u8], levels: Levels) -> io::Result<CompressedChunk> {
    Ok(CompressedChunk {
        plain_len: text.len() as u64,
        gzip: gzip_member(text, levels.gzip_level)?,
        xz: xz_block(text, levels.xz_preset)?,
    })
}

/// A gzip member of `data` at zlib `level`. flate2's header has no name
/// and no time, so the same text always gives the same bytes.
pub fn gzip_member(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let out = Vec::with_capacity(data.len() / 4 + 64);
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
    encoder.write_all(data)?;
    encoder.finish()
}

/// Compresses `data` as one xz block with liblzma's `preset`. Empty data
/// makes no block (an xz stream may have none).
///
/// The dictionary is the preset's, but no larger than the chunk (rounded up
/// to a power of two): a window larger than the input cannot find more
/// matches, while its match finder's tables are allocated and cleared for
/// every chunk, and every client's decoder allocates the declared size.
pub fn xz_block(data: &[u8], preset: u32) -> io::Result<XzBlock> {
    use xz2::stream::{Check, Filters, LzmaOptions, Stream};
    if data.is_empty() {
        return Ok(XzBlock {
            bytes: Vec::new(),
            unpadded_size: 0,
            uncompressed_size: 0,
        });
    }
    let mut options = LzmaOptions::new_preset(preset).map_err(io::Error::other)?;
    options.dict_size(dictionary_size(data.len(), preset));
    let mut filters = Filters::new();
    filters.lzma2(&options);
    let stream = Stream::new_stream_encoder(&filters, Check::Crc64).map_err(io::Error::other)?;
    let out = Vec::with_capacity(data.len() / 4 + 128);
    let mut encoder = xz2::write::XzEncoder::new_stream(out, stream);
    encoder.write_all(data)?;
    lift_block(&encoder.finish()?, data.len() as u64)
}

/// The preset's dictionary (liblzma's table), capped at the power of two
/// that covers `len` (and at least liblzma's 4 KiB minimum).
fn dictionary_size(len: usize, preset: u32) -> u32 {
    const PRESET_DICT_MIB_LOG2: [u32; 10] = [0, 0, 1, 2, 2, 3, 3, 4, 5, 6];
    let preset_dict = match preset {
        0 => 256 << 10,
        p => 1 << (20 + PRESET_DICT_MIB_LOG2[p.min(9) as usize]),
    };
    let covering = u32::try_from(len)
        .unwrap_or(u32::MAX)
        .checked_next_power_of_two()
        .unwrap_or(preset_dict);
    covering.clamp(4096, preset_dict)
}

/// The block of a one-block xz stream, with the sizes its index records.
fn lift_block(stream: &[u8], uncompressed: u64) -> io::Result<XzBlock> {
    let malformed = |what: &str| io::Error::other(format!("liblzma's stream {what}"));
    let header = stream.get(..XZ_HEADER.len());
    if header != Some(&XZ_HEADER[..]) {
        return Err(malformed("has another header than CRC64 streams"));
    }
    let footer = stream
        .len()
        .checked_sub(12)
        .ok_or_else(|| malformed("is short"))?;
    let backward = u32::from_le_bytes(stream[footer + 4..footer + 8].try_into().expect("4 bytes"));
    let index_start = footer
        .checked_sub((backward as usize + 1) * 4)
        .filter(|start| *start >= XZ_HEADER.len())
        .ok_or_else(|| malformed("has an index out of bounds"))?;
    // Index: indicator 0, the number of records, then each record's sizes.
    let mut index = &stream[index_start + 1..footer];
    let (count, unpadded, size) = (
        read_varint(&mut index),
        read_varint(&mut index),
        read_varint(&mut index),
    );
    let (0, Some(1), Some(unpadded)) = (stream[index_start], count, unpadded) else {
        return Err(malformed("does not hold exactly one block"));
    };
    if size != Some(uncompressed) {
        return Err(malformed("records another size than its input"));
    }
    Ok(XzBlock {
        bytes: stream[XZ_HEADER.len()..index_start].to_vec(),
        unpadded_size: unpadded,
        uncompressed_size: uncompressed,
    })
}

/// Reads a multibyte integer of the xz format off the front of `bytes`.
fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(9) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

/// Why a chunk cannot be published: its compressed forms do not give its
/// text back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkFault {
    /// zlib's decoder fails or gives other text.
    Gzip(String),
    /// liblzma's decoder fails or gives other text.
    Xz(String),
}

impl std::fmt::Display for ChunkFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkFault::Gzip(why) => write!(f, "its gzip member {why}"),
            ChunkFault::Xz(why) => write!(f, "its xz block {why}"),
        }
    }
}

/// Decodes both compressed forms of a chunk with the libraries' decoders
/// and compares them with `text`: an encoder or memory fault must never
/// reach a published index.
pub fn verify_chunk(chunk: &CompressedChunk, text: &[u8]) -> Result<(), ChunkFault> {
    let member = flate2::read::GzDecoder::new(&chunk.gzip[..]);
    decodes_to(member, text).map_err(ChunkFault::Gzip)?;
    if chunk.xz.bytes.is_empty() {
        return match text.is_empty() {
            true => Ok(()),
            false => Err(ChunkFault::Xz("is missing".into())),
        };
    }
    let block = &chunk.xz;
    let footer = xz_footer(&[(block.unpadded_size, block.uncompressed_size)]);
    let stream = XZ_HEADER[..].chain(&block.bytes[..]).chain(&footer[..]);
    decodes_to(xz2::read::XzDecoder::new(stream), text).map_err(ChunkFault::Xz)
}

/// Whether `decoder` yields exactly `text`, compared as it decodes.
fn decodes_to(mut decoder: impl Read, mut text: &[u8]) -> Result<(), String> {
    let mut buf = vec![0; 64 << 10];
    loop {
        let n = decoder
            .read(&mut buf)
            .map_err(|e| format!("does not decode ({e})"))?;
        if n == 0 {
            return match text.is_empty() {
                true => Ok(()),
                false => Err(format!("decodes {} bytes short of its text", text.len())),
            };
        }
        match text.split_at_checked(n) {
            Some((head, rest)) if head == &buf[..n] => text = rest,
            _ => return Err("decodes to other text".into()),
        }
    }
}

/// Stream flags: check type 4, CRC64.
const XZ_FLAGS: [u8; 2] = [0x00, 0x04];

/// The 12-byte header of every xz stream bess writes.
pub const XZ_HEADER: [u8; 12] = {
    // CRC32 of XZ_FLAGS, precomputed: the header is a constant.
    let crc = 0x46b4_d6e6u32.to_le_bytes();
    [
        0xFD,
        b'7',
        b'z',
        b'X',
        b'Z',
        0x00,
        XZ_FLAGS[0],
        XZ_FLAGS[1],
        crc[0],
        crc[1],
        crc[2],
        crc[3],
    ]
};

/// The index and footer that close a stream of blocks with these
/// (unpadded, uncompressed) sizes.
pub fn xz_footer(blocks: &[(u64, u64)]) -> Vec<u8> {
    let mut index = vec![0u8];
    write_varint(&mut index, blocks.len() as u64);
    for (unpadded, uncompressed) in blocks {
        write_varint(&mut index, *unpadded);
        write_varint(&mut index, *uncompressed);
    }
    while index.len() % 4 != 0 {
        index.push(0);
    }
    index.extend_from_slice(&crc32(&index).to_le_bytes());
    let mut footer = Vec::with_capacity(12);
    footer.extend_from_slice(&((index.len() / 4 - 1) as u32).to_le_bytes());
    footer.extend_from_slice(&XZ_FLAGS);
    let mut out = index;
    out.extend_from_slice(&crc32(&footer).to_le_bytes());
    out.extend_from_slice(&footer);
    out.extend_from_slice(b"YZ");
    out
}

/// One xz stream of these blocks (empty blocks are left out).
#[cfg(test)]
pub fn xz_stream(blocks: &[XzBlock]) -> Vec<u8> {
    let blocks: Vec<&XzBlock> = blocks.iter().filter(|b| !b.bytes.is_empty()).collect();
    let mut out = XZ_HEADER.to_vec();
    for block in &blocks {
        out.extend_from_slice(&block.bytes);
    }
    let sizes: Vec<(u64, u64)> = blocks
        .iter()
        .map(|b| (b.unpadded_size, b.uncompressed_size))
        .collect();
    out.extend_from_slice(&xz_footer(&sizes));
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = Crc::new();
    crc.update(data);
    crc.sum()
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: Levels = Levels {
        xz_preset: 6,
        gzip_level: 6,
    };

    fn chunks() -> Vec<Vec<u8>> {
        (0..5)
            .map(|i| {
                format!("Package: p{i}\nDescription: {}\n\n", "x".repeat(i * 1000)).into_bytes()
            })
            .chain(std::iter::once(Vec::new()))
            .collect()
    }

    fn compressed() -> Vec<CompressedChunk> {
        chunks()
            .iter()
            .map(|c| compress_chunk(c, LEVELS).unwrap())
            .collect()
    }

    #[test]
    fn concatenated_gzip_members_read_whole() {
        let whole: Vec<u8> = chunks().concat();
        let gz: Vec<u8> = compressed().into_iter().flat_map(|c| c.gzip).collect();
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, whole);
    }

    #[test]
    fn multi_block_xz_stream_reads_whole_with_liblzma() {
        let whole: Vec<u8> = chunks().concat();
        let blocks: Vec<XzBlock> = compressed().into_iter().map(|c| c.xz).collect();
        let xz = xz_stream(&blocks);
        let mut out = Vec::new();
        xz2::read::XzDecoder::new(&xz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, whole);
    }

    #[test]
    fn header_crc_is_right() {
        assert_eq!(crc32(&XZ_FLAGS).to_le_bytes(), XZ_HEADER[8..12]);
    }

    #[test]
    fn the_same_text_compresses_to_the_same_bytes() {
        assert_eq!(compressed(), compressed());
    }

    #[test]
    fn dictionaries_cover_the_chunk_within_the_preset() {
        assert_eq!(dictionary_size(10, 6), 4096);
        assert_eq!(dictionary_size(300_000, 6), 512 << 10);
        assert_eq!(dictionary_size(300_000, 0), 256 << 10);
        assert_eq!(dictionary_size(100 << 20, 6), 8 << 20);
        assert_eq!(dictionary_size(100 << 20, 9), 64 << 20);
    }

    #[test]
    fn every_preset_and_level_round_trips() {
        let text = chunks().concat();
        for level in 0..=9 {
            let levels = Levels {
                xz_preset: level,
                gzip_level: level.max(1),
            };
            let chunk = compress_chunk(&text, levels).unwrap();
            assert_eq!(verify_chunk(&chunk, &text), Ok(()), "level {level}");
        }
    }

    #[test]
    fn verification_catches_a_flipped_byte_in_either_form() {
        let text = chunks().concat();
        let good = compress_chunk(&text, LEVELS).unwrap();
        assert_eq!(verify_chunk(&good, &text), Ok(()));
        let mut gzip = good.clone();
        let middle = gzip.gzip.len() / 2;
        gzip.gzip[middle] ^= 0x10;
        assert!(matches!(
            verify_chunk(&gzip, &text),
            Err(ChunkFault::Gzip(_))
        ));
        let mut xz = good.clone();
        let middle = xz.xz.bytes.len() / 2;
        xz.xz.bytes[middle] ^= 0x10;
        assert!(matches!(verify_chunk(&xz, &text), Err(ChunkFault::Xz(_))));
        let mut other = text.clone();
        other[3] ^= 1;
        assert!(verify_chunk(&good, &other).is_err(), "other text");
        assert!(verify_chunk(&good, &text[1..]).is_err(), "shorter text");
    }

    #[test]
    fn empty_index_is_a_valid_stream() {
        let empty = compress_chunk(b"", LEVELS).unwrap();
        assert_eq!(verify_chunk(&empty, b""), Ok(()));
        let xz = xz_stream(&[empty.xz]);
        let mut out = Vec::new();
        xz2::read::XzDecoder::new(&xz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn the_xz_tool_accepts_the_stream() {
        if !crate::test_tools::available("xz") {
            return;
        }
        let blocks: Vec<XzBlock> = compressed().into_iter().map(|c| c.xz).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Packages.xz");
        std::fs::write(&path, xz_stream(&blocks)).unwrap();
        use crate::test_tools::output_of;
        output_of("xz", &["-t".as_ref(), "-v".as_ref(), path.as_os_str()]);
        let list = output_of(
            "xz",
            &["--list".as_ref(), "--robot".as_ref(), path.as_os_str()],
        );
        let list = String::from_utf8_lossy(&list);
        assert!(
            list.lines().any(|l| l.starts_with("totals\t1\t5\t")),
            "1 stream, 5 blocks (the empty chunk has none): {list}"
        );
    }
}
