//! Compressed indices made of independently compressed chunks.
//!
//! apt reads a `.gz` made of concatenated gzip members, and an `.xz` single
//! stream made of many blocks (but only the first of several streams). So a
//! `Packages` file is cut into chunks, each chunk compressed on its own (in
//! parallel, and cacheable), and the pieces are assembled into one valid
//! file: unchanged chunks never need compressing again. Each chunk is
//! parsed once ([`lzma`]) and the parse coded twice, as LZMA2 and as
//! deflate ([`deflate`]).

use super::chunks::CompressedChunk;
use super::{deflate, lzma};
use flate2::Crc;

/// One xz block lifted out of a single-block stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XzBlock {
    pub bytes: Vec<u8>,
    pub unpadded_size: u64,
    pub uncompressed_size: u64,
}

/// Compresses one chunk of index text: the xz block's parse is coded
/// again as the gzip member's deflate data.
pub fn compress_chunk(text: &[u8]) -> CompressedChunk {
    let (xz, steps) = xz_block_and_parse(text);
    CompressedChunk {
        plain_len: text.len() as u64,
        gzip: gzip_member_from(text, &steps),
        xz,
    }
}

/// A gzip member of `data`, deflated with the copies of `steps`.
fn gzip_member_from(data: &[u8], steps: &[lzma::Step]) -> Vec<u8> {
    let body = deflate::encode(data, steps);
    let mut member = Vec::with_capacity(body.len() + 18);
    member.extend_from_slice(&GZIP_HEADER);
    member.extend_from_slice(&body);
    member.extend_from_slice(&crc32(data).to_le_bytes());
    member.extend_from_slice(&(data.len() as u32).to_le_bytes());
    member
}

/// Magic, deflate, no flags, no mtime (reproducible), "fastest" (as
/// gzip -1 says), unknown OS: what flate2 wrote before.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 0xff];

/// A gzip member of `data` (parsed for it alone).
#[cfg(test)]
pub fn gzip_member(data: &[u8]) -> Vec<u8> {
    gzip_member_from(data, &xz_block_and_parse(data).1)
}

/// Compresses `data` as one xz block: header, LZMA2 data, padding, CRC64
/// of the data. Empty data makes no block (an xz stream may have none).
#[cfg(test)]
pub fn xz_block(data: &[u8]) -> XzBlock {
    xz_block_and_parse(data).0
}

/// [`xz_block`] and the parse it coded.
fn xz_block_and_parse(data: &[u8]) -> (XzBlock, Vec<lzma::Step>) {
    if data.is_empty() {
        let block = XzBlock {
            bytes: Vec::new(),
            unpadded_size: 0,
            uncompressed_size: 0,
        };
        return (block, Vec::new());
    }
    let mut bytes = block_header(data.len());
    let (packed, steps) = lzma::encode(data);
    bytes.extend_from_slice(&packed);
    let unpadded_size = (bytes.len() + CHECK_SIZE) as u64;
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes.extend_from_slice(&crc64(data).to_le_bytes());
    let block = XzBlock {
        bytes,
        unpadded_size,
        uncompressed_size: data.len() as u64,
    };
    (block, steps)
}

/// A CRC64 check closes every block ([`XZ_FLAGS`]).
const CHECK_SIZE: usize = 8;

/// Header size (2: 12 bytes / 4 - 1), flags (one filter, no sizes), the
/// LZMA2 filter (id 0x21, one property byte: the dictionary size),
/// padding to a multiple of four, CRC32.
fn block_header(len: usize) -> Vec<u8> {
    let mut header = vec![0x02, 0x00, 0x21, 0x01, lzma::dict_size_byte(len), 0, 0, 0];
    let crc = crc32(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    header
}

fn crc64(data: &[u8]) -> u64 {
    // SAFETY: liblzma reads exactly `data.len()` bytes from the pointer.
    unsafe { lzma_sys::lzma_crc64(data.as_ptr(), data.len(), 0) }
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
        if !crate::test_tools::available("xz") {
            return;
        }
        let blocks: Vec<XzBlock> = chunks().iter().map(|c| xz_block(c)).collect();
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
