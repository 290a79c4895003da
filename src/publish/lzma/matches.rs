//! Finding earlier occurrences of the bytes at a position: hash chains
//! over 4-byte prefixes within one block.

use super::super::deflate::MAX_DIST;

const HASH_BITS: u32 = 16;
/// Chain links followed per search: a short search keeps compression fast.
pub const DEPTH: u32 = 4;
/// A match this long is taken without looking further.
pub const NICE_LEN: u32 = 128;
/// The largest dictionary a block header names ([`super::dict_size`]):
/// no match may reach back further, whatever the block's length.
pub const DICT_MAX: usize = 1 << 23;

/// A match: `len` bytes at distance `dist + 1`, and the longest match
/// found within deflate's 32 KiB window (the same one when it is there):
/// the gzip member is coded from the same parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Match {
    pub len: u32,
    pub dist: u32,
    pub near_len: u32,
    pub near_dist: u32,
}

/// Hash chains of one block's data.
pub struct MatchFinder {
    /// Last position + 1 with each hash (0: none).
    head: Vec<u32>,
    /// Previous position + 1 with the same hash as each position.
    chain: Vec<u32>,
    /// Positions below this are in the chains.
    inserted: usize,
}

impl MatchFinder {
    /// Empty chains for a block of `len` bytes.
    pub fn new(len: usize) -> MatchFinder {
        MatchFinder {
            head: vec![0; 1 << HASH_BITS],
            chain: vec![0; len],
            inserted: 0,
        }
    }

    /// Leaves the positions before `end` not yet added out of the chains.
    #[inline]
    pub fn skip_to(&mut self, end: usize) {
        self.inserted = self.inserted.max(end);
    }

    /// Adds every position before `end` to the chains.
    #[inline]
    pub fn insert_to(&mut self, data: &[u8], end: usize) {
        let last = data.len().saturating_sub(3);
        while self.inserted < end.min(last) {
            let pos = self.inserted;
            let h = hash4(data, pos);
            self.chain[pos] = self.head[h];
            self.head[h] = pos as u32 + 1;
            self.inserted += 1;
        }
        self.inserted = self.inserted.max(end);
    }

    /// The longest match at `pos` (nearest among equals), at most `limit`
    /// long; inserts `pos` first. A length below 4 means none.
    #[inline]
    pub fn find(&mut self, data: &[u8], pos: usize, limit: usize) -> Match {
        self.insert_to(data, pos + 1);
        let mut best = Match::default();
        if limit < 4 {
            return best;
        }
        let mut candidate = self.chain[pos];
        let mut depth = DEPTH;
        // Links go from near to far: the best before the first link out of
        // deflate's window is the best within it.
        let mut near = None;
        while candidate != 0 && depth > 0 {
            let at = candidate as usize - 1;
            if pos - at > DICT_MAX {
                break; // and every later link is further still
            }
            if pos - at > MAX_DIST as usize && near.is_none() {
                near = Some((best.len, best.dist));
            }
            let best_len = best.len as usize;
            // One byte past the best so far decides whether this can beat it.
            if best_len < limit && data[at + best_len] == data[pos + best_len] {
                let len = match_len(data, at, pos, limit);
                if len > best_len {
                    best.len = len as u32;
                    best.dist = (pos - at - 1) as u32;
                    if len >= NICE_LEN as usize || len >= limit {
                        break;
                    }
                }
            }
            candidate = self.chain[at];
            depth -= 1;
        }
        (best.near_len, best.near_dist) = near.unwrap_or((best.len, best.dist));
        best
    }
}

#[inline(always)]
fn hash4(data: &[u8], pos: usize) -> usize {
    let word = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4 bytes"));
    (word.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

/// How many bytes at `a` and `b` (a < b) agree, at most `limit`.
#[inline(always)]
pub fn match_len(data: &[u8], a: usize, b: usize, limit: usize) -> usize {
    let mut len = 0;
    while len + 8 <= limit {
        let x = u64::from_le_bytes(data[a + len..a + len + 8].try_into().expect("8 bytes"));
        let y = u64::from_le_bytes(data[b + len..b + len + 8].try_into().expect("8 bytes"));
        let diff = x ^ y;
        if diff != 0 {
            return len + (diff.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    while len < limit && data[a + len] == data[b + len] {
        len += 1;
    }
    len
}
