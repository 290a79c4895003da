//! The LZMA range encoder: adaptive binary probabilities coded into bytes.

/// Probabilities are 11-bit fixed point; 1024 is "either bit equally likely".
pub const PROB_INIT: u16 = 1024;
const BIT_MODEL_TOTAL_BITS: u32 = 11;
const MOVE_BITS: u32 = 5;
/// A probability of one (never reached: updates move a fraction of the way).
const PROB_MAX: u32 = 1 << BIT_MODEL_TOTAL_BITS;
const TOP: u32 = 1 << 24;

/// Range encoder state and the bytes it produced so far.
pub struct RangeEncoder {
    low: u64,
    range: u32,
    cache: u8,
    cache_size: u32,
    /// A buffer of fixed size, written at `len`: no call to grow a vector
    /// in the coding loop, so the compiler keeps `low` and `range` in
    /// registers (with a `Vec::push` they went to memory on every bit).
    out: Box<[u8]>,
    len: usize,
}

impl RangeEncoder {
    /// A fresh coder (LZMA2 restarts one per chunk) with room for
    /// `capacity` bytes; coding more panics, so callers stop in time
    /// by [`Self::flushed_len`].
    pub fn new(capacity: usize) -> RangeEncoder {
        RangeEncoder {
            low: 0,
            range: u32::MAX,
            cache: 0,
            cache_size: 1,
            out: vec![0; capacity].into_boxed_slice(),
            len: 0,
        }
    }

    /// An upper bound of what the coder holds once flushed.
    #[inline]
    pub fn flushed_len(&self) -> usize {
        self.len + self.cache_size as usize + 5
    }

    /// Codes one bit with an adaptive probability. Branch-free on the bit:
    /// index text is full of hash digits whose bits no predictor guesses.
    #[inline(always)]
    pub fn bit(&mut self, prob: &mut u16, bit: u32) {
        let p = u32::from(*prob);
        let bound = (self.range >> BIT_MODEL_TOTAL_BITS) * p;
        let mask = 0u32.wrapping_sub(bit);
        self.low += u64::from(bound & mask);
        self.range = (bound & !mask) | (self.range.wrapping_sub(bound) & mask);
        // Toward 2048 for a 0, toward 31 for a 1; the arithmetic shift of a
        // negative step rounds so that both match p += (2048-p)>>5, p -= p>>5.
        let target = ((31 & mask) | (PROB_MAX & !mask)) as i32;
        *prob = (p as i32 + ((target - p as i32) >> MOVE_BITS)) as u16;
        if self.range < TOP {
            self.range <<= 8;
            self.shift_low();
        }
    }

    /// Codes `count` bits of `value`, most significant first, at even odds.
    #[inline]
    pub fn direct_bits(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            self.range >>= 1;
            let bit = (value >> i) & 1;
            self.low += u64::from(self.range & 0u32.wrapping_sub(bit));
            if self.range < TOP {
                self.range <<= 8;
                self.shift_low();
            }
        }
    }

    /// Codes `value` (`BITS` wide) through a binary tree of probabilities,
    /// most significant bit first.
    #[inline(always)]
    pub fn bittree<const BITS: u32, const N: usize>(&mut self, probs: &mut [u16; N], value: u32) {
        const { assert!(N >= 1 << BITS) };
        let mut model = 1usize;
        for i in (0..BITS).rev() {
            let bit = (value >> i) & 1;
            // Nodes stay below 1 << BITS; the mask shows the compiler so,
            // and the bounds check on every bit goes.
            self.bit(&mut probs[model & ((1 << BITS) - 1)], bit);
            model = (model << 1) | bit as usize;
        }
    }

    /// Like [`Self::bittree`], least significant bit first.
    #[inline(always)]
    pub fn bittree_reverse(&mut self, probs: &mut [u16], bits: u32, value: u32) {
        self.bittree_reverse_from(probs, 0, bits, value);
    }

    /// A reverse tree whose node `m` is `probs[base + m]` (node 0 unused,
    /// so `base` may point one before the tree's first probability).
    #[inline(always)]
    pub fn bittree_reverse_from(
        &mut self,
        probs: &mut [u16],
        base: usize,
        bits: u32,
        mut value: u32,
    ) {
        let mut model = 1usize;
        for _ in 0..bits {
            let bit = value & 1;
            value >>= 1;
            self.bit(&mut probs[base.wrapping_add(model)], bit);
            model = (model << 1) | bit as usize;
        }
    }

    /// Writes out what is still held in `low` and the carry cache.
    pub fn finish(mut self) -> Vec<u8> {
        for _ in 0..5 {
            self.shift_low();
        }
        self.out[..self.len].to_vec()
    }

    #[inline]
    fn shift_low(&mut self) {
        if (self.low as u32) < 0xFF00_0000 || (self.low >> 32) != 0 {
            let carry = (self.low >> 32) as u8;
            let mut byte = self.cache;
            loop {
                self.out[self.len] = byte.wrapping_add(carry);
                self.len += 1;
                byte = 0xFF;
                self.cache_size -= 1;
                if self.cache_size == 0 {
                    break;
                }
            }
            self.cache = (self.low >> 24) as u8;
        }
        self.cache_size += 1;
        self.low = (self.low & 0x00FF_FFFF) << 8;
    }
}
