//! Deflate streams made from parses, read back by zlib-rs (flate2) and gzip(1).

use super::super::compress::gzip_member;
use super::super::lzma;
use super::*;
use proptest::prelude::*;
use std::io::Read;

fn inflate(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(stream)
        .read_to_end(&mut out)
        .expect("flate2 inflates the stream");
    out
}

/// Data and its parse, built together from literals and copies.
fn parsed(pieces: &[Result<(usize, usize), &[u8]>]) -> (Vec<u8>, Vec<Step>) {
    let mut data: Vec<u8> = Vec::new();
    let mut steps = Vec::new();
    for piece in pieces {
        match piece {
            Err(fresh) => {
                data.extend_from_slice(fresh);
                steps.extend(fresh.iter().map(|_| Step { len: 1, dist: 0 }));
            }
            Ok((back, len)) => {
                let from = data.len() - back;
                for i in 0..*len {
                    data.push(data[from + i]);
                }
                steps.push(Step {
                    len: *len as u32,
                    dist: *back as u32,
                });
            }
        }
    }
    (data, steps)
}

/// BTYPE of the first (and only) block.
fn block_type(stream: &[u8]) -> u8 {
    (stream[0] >> 1) & 3
}

#[test]
fn empty_data_is_one_fixed_block() {
    let stream = encode(b"", &[]);
    assert_eq!(stream, [0x03, 0x00]);
    assert!(inflate(&stream).is_empty());
}

#[test]
fn copy_lengths_and_distances_at_the_edges_round_trip() {
    let seed: Vec<u8> = (0..=255u8).cycle().take(40_000).collect();
    let mut pieces = vec![Err(&seed[..])];
    // Lengths around the 258 limit (259 and 260 must not leave a piece
    // shorter than 3), distances around the 32 KiB window.
    for (back, len) in [(1, 3), (2, 258), (3, 259), (4, 260), (5, 261), (600, 1000)] {
        pieces.push(Ok((back, len)));
    }
    for back in [32_767, 32_768, 32_769, 39_000] {
        pieces.push(Ok((back, 10)));
    }
    let (data, steps) = parsed(&pieces);
    assert_eq!(inflate(&encode(&data, &steps)), data);
}

#[test]
fn index_text_is_coded_with_fitted_codes_and_shrinks() {
    let text: String = (0..3000)
        .map(|i| {
            format!(
                "Package: lib{i}\nVersion: 1.{}\nDepends: libc6 (>= 2.36)\n\n",
                i % 9
            )
        })
        .collect();
    let (_, steps) = lzma::encode(text.as_bytes());
    let stream = encode(text.as_bytes(), &steps);
    assert_eq!(inflate(&stream), text.as_bytes());
    assert_eq!(block_type(&stream), 2, "dynamic Huffman codes");
    assert!(stream.len() * 5 < text.len(), "{} bytes", stream.len());
}

#[test]
fn noise_is_stored() {
    let mut state = 7u64;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 56) as u8
        })
        .collect();
    let (_, steps) = lzma::encode(&noise);
    let stream = encode(&noise, &steps);
    assert_eq!(block_type(&stream), 0, "stored blocks");
    assert_eq!(inflate(&stream), noise);
}

#[test]
fn a_short_text_takes_the_fixed_codes() {
    let stream = encode(b"abc", &[Step { len: 1, dist: 0 }; 3]);
    assert_eq!(block_type(&stream), 1);
    assert_eq!(inflate(&stream), b"abc");
}

#[test]
fn gzip_reads_concatenated_members() {
    if !crate::test_tools::available("gzip") {
        return;
    }
    let parts: Vec<String> = (0..4)
        .map(|i| {
            format!(
                "Package: p{i}\nDescription: {}\n\n",
                "word ".repeat(i * 400)
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Packages.gz");
    let members: Vec<u8> = parts
        .iter()
        .flat_map(|p| gzip_member(p.as_bytes()))
        .collect();
    std::fs::write(&path, members).unwrap();
    let out = crate::test_tools::output_of("gzip", &["-dc".as_ref(), path.as_os_str()]);
    assert_eq!(out, parts.concat().into_bytes());
}

/// Literals and copies at any distance up to 70,000 and any length to 600.
fn pieces() -> impl Strategy<Value = Vec<Result<(usize, usize), Vec<u8>>>> {
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..40).prop_map(Err),
        (1usize..70_000, 1usize..600).prop_map(Ok),
    ];
    prop::collection::vec(piece, 1..200)
}

proptest! {
    #[test]
    fn any_parse_round_trips(pieces in pieces()) {
        // Copies reaching before the start are dropped.
        let mut len = 0;
        let kept: Vec<Result<(usize, usize), &[u8]>> = pieces
            .iter()
            .filter_map(|p| match p {
                Err(fresh) => { len += fresh.len(); Some(Err(&fresh[..])) }
                Ok((back, n)) if *back <= len => { len += n; Some(Ok((*back, *n))) }
                Ok(_) => None,
            })
            .collect();
        let (data, steps) = parsed(&kept);
        prop_assert_eq!(inflate(&encode(&data, &steps)), data);
    }
}
