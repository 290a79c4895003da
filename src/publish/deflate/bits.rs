//! Writing deflate's bit stream: least significant bit first.

/// Bits gathered in a word, flushed to bytes.
pub struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    count: u32,
}

impl BitWriter {
    pub fn with_capacity(bytes: usize) -> BitWriter {
        BitWriter {
            out: Vec::with_capacity(bytes),
            acc: 0,
            count: 0,
        }
    }

    /// Appends the low `count` bits of `value` (at most 32).
    #[inline(always)]
    pub fn bits(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.count;
        self.count += count;
        if self.count >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.count -= 32;
        }
    }

    /// Pads with zero bits to a byte boundary.
    pub fn align(&mut self) {
        let pad = (8 - self.count % 8) % 8;
        self.bits(0, pad);
        while self.count >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.count -= 8;
        }
    }

    /// Appends whole bytes; the stream must be aligned.
    pub fn bytes(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.count, 0, "aligned");
        self.out.extend_from_slice(bytes);
    }

    /// The bytes, the last one padded with zero bits.
    pub fn finish(mut self) -> Vec<u8> {
        self.align();
        self.out
    }
}
