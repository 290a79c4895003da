//! The encoder's output decoded by liblzma, on data shaped to reach every
//! kind of symbol and every kind of LZMA2 chunk.

use super::super::compress::{xz_block, xz_stream};
use super::matches::MatchFinder;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use std::io::Read;

/// `data` as one xz stream of one block, decoded by liblzma.
fn round_trip(data: &[u8]) -> Vec<u8> {
    let stream = xz_stream(&[xz_block(data)]);
    let mut out = Vec::new();
    xz2::read::XzDecoder::new(&stream[..])
        .read_to_end(&mut out)
        .expect("liblzma decodes the stream");
    out
}

fn assert_round_trips(data: &[u8]) {
    let out = round_trip(data);
    assert!(
        out == data,
        "{} bytes came back as {}",
        data.len(),
        out.len()
    );
}

/// Deterministic noise: incompressible, so it makes stored chunks.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

/// Stanzas like an index's: repeated field names, hex digests, prose.
fn stanzas(count: usize) -> Vec<u8> {
    let mut text = String::new();
    for i in 0..count {
        let digest = hex::encode(Sha256::digest(i.to_le_bytes()));
        text.push_str(&format!(
            "Package: lib{i}-dev\nVersion: 1.{}-{}\nArchitecture: amd64\n\
             Depends: libc6 (>= 2.36), lib{i} (= 1.{}-{})\n\
             Filename: pool/main/l/lib{i}/lib{i}-dev_1.{}_amd64.deb\nSize: {}\n\
             SHA256: {digest}\nDescription: development files for lib{i}\n \
             This package contains the headers of lib{i}, version {}.\n\n",
            i % 7,
            i % 3,
            i % 7,
            i % 3,
            i % 7,
            1000 + i * 37,
            i % 11
        ));
    }
    text.into_bytes()
}

#[test]
fn tiny_inputs_round_trip() {
    for data in [
        &b"a"[..],
        b"ab",
        b"abc",
        b"abcd",
        b"aaaaaaaa",
        b"Package: x\n\n",
    ] {
        assert_round_trips(data);
    }
}

#[test]
fn index_text_round_trips_and_compresses() {
    let data = stanzas(2000);
    assert_round_trips(&data);
    let packed = xz_block(&data).bytes.len();
    assert!(packed * 3 < data.len(), "{packed} bytes for {}", data.len());
}

#[test]
fn compresses_index_text_no_worse_than_liblzma_preset_0() {
    use std::io::Write;
    let data = stanzas(2000);
    let mut options = xz2::stream::LzmaOptions::new_preset(0).unwrap();
    options.dict_size(super::dict_size(data.len()));
    let mut filters = xz2::stream::Filters::new();
    filters.lzma2(&options);
    let stream =
        xz2::stream::Stream::new_stream_encoder(&filters, xz2::stream::Check::Crc64).unwrap();
    let mut encoder = xz2::write::XzEncoder::new_stream(Vec::new(), stream);
    encoder.write_all(&data).unwrap();
    let liblzma = encoder.finish().unwrap().len();
    let ours = xz_stream(&[xz_block(&data)]).len();
    assert!(
        ours * 100 <= liblzma * 105,
        "{ours} bytes against liblzma's {liblzma}"
    );
}

#[test]
fn long_runs_fill_chunks_to_their_uncompressed_limit() {
    // 5 MiB of zeros codes in a few KiB: chunks end at 2 MiB of data,
    // and matches run to their maximum length of 273.
    let mut data = vec![0u8; 5 << 20];
    data.extend_from_slice(b"end");
    assert_round_trips(&data);
    assert!(xz_block(&data).bytes.len() < 4096);
}

#[test]
fn no_match_reaches_beyond_the_largest_dictionary() {
    // The same noise 8.5 MiB apart: the block header names an 8 MiB
    // dictionary, so the second copy must not refer to the first.
    let noise = noise(4096, 3);
    let mut data = noise.clone();
    data.resize(data.len() + (17 << 19), 0);
    data.extend_from_slice(&noise);
    assert_round_trips(&data);
}

