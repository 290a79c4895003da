//! LZMA2 framing: the parse's symbols cut into chunks of at most 2 MiB of
//! data and 64 KiB of code, stored instead where coding does not pay.

use super::model::{MATCH_LEN_MAX, Model, PROPS};
use super::parse::{Parser, Step, Symbol};
use super::range::RangeEncoder;

/// An LZMA2 chunk holds at most 2 MiB of data and 64 KiB compressed.
const CHUNK_UNCOMPRESSED_MAX: usize = 1 << 21;
const CHUNK_COMPRESSED_MAX: usize = 1 << 16;
/// Room for the largest symbol and the final flush of the range coder.
const SYMBOL_MARGIN: usize = 64;
/// An uncompressed LZMA2 chunk holds at most 64 KiB.
const STORED_MAX: usize = 1 << 16;

/// What the decoder must be told to reset at the next LZMA chunk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reset {
    Nothing = 0,
    State = 1,
    StateAndProps = 2,
    Everything = 3,
}

/// Compresses `data` as the LZMA2 data of one xz block: the dictionary is
/// reset at its start, and the end marker closes it. Also returns the
/// parse, for the gzip member of the same data.
pub fn encode(data: &[u8]) -> (Vec<u8>, Vec<Step>) {
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    let mut steps = Vec::with_capacity(data.len() / 6);
    let mut parser = Parser::new(data);
    let mut model = Model::new();
    let mut reset = Reset::Everything;
    let mut pos = 0;
    while pos < data.len() {
        let start = pos;
        let (packed, end) = code_chunk(data, start, &mut parser, &mut model, &mut steps);
        pos = end;
        if packed.len() < end - start {
            push_lzma_chunk(&mut out, &packed, end - start, reset);
            reset = Reset::Nothing;
        } else {
            // Coding did not pay: store the bytes. The model the decoder
            // never saw this chunk's code with starts again afterwards.
            push_stored(&mut out, &data[start..end], reset == Reset::Everything);
            model = Model::new();
            reset = match reset {
                Reset::Everything | Reset::StateAndProps => Reset::StateAndProps,
                Reset::Nothing | Reset::State => Reset::State,
            };
        }
    }
    out.push(0x00);
    (out, steps)
}

/// Codes symbols from `start` until the chunk is full or the data ends,
/// adding them to `steps`; returns the range coder's bytes and where the
/// chunk ends.
fn code_chunk(
    data: &[u8],
    start: usize,
    parser: &mut Parser,
    model: &mut Model,
    steps: &mut Vec<Step>,
) -> (Vec<u8>, usize) {
    let mut rc = RangeEncoder::new(CHUNK_COMPRESSED_MAX);
    let mut pos = start;
    let room = |pos: usize, rc: &RangeEncoder| {
        pos - start + MATCH_LEN_MAX as usize <= CHUNK_UNCOMPRESSED_MAX
            && rc.flushed_len() + SYMBOL_MARGIN <= CHUNK_COMPRESSED_MAX
    };
    while pos < data.len() && room(pos, &rc) {
        if let Some(end) = parser.digest_at(pos) {
            // Hash digits are literals: coded in a run, without the parse.
            while pos < end && room(pos, &rc) {
                model.literal(&mut rc, data, pos);
                steps.push(Step::LITERAL);
                pos += 1;
            }
            continue;
        }
        let symbol = parser.next(data, pos, &model.reps);
        symbol.push_steps(&model.reps, steps);
        match symbol {
            Symbol::Literal => model.literal(&mut rc, data, pos),
            Symbol::Match(m) => model.matched(&mut rc, pos, m.dist, m.len),
            Symbol::Rep { rep, len } => model.repeated(&mut rc, pos, rep, len),
        }
        pos += symbol.len();
    }
    (rc.finish(), pos)
}

/// An LZMA chunk: control byte, sizes, properties when reset, code.
fn push_lzma_chunk(out: &mut Vec<u8>, packed: &[u8], unpacked: usize, reset: Reset) {
    let u = unpacked - 1;
    let c = packed.len() - 1;
    out.push(0x80 | ((reset as u8) << 5) | (u >> 16) as u8);
    out.extend_from_slice(&(u as u16).to_be_bytes());
    out.extend_from_slice(&(c as u16).to_be_bytes());
    if matches!(reset, Reset::StateAndProps | Reset::Everything) {
        out.push(PROPS);
    }
    out.extend_from_slice(packed);
}

/// Uncompressed chunks holding `data`; the first one resets the
/// dictionary when `first_of_block`.
fn push_stored(out: &mut Vec<u8>, data: &[u8], first_of_block: bool) {
    for (i, piece) in data.chunks(STORED_MAX).enumerate() {
        out.push(if first_of_block && i == 0 { 0x01 } else { 0x02 });
        out.extend_from_slice(&((piece.len() - 1) as u16).to_be_bytes());
        out.extend_from_slice(piece);
    }
}
