//! Compressed indices made of independently compressed chunks.
//!
//! apt reads a `.gz` made of concatenated gzip members, and an `.xz` single
//! stream made of many blocks (but only the first of several streams). So a
//! `Packages` file is cut into chunks, each chunk compressed on its own (in
//! parallel, and cacheable), and the pieces are assembled into one valid
//! file: unchanged chunks never need compressing again.

use super::chunks::CompressedChunk;
use flate2::Crc;
use std::io::Write;

/// gzip level: publish time matters more than the last percent of size;
/// apt prefers the `.xz` anyway.
const GZIP_LEVEL: u32 = 1;
/// xz preset: apt fetches `.xz` first, so it is the file clients download;
/// on a 60,000-package index preset 0 made it 22 % larger than preset 6
/// but compressed about 5 times faster (measured with xz(1) on 100 kB
/// chunks), which is what keeps a full publish of a large dist fast.
const XZ_PRESET: u32 = 0;

/// One xz block lifted out of a single-block stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XzBlock {
    pub bytes: Vec<u8>,
    pub unpadded_size: u64,
    pub uncompressed_size: u64,
}

/// Compresses one chunk of index text.
pub fn compress_chunk(text: &[u8]) -> CompressedChunk {
    CompressedChunk {
        plain_len: text.len() as u64,
        gzip: gzip_member(text),
        xz: xz_block(text),
    }
}

/// A gzip member of `data`.
pub fn gzip_member(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::new(GZIP_LEVEL),
    );
    encoder
        .write_all(data)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// Compresses `data` as a single-block xz stream and keeps only the block.
pub fn xz_block(data: &[u8]) -> XzBlock {
    let stream =
        xz2::stream::Stream::new_stream_encoder(&xz_filters(data.len()), xz2::stream::Check::Crc64)
            .expect("liblzma accepts an LZMA2 filter with CRC64");
    let mut encoder =
        xz2::write::XzEncoder::new_stream(Vec::with_capacity(data.len() / 4 + 64), stream);
    encoder
        .write_all(data)
        .expect("writing to a Vec cannot fail");
    let whole = encoder.finish().expect("writing to a Vec cannot fail");
    split_single_block(&whole)
}

/// LZMA2 at [`XZ_PRESET`] with a dictionary no larger than the chunk: the
/// preset's own 8 MiB dictionary would make liblzma set up ~90 MiB of match
/// finder for every 100 KiB chunk, and clients would need 8 MiB to decode.
fn xz_filters(len: usize) -> xz2::stream::Filters {
    let dict = (len.next_power_of_two() as u32).clamp(4096, 1 << 23);
    let mut options = xz2::stream::LzmaOptions::new_preset(XZ_PRESET).expect("a valid preset");
    options.dict_size(dict);
    let mut filters = xz2::stream::Filters::new();
    filters.lzma2(&options);
    filters
}

/// Takes a stream apart: header (12 bytes), one block, index, footer (12 bytes).
fn split_single_block(stream: &[u8]) -> XzBlock {
    let footer = &stream[stream.len() - 12..];
    let backward = u32::from_le_bytes(footer[4..8].try_into().expect("4 bytes")) as usize;
    let index_size = (backward + 1) * 4;
    let index_start = stream.len() - 12 - index_size;
    let index = &stream[index_start..stream.len() - 12];
    assert_eq!(index[0], 0, "xz index indicator");
    let (count, at) = read_varint(&index[1..]);
    if count == 0 {
        // Empty input: liblzma writes no block at all.
        return XzBlock {
            bytes: Vec::new(),
            unpadded_size: 0,
            uncompressed_size: 0,
        };
    }
    assert_eq!(count, 1, "liblzma wrote one block");
    let (unpadded_size, used) = read_varint(&index[1 + at..]);
    let (uncompressed_size, _) = read_varint(&index[1 + at + used..]);
    XzBlock {
        bytes: stream[12..index_start].to_vec(),
        unpadded_size,
        uncompressed_size,
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

fn read_varint(bytes: &[u8]) -> (u64, usize) {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(9) {
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    panic!("malformed xz varint from liblzma");
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
    use std::io::Read;

    fn chunks() -> Vec<Vec<u8>> {
        (0..5)
            .map(|i| {
                format!("Package: p{i}\nDescription: {}\n\n", "x".repeat(i * 1000)).into_bytes()
            })
            .chain(std::iter::once(Vec::new()))
            .collect()
    }

    #[test]
    fn concatenated_gzip_members_read_whole() {
        let whole: Vec<u8> = chunks().concat();
        let gz: Vec<u8> = chunks().iter().flat_map(|c| gzip_member(c)).collect();
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, whole);
    }

    #[test]
    fn multi_block_xz_stream_reads_whole_with_liblzma() {
        let whole: Vec<u8> = chunks().concat();
        let blocks: Vec<XzBlock> = chunks().iter().map(|c| xz_block(c)).collect();
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
    fn empty_index_is_a_valid_stream() {
        let xz = xz_stream(&[]);
        let mut out = Vec::new();
        xz2::read::XzDecoder::new(&xz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn the_xz_tool_accepts_the_stream() {
        if std::process::Command::new("xz")
            .arg("--version")
            .output()
            .is_err()
        {
            return;
        }
        let blocks: Vec<XzBlock> = chunks().iter().map(|c| xz_block(c)).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Packages.xz");
        std::fs::write(&path, xz_stream(&blocks)).unwrap();
        let out = std::process::Command::new("xz")
            .args(["-t", "-v"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list = std::process::Command::new("xz")
            .args(["--list", "--robot"])
            .arg(&path)
            .output()
            .unwrap();
        let list = String::from_utf8_lossy(&list.stdout);
        assert!(
            list.lines().any(|l| l.starts_with("totals\t1\t5\t")),
            "1 stream, 5 blocks (the empty chunk has none): {list}"
        );
    }
}
