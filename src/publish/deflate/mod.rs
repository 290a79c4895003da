//! Deflate (RFC 1951) from a parse made for LZMA.
//!
//! Every index chunk is compressed twice, for `Packages.xz` and for
//! `Packages.gz`, and finding matches is most of what either costs. The
//! LZMA encoder's parse is a good LZ77 parse, so the gzip member is coded
//! from it: copies that deflate can express (distance up to 32 KiB,
//! length 3 to 258) stay copies, the rest become literals, and one
//! block with Huffman codes fitted to the chunk codes them. This takes a
//! small fraction of what zlib-rs at level 1 spent finding its own
//! matches, and the codes fitted to the chunk make the member smaller.

mod bits;
mod huffman;

use super::lzma::Step;
use bits::BitWriter;

const END_OF_BLOCK: usize = 256;
const LITLEN_CODES: usize = 286;
const DIST_CODES: usize = 30;
const MAX_BITS: u32 = 15;
const CODELEN_MAX_BITS: u32 = 7;
/// The furthest back a copy may reach (deflate's window) and the shortest
/// copy: the LZMA parse, which the gzip member is coded from, keeps to both.
pub const MAX_DIST: u32 = 32_768;
pub const MIN_LEN: u32 = 3;
const MAX_LEN: u32 = 258;
/// Order in which the code-length code's lengths are sent.
const CODELEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];

/// A symbol of the block with its extra bits, worked out once for
/// counting and for writing: a literal or length symbol, and for a copy
/// its distance code (else [`NO_DIST`]).
#[derive(Clone, Copy)]
struct Token {
    litlen: u16,
    len_extra: u16,
    len_extra_bits: u8,
    dist: u8,
    dist_extra: u16,
}

const NO_DIST: u8 = u8::MAX;

/// Deflates `data` (one final block), coding the copies of `steps`, which
/// must describe `data` exactly.
pub fn encode(data: &[u8], steps: &[Step]) -> Vec<u8> {
    let (tokens, freqs) = tokens(data, steps);
    let mut out = BitWriter::with_capacity(data.len() / 3 + 64);
    let dynamic = DynamicBlock::new(&freqs);
    let (dynamic_bits, fixed_bits) = (dynamic.cost(&freqs), fixed_cost(&freqs));
    if dynamic_bits.min(fixed_bits) >= stored_cost(data.len()) {
        write_stored(&mut out, data);
    } else if dynamic_bits < fixed_bits {
        dynamic.write(&mut out, &tokens);
    } else {
        write_fixed(&mut out, &tokens);
    }
    out.finish()
}

/// The steps as deflate tokens, and how often each symbol occurs: copies
/// out of deflate's reach become literals, copies longer than 258 are split.
fn tokens(data: &[u8], steps: &[Step]) -> (Vec<Token>, Frequencies) {
    let mut tokens = Vec::with_capacity(steps.len() + steps.len() / 8);
    let mut freqs = Frequencies {
        litlen: [0; LITLEN_CODES],
        dist: [0; DIST_CODES],
    };
    let mut pos = 0usize;
    for step in steps {
        let len = step.len as usize;
        if step.dist == 0 || step.dist > MAX_DIST || step.len < MIN_LEN {
            for &byte in &data[pos..pos + len] {
                freqs.litlen[usize::from(byte)] += 1;
                tokens.push(literal(byte));
            }
        } else {
            push_copy(&mut tokens, &mut freqs, step.len, step.dist);
        }
        pos += len;
    }
    assert_eq!(pos, data.len(), "the steps describe the data");
    freqs.litlen[END_OF_BLOCK] += 1;
    (tokens, freqs)
}

fn literal(byte: u8) -> Token {
    Token {
        litlen: u16::from(byte),
        len_extra: 0,
        len_extra_bits: 0,
        dist: NO_DIST,
        dist_extra: 0,
    }
}

/// A copy in pieces deflate can name, none shorter than 3.
fn push_copy(tokens: &mut Vec<Token>, freqs: &mut Frequencies, mut len: u32, dist: u32) {
    let dc = dist_code(dist);
    let dist_extra = (dist - dist_extra(dc).1) as u16;
    while len > 0 {
        let piece = if len > MAX_LEN && len - MAX_LEN < MIN_LEN {
            len - MIN_LEN
        } else {
            len.min(MAX_LEN)
        };
        let lc = usize::from(LEN_CODE[piece as usize]);
        let token = Token {
            litlen: (257 + lc) as u16,
            len_extra: piece as u16 - LEN_BASE[lc],
            len_extra_bits: LEN_EXTRA[lc],
            dist: dc as u8,
            dist_extra,
        };
        freqs.litlen[usize::from(token.litlen)] += 1;
        freqs.dist[dc] += 1;
        tokens.push(token);
        len -= piece;
    }
}

