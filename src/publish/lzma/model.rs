//! The LZMA probability model (lc=3, lp=0, pb=2) and how each kind of
//! symbol is coded with it: literal, match, repeated match.

use super::range::{PROB_INIT, RangeEncoder};

/// Literal context bits, literal position bits, position bits: xz's defaults.
pub const LC: u32 = 3;
pub const LP: u32 = 0;
pub const PB: u32 = 2;
/// The properties byte of an LZMA2 chunk that sets them.
pub const PROPS: u8 = ((PB * 5 + LP) * 9 + LC) as u8;

const STATES: usize = 12;
const POS_STATES: usize = 1 << PB;
const LIT_STATES: u8 = 7;
pub const MATCH_LEN_MIN: u32 = 2;
pub const MATCH_LEN_MAX: u32 = 273;
const DIST_STATES: usize = 4;
const DIST_MODEL_END: u32 = 14;
const FULL_DISTANCES: usize = 128;
const ALIGN_BITS: u32 = 4;

/// Probabilities of the three ranges a match length falls in.
#[derive(Clone)]
struct LengthModel {
    choice: u16,
    choice2: u16,
    low: [[u16; 8]; POS_STATES],
    mid: [[u16; 8]; POS_STATES],
    high: [u16; 256],
}

impl LengthModel {
    fn new() -> LengthModel {
        LengthModel {
            choice: PROB_INIT,
            choice2: PROB_INIT,
            low: [[PROB_INIT; 8]; POS_STATES],
            mid: [[PROB_INIT; 8]; POS_STATES],
            high: [PROB_INIT; 256],
        }
    }

    #[inline(always)]
    fn encode(&mut self, rc: &mut RangeEncoder, len: u32, pos_state: usize) {
        let len = len - MATCH_LEN_MIN;
        if len < 8 {
            rc.bit(&mut self.choice, 0);
            rc.bittree::<3, 8>(&mut self.low[pos_state], len);
        } else if len < 16 {
            rc.bit(&mut self.choice, 1);
            rc.bit(&mut self.choice2, 0);
            rc.bittree::<3, 8>(&mut self.mid[pos_state], len - 8);
        } else {
            rc.bit(&mut self.choice, 1);
            rc.bit(&mut self.choice2, 1);
            rc.bittree::<8, 256>(&mut self.high, len - 16);
        }
    }
}

/// Everything the decoder's model holds: probabilities, state, last distances.
#[derive(Clone)]
pub struct Model {
    state: u8,
    /// The last four match distances, minus one.
    pub reps: [u32; 4],
    is_match: [[u16; POS_STATES]; STATES],
    is_rep: [u16; STATES],
    is_rep0: [u16; STATES],
    is_rep1: [u16; STATES],
    is_rep2: [u16; STATES],
    is_rep0_long: [[u16; POS_STATES]; STATES],
    literal: [[u16; 0x300]; 1 << (LC + LP)],
    dist_slot: [[u16; 64]; DIST_STATES],
    dist_special: [u16; FULL_DISTANCES - DIST_MODEL_END as usize],
    dist_align: [u16; 1 << ALIGN_BITS],
    match_len: LengthModel,
    rep_len: LengthModel,
}

impl Model {
    /// The state an LZMA2 chunk with a state reset starts from.
    pub fn new() -> Model {
        Model {
            state: 0,
            reps: [0; 4],
            is_match: [[PROB_INIT; POS_STATES]; STATES],
            is_rep: [PROB_INIT; STATES],
            is_rep0: [PROB_INIT; STATES],
            is_rep1: [PROB_INIT; STATES],
            is_rep2: [PROB_INIT; STATES],
            is_rep0_long: [[PROB_INIT; POS_STATES]; STATES],
            literal: [[PROB_INIT; 0x300]; 1 << (LC + LP)],
            dist_slot: [[PROB_INIT; 64]; DIST_STATES],
            dist_special: [PROB_INIT; FULL_DISTANCES - DIST_MODEL_END as usize],
            dist_align: [PROB_INIT; 1 << ALIGN_BITS],
            match_len: LengthModel::new(),
            rep_len: LengthModel::new(),
        }
    }