#[test]
fn noise_is_stored_and_coding_starts_again_after_it() {
    // Stored first chunk (dictionary reset, then properties), stored chunks
    // in the middle (state reset after each), text that refers back across them.
    let text = stanzas(600);
    let mut data = noise(150_000, 1);
    data.extend_from_slice(&text);
    data.extend_from_slice(&noise(300_000, 2));
    data.extend_from_slice(&text);
    assert_round_trips(&data);
    let packed = xz_block(&data).bytes.len();
    assert!(packed < 150_000 + 300_000 + text.len(), "{packed} bytes");
}

#[test]
fn every_period_repeats() {
    // Periods 1 to 300 exercise short and long repeated distances.
    let mut data = Vec::new();
    for period in 1..=300usize {
        let unit = noise(period, period as u64);
        for _ in 0..(600 / period).max(2) {
            data.extend_from_slice(&unit);
        }
    }
    assert_round_trips(&data);
}

#[test]
fn output_is_deterministic() {
    let data = stanzas(500);
    assert_eq!(xz_block(&data), xz_block(&data));
}

#[test]
fn a_far_match_carries_the_best_one_within_deflates_window() {
    // `phrase` in full 40 KiB back, its first 20 bytes 100 bytes back.
    let phrase = noise(64, 7);
    let mut data = phrase.clone();
    data.extend(noise(40 << 10, 1_000));
    data.extend_from_slice(&phrase[..20]);
    data.extend(noise(80, 99_000));
    let pos = data.len();
    data.extend_from_slice(&phrase);
    data.extend(noise(16, 5_000_000));
    let mut finder = MatchFinder::new(data.len());
    let found = finder.find(&data, pos, 64);
    assert_eq!((found.len, found.dist as usize), (64, pos - 1));
    assert_eq!((found.near_len, found.near_dist), (20, 99));
}

#[test]
fn a_near_match_is_its_own_near_match() {
    let phrase = noise(64, 7);
    let mut data = phrase.clone();
    data.extend(noise(500, 1_000));
    let pos = data.len();
    data.extend_from_slice(&phrase);
    let mut finder = MatchFinder::new(data.len());
    let found = finder.find(&data, pos, 64);
    assert_eq!((found.len, found.dist as usize), (64, pos - 1));
    assert_eq!((found.near_len, found.near_dist), (found.len, found.dist));
}

/// Data made of fresh bytes and copies of earlier data: what a parse
/// turns into literals, matches at every distance, and repeats.
fn copies() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..40).prop_map(Err),
        (1usize..70_000, 1usize..400).prop_map(Ok),
    ];
    prop::collection::vec(piece, 1..300).prop_map(|pieces| {
        let mut data: Vec<u8> = Vec::new();
        for piece in pieces {
            match piece {
                Err(fresh) => data.extend_from_slice(&fresh),
                Ok((back, len)) if back <= data.len() => {
                    let from = data.len() - back;
                    for i in 0..len {
                        data.push(data[from + i]);
                    }
                }
                Ok(_) => data.push(b'x'),
            }
        }
        data
    })
}

proptest! {
    #[test]
    fn liblzma_decodes_what_was_encoded(data in copies()) {
        let out = round_trip(&data);
        prop_assert!(out == data);
    }
}

#[test]
fn digests_are_the_long_lowercase_hex_values() {
    let md5 = "0d0232b36b1ca74b7a34a136276e4e0d";
    let sha256 = "5f384a897a31b1d9e7a660259489675701c297bbfa4cb43a221189fa533c8c39";
    let text = format!(
        "Package: deadbeef\nSize: 1234\nMD5sum: {md5}\nVersion: 0123456789abcdef0\n\
         SHA1: 0D0232B36B1CA74B7A34A136276E4E0D00000000\nNote: {md5} and more\n\
         Description-md5: abcdef0123456789\nSHA256: {sha256}"
    );
    let runs = super::parse::digest_runs(text.as_bytes());
    let values: Vec<&str> = runs.into_iter().map(|r| &text[r]).collect();
    // Uppercase, short, or mixed values are not digests; the last line
    // needs no newline.
    assert_eq!(
        values,
        [md5, "0123456789abcdef0", "abcdef0123456789", sha256]
    );
}