/// The length code (0-based, for symbol 257 + code) of each copy length.
const LEN_CODE: [u8; 259] = {
    let mut table = [0u8; 259];
    let mut code = 0;
    let mut len = 3;
    while len <= 258 {
        while code + 1 < LEN_BASE.len() && LEN_BASE[code + 1] as usize <= len {
            code += 1;
        }
        table[len] = code as u8;
        len += 1;
    }
    table
};

/// The distance code of a distance: LZMA's slot of `dist - 1`.
fn dist_code(dist: u32) -> usize {
    let d = dist - 1;
    if d < 4 {
        return d as usize;
    }
    let n = 31 - d.leading_zeros();
    ((n << 1) | ((d >> (n - 1)) & 1)) as usize
}

fn dist_extra(code: usize) -> (u32, u32) {
    if code < 4 {
        return (0, code as u32 + 1);
    }
    let extra = (code as u32 >> 1) - 1;
    (extra, ((2 | (code as u32 & 1)) << extra) + 1)
}

/// How often each symbol occurs in a block's tokens.
struct Frequencies {
    litlen: [u32; LITLEN_CODES],
    dist: [u32; DIST_CODES],
}

impl Frequencies {
    /// Bits the tokens take with these code lengths, extra bits included.
    fn cost(&self, litlen: &[u8], dist: &[u8]) -> u64 {
        let litlen_bits: u64 = self
            .litlen
            .iter()
            .zip(litlen)
            .enumerate()
            .map(|(s, (&f, &l))| {
                let extra = s.checked_sub(257).map_or(0, |c| LEN_EXTRA[c]);
                u64::from(f) * u64::from(l + extra)
            })
            .sum();
        let dist_bits: u64 = self
            .dist
            .iter()
            .zip(dist)
            .enumerate()
            .map(|(c, (&f, &l))| u64::from(f) * (u64::from(l) + u64::from(dist_extra(c).0)))
            .sum();
        litlen_bits + dist_bits
    }
}

fn fixed_lengths() -> (Vec<u8>, Vec<u8>) {
    let litlen = (0..288)
        .map(|s| match s {
            0..=143 => 8,
            144..=255 => 9,
            256..=279 => 7,
            _ => 8,
        })
        .collect();
    (litlen, vec![5; 30])
}

fn fixed_cost(freqs: &Frequencies) -> u64 {
    let (litlen, dist) = fixed_lengths();
    3 + freqs.cost(&litlen, &dist)
}

/// Stored blocks: header and alignment, four length bytes, per 64 KiB.
fn stored_cost(len: usize) -> u64 {
    let blocks = len.div_ceil(65_535).max(1) as u64;
    8 * (len as u64 + 5 * blocks) + 7
}

fn write_stored(out: &mut BitWriter, data: &[u8]) {
    let pieces: Vec<&[u8]> = if data.is_empty() {
        vec![data]
    } else {
        data.chunks(65_535).collect()
    };
    for (i, piece) in pieces.iter().enumerate() {
        out.bits(u32::from(i + 1 == pieces.len()), 1);
        out.bits(0, 2);
        out.align();
        let len = piece.len() as u16;
        out.bytes(&len.to_le_bytes());
        out.bytes(&(!len).to_le_bytes());
        out.bytes(piece);
    }
}

fn write_fixed(out: &mut BitWriter, tokens: &[Token]) {
    let (litlen, dist) = fixed_lengths();
    out.bits(1, 1);
    out.bits(1, 2);
    write_body(out, tokens, &litlen, &dist);
}

/// The tokens, then the end of block, with these code lengths.
fn write_body(out: &mut BitWriter, tokens: &[Token], litlen: &[u8], dist: &[u8]) {
    let litlen_codes = huffman::codes(litlen);
    let dist_codes = huffman::codes(dist);
    for token in tokens {
        // A code and its extra bits in one write: at most 15 + 5 bits for
        // a length, 15 + 13 for a distance.
        let s = usize::from(token.litlen);
        out.bits(
            u32::from(litlen_codes[s]) | (u32::from(token.len_extra) << litlen[s]),
            u32::from(litlen[s]) + u32::from(token.len_extra_bits),
        );
        if token.dist != NO_DIST {
            let d = usize::from(token.dist);
            out.bits(
                u32::from(dist_codes[d]) | (u32::from(token.dist_extra) << dist[d]),
                u32::from(dist[d]) + dist_extra(d).0,
            );
        }
    }
    out.bits(
        u32::from(litlen_codes[END_OF_BLOCK]),
        u32::from(litlen[END_OF_BLOCK]),
    );
}