    /// Codes `data[pos]` as a literal.
    #[inline(always)]
    pub fn literal(&mut self, rc: &mut RangeEncoder, data: &[u8], pos: usize) {
        let pos_state = pos & (POS_STATES - 1);
        let state = usize::from(self.state);
        rc.bit(&mut self.is_match[state][pos_state], 0);
        let prev = if pos > 0 { data[pos - 1] } else { 0 };
        let probs = &mut self.literal[usize::from(prev >> (8 - LC))];
        let symbol = u32::from(data[pos]);
        if self.state < LIT_STATES {
            rc.bittree::<8, 0x300>(probs, symbol);
        } else {
            let match_byte = u32::from(data[pos - self.reps[0] as usize - 1]);
            matched_literal(rc, probs, match_byte, symbol);
        }
        self.state = match self.state {
            0..=3 => 0,
            4..=9 => self.state - 3,
            _ => self.state - 6,
        };
    }

    /// Codes a match of `len` bytes at distance `dist + 1`.
    #[inline(always)]
    pub fn matched(&mut self, rc: &mut RangeEncoder, pos: usize, dist: u32, len: u32) {
        let pos_state = pos & (POS_STATES - 1);
        let state = usize::from(self.state);
        rc.bit(&mut self.is_match[state][pos_state], 1);
        rc.bit(&mut self.is_rep[state], 0);
        self.match_len.encode(rc, len, pos_state);
        let dist_state = (len - MATCH_LEN_MIN).min(DIST_STATES as u32 - 1) as usize;
        let slot = dist_slot(dist);
        rc.bittree::<6, 64>(&mut self.dist_slot[dist_state], slot);
        if slot >= 4 {
            let footer_bits = (slot >> 1) - 1;
            let base = (2 | (slot & 1)) << footer_bits;
            let reduced = dist - base;
            if slot < DIST_MODEL_END {
                // The tree's node 1 is at `base - slot`: slots share one array.
                let start = ((base - slot) as usize).wrapping_sub(1);
                rc.bittree_reverse_from(&mut self.dist_special, start, footer_bits, reduced);
            } else {
                rc.direct_bits(reduced >> ALIGN_BITS, footer_bits - ALIGN_BITS);
                rc.bittree_reverse(&mut self.dist_align, ALIGN_BITS, reduced & 15);
            }
        }
        self.reps = [dist, self.reps[0], self.reps[1], self.reps[2]];
        self.state = if self.state < LIT_STATES { 7 } else { 10 };
    }

    /// Codes a match of `len` (at least 2) at the distance `reps[rep]`.
    #[inline(always)]
    pub fn repeated(&mut self, rc: &mut RangeEncoder, pos: usize, rep: usize, len: u32) {
        let pos_state = pos & (POS_STATES - 1);
        let state = usize::from(self.state);
        rc.bit(&mut self.is_match[state][pos_state], 1);
        rc.bit(&mut self.is_rep[state], 1);
        if rep == 0 {
            rc.bit(&mut self.is_rep0[state], 0);
            rc.bit(&mut self.is_rep0_long[state][pos_state], 1);
        } else {
            let dist = self.reps[rep];
            rc.bit(&mut self.is_rep0[state], 1);
            if rep == 1 {
                rc.bit(&mut self.is_rep1[state], 0);
            } else {
                rc.bit(&mut self.is_rep1[state], 1);
                rc.bit(&mut self.is_rep2[state], (rep - 2) as u32);
                if rep == 3 {
                    self.reps[3] = self.reps[2];
                }
                self.reps[2] = self.reps[1];
            }
            self.reps[1] = self.reps[0];
            self.reps[0] = dist;
        }
        self.rep_len.encode(rc, len, pos_state);
        self.state = if self.state < LIT_STATES { 8 } else { 11 };
    }
}

/// A literal right after a match, coded against the byte the last
/// distance points at until the first bit where they differ.
#[inline(always)]
fn matched_literal(
    rc: &mut RangeEncoder,
    probs: &mut [u16; 0x300],
    mut match_byte: u32,
    symbol: u32,
) {
    let mut offset = 0x100u32;
    let mut symbol = symbol | 0x100;
    loop {
        match_byte <<= 1;
        let match_bit = match_byte & offset;
        let index = (offset + match_bit + (symbol >> 8)) as usize;
        let bit = (symbol >> 7) & 1;
        rc.bit(&mut probs[index], bit);
        symbol <<= 1;
        offset &= !(match_byte ^ symbol);
        if symbol >= 0x10000 {
            break;
        }
    }
}

/// The slot of a distance: its bit length and the bit after the leading one.
#[inline(always)]
fn dist_slot(dist: u32) -> u32 {
    if dist < 4 {
        return dist;
    }
    let n = 31 - dist.leading_zeros();
    (n << 1) | ((dist >> (n - 1)) & 1)
}