/// A block with Huffman codes fitted to its tokens.
struct DynamicBlock {
    litlen: Vec<u8>,
    dist: Vec<u8>,
    /// The run-length coded code lengths: (code-length symbol, extra bits).
    runs: Vec<(u8, u8)>,
    codelen: Vec<u8>,
    /// How many code-length code lengths are sent (HCLEN + 4).
    codelen_count: usize,
}

impl DynamicBlock {
    fn new(freqs: &Frequencies) -> DynamicBlock {
        let (mut litlen_freqs, mut dist_freqs) = (freqs.litlen, freqs.dist);
        // Inflaters want complete codes, even when a tree is used for one
        // symbol or none.
        at_least_two_used(&mut litlen_freqs);
        at_least_two_used(&mut dist_freqs);
        let litlen = trimmed(huffman::lengths(&litlen_freqs, MAX_BITS), 257);
        let dist = trimmed(huffman::lengths(&dist_freqs, MAX_BITS), 1);
        let runs = run_lengths(&[&litlen[..], &dist[..]].concat());
        let mut codelen_freqs = [0u32; 19];
        runs.iter()
            .for_each(|(s, _)| codelen_freqs[usize::from(*s)] += 1);
        let codelen = huffman::lengths(&codelen_freqs, CODELEN_MAX_BITS);
        let codelen_count = CODELEN_ORDER
            .iter()
            .rposition(|&s| codelen[s] != 0)
            .map_or(4, |last| (last + 1).max(4));
        DynamicBlock {
            litlen,
            dist,
            runs,
            codelen,
            codelen_count,
        }
    }

    fn header_cost(&self) -> u64 {
        let runs: u64 = self
            .runs
            .iter()
            .map(|&(s, _)| u64::from(self.codelen[usize::from(s)]) + extra_bits(s))
            .sum();
        3 + 5 + 5 + 4 + 3 * self.codelen_count as u64 + runs
    }

    fn cost(&self, freqs: &Frequencies) -> u64 {
        self.header_cost() + freqs.cost(&self.litlen, &self.dist)
    }

    fn write(&self, out: &mut BitWriter, tokens: &[Token]) {
        out.bits(1, 1);
        out.bits(2, 2);
        out.bits((self.litlen.len() - 257) as u32, 5);
        out.bits((self.dist.len() - 1) as u32, 5);
        out.bits((self.codelen_count - 4) as u32, 4);
        for &symbol in &CODELEN_ORDER[..self.codelen_count] {
            out.bits(u32::from(self.codelen[symbol]), 3);
        }
        let codes = huffman::codes(&self.codelen);
        for &(symbol, extra) in &self.runs {
            let s = usize::from(symbol);
            out.bits(u32::from(codes[s]), u32::from(self.codelen[s]));
            out.bits(u32::from(extra), extra_bits(symbol) as u32);
        }
        write_body(out, tokens, &self.litlen, &self.dist);
    }
}

fn at_least_two_used(freqs: &mut [u32]) {
    let mut symbol = 0;
    while freqs.iter().filter(|f| **f > 0).count() < 2 {
        freqs[symbol] = freqs[symbol].max(1);
        symbol += 1;
    }
}

/// Code lengths without the unused tail, keeping at least `min` of them.
fn trimmed(mut lengths: Vec<u8>, min: usize) -> Vec<u8> {
    let used = lengths.iter().rposition(|&l| l != 0).map_or(0, |i| i + 1);
    lengths.truncate(used.max(min));
    lengths
}

fn extra_bits(symbol: u8) -> u64 {
    match symbol {
        16 => 2,
        17 => 3,
        18 => 7,
        _ => 0,
    }
}

/// Code lengths as code-length symbols: 16 repeats the previous length 3
/// to 6 times, 17 and 18 stand for 3 to 10 and 11 to 138 zeros.
fn run_lengths(lengths: &[u8]) -> Vec<(u8, u8)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < lengths.len() {
        let len = lengths[i];
        let run = lengths[i..].iter().take_while(|&&l| l == len).count();
        i += run;
        if len == 0 {
            push_zeros(&mut runs, run);
        } else {
            runs.push((len, 0));
            push_repeats(&mut runs, len, run - 1);
        }
    }
    runs
}

fn push_zeros(runs: &mut Vec<(u8, u8)>, mut run: usize) {
    while run >= 11 {
        let n = run.min(138);
        runs.push((18, (n - 11) as u8));
        run -= n;
    }
    if run >= 3 {
        runs.push((17, (run - 3) as u8));
        run = 0;
    }
    runs.extend(std::iter::repeat_n((0, 0), run));
}

fn push_repeats(runs: &mut Vec<(u8, u8)>, len: u8, mut run: usize) {
    while run >= 3 {
        let n = run.min(6);
        runs.push((16, (n - 3) as u8));
        run -= n;
    }
    runs.extend(std::iter::repeat_n((len, 0), run));
}

#[cfg(test)]
mod tests;
