//! The four checksums a `Release` lists, computed incrementally with a
//! state that can be saved and resumed.
//!
//! An index of 60,000 packages is about 90 MB of text; hashing it four ways
//! costs more than everything else an incremental publish does. Saving the
//! hash state after each chunk lets the next publish resume from the last
//! chunk that did not change instead of hashing the whole file again.

use super::sha512_lanes;
use sha2::digest::generic_array::GenericArray;

/// MD5, SHA-1, SHA-256 and SHA-512 of one byte stream, resumable.
#[derive(Clone, PartialEq, Eq)]
pub struct MultiHasher {
    md5: [u32; 4],
    sha1: [u32; 5],
    sha256: [u32; 8],
    sha512: [u64; 8],
    /// Bytes hashed so far, including `pending`.
    len: u64,
    /// Less than one 128-byte block not yet compressed.
    pending: Vec<u8>,
}

/// Where hashing runs: on the calling thread only, or split with the
/// rayon pool. A caller outside the pool waits for its share to get
/// through the pool's queue, so it splits only when nothing else is queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cores {
    This,
    Both,
}

/// Final digests, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexDigests {
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub sha512: String,
}

impl std::fmt::Debug for MultiHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MultiHasher({} bytes)", self.len)
    }
}

impl Default for MultiHasher {
    fn default() -> MultiHasher {
        MultiHasher {
            md5: [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476],
            sha1: [
                0x6745_2301,
                0xEFCD_AB89,
                0x98BA_DCFE,
                0x1032_5476,
                0xC3D2_E1F0,
            ],
            sha256: [
                0x6a09_e667,
                0xbb67_ae85,
                0x3c6e_f372,
                0xa54f_f53a,
                0x510e_527f,
                0x9b05_688c,
                0x1f83_d9ab,
                0x5be0_cd19,
            ],
            sha512: sha512_lanes::INIT,
            len: 0,
            pending: Vec::with_capacity(128),
        }
    }
}

impl MultiHasher {
    /// Hashes more bytes, MD5 beside the SHAs on the other core when
    /// there are many.
    pub fn update(&mut self, data: &[u8]) {
        self.update_on(data, Cores::Both);
    }

    /// Hashes more bytes on `cores`.
    pub fn update_on(&mut self, data: &[u8], cores: Cores) {
        MultiHasher::update_streams([self], [data], cores);
    }

    /// Hashes more bytes of several streams, `data[i]` for `hashers[i]`.
    /// MD5 is a chain in which each step waits for the one before, so it
    /// leaves most of a core idle; the streams' chains are interleaved to
    /// fill it (three streams hash at about 2.4 times the speed of one).
    pub fn update_streams<const N: usize>(
        mut hashers: [&mut MultiHasher; N],
        data: [&[u8]; N],
        cores: Cores,
    ) {
        let mut blocks: [&[u8]; N] = [&[]; N];
        for ((hasher, data), blocks) in hashers.iter_mut().zip(data).zip(&mut blocks) {
            *blocks = hasher.take_in(data, cores);
        }
        MultiHasher::compress_streams(hashers, blocks, cores);
    }

    /// Compresses whole 128-byte blocks of each stream with every
    /// algorithm; MD5 runs beside the three SHAs on the other core if allowed.
    fn compress_streams<const N: usize>(
        mut hashers: [&mut MultiHasher; N],
        blocks: [&[u8]; N],
        cores: Cores,
    ) {
        let mut md5s = Vec::with_capacity(N);
        let mut shas = Vec::with_capacity(N);
        let mut sha512s = Vec::with_capacity(N);
        for (hasher, blocks) in hashers.iter_mut().zip(blocks) {
            md5s.push((&mut hasher.md5, blocks));
            shas.push((&mut hasher.sha1, &mut hasher.sha256, blocks));
            sha512s.push(&mut hasher.sha512);
        }
        let run_md5 = || md5_streams(md5s);
        let run_shas = || {
            for (sha1, sha256, blocks) in shas {
                sha1::compress(sha1, as_blocks(blocks));
                sha2::compress256(sha256, as_blocks(blocks));
            }
            sha512_lanes::compress(&mut sha512s, &blocks);
        };
        let total: usize = blocks.iter().map(|b| b.len()).sum();
        if cores == Cores::Both && total >= 1 << 16 {
            rayon::join(run_md5, run_shas);
        } else {
            run_md5();
            run_shas();
        }
    }

    /// Counts `data` in: completes and compresses the pending block, keeps
    /// what follows the last whole block pending, and returns the whole
    /// blocks between, which the caller compresses before anything else.
    fn take_in<'d>(&mut self, mut data: &'d [u8], cores: Cores) -> &'d [u8] {
        self.len += data.len() as u64;
        if !self.pending.is_empty() {
            let take = (128 - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < 128 {
                return &[];
            }
            let block = std::mem::take(&mut self.pending);
            MultiHasher::compress_streams([&mut *self], [&block], cores);
            self.pending = block;
            self.pending.clear();
        }
        let (blocks, tail) = data.split_at(data.len() / 128 * 128);
        self.pending.extend_from_slice(tail);
        blocks
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digests of everything hashed so far (the state is kept).
    pub fn finish(&self) -> HexDigests {
        HexDigests {
            size: self.len,
            md5: self.finish_md5(),
            sha1: self.finish_sha1(),
            sha256: self.finish_sha256(),
            sha512: self.finish_sha512(),
        }
    }

    fn padded(&self, block: usize, length_bytes: usize, big_endian: bool) -> Vec<u8> {
        let tail = self.pending.len() % block;
        let head = self.pending.len() - tail;
        let mut out = self.pending[head..].to_vec();
        out.push(0x80);
        while out.len() % block != block - length_bytes {
            out.push(0);
        }
        let bits = u128::from(self.len) * 8;
        if big_endian {
            out.extend_from_slice(&bits.to_be_bytes()[16 - length_bytes..]);
        } else {
            out.extend_from_slice(&bits.to_le_bytes()[..length_bytes]);
        }
        out
    }

    // The 64-byte-block algorithms first compress any whole 64-byte half
    // of the pending bytes, then the padded tail.
    fn finish_md5(&self) -> String {
        let mut state = self.md5;
        let head = self.pending.len() / 64 * 64;
        self.pending[..head]
            .chunks_exact(64)
            .for_each(|b| md5_block(&mut state, b));
        self.padded(64, 8, false)
            .chunks_exact(64)
            .for_each(|b| md5_block(&mut state, b));
        hex::encode(
            state
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect::<Vec<u8>>(),
        )
    }

    fn finish_sha1(&self) -> String {
        let mut state = self.sha1;
        let head = self.pending.len() / 64 * 64;
        sha1::compress(&mut state, as_blocks(&self.pending[..head]));
        sha1::compress(&mut state, as_blocks(&self.padded(64, 8, true)));
        hex::encode(
            state
                .iter()
                .flat_map(|w| w.to_be_bytes())
                .collect::<Vec<u8>>(),
        )
    }

    fn finish_sha256(&self) -> String {
        let mut state = self.sha256;
        let head = self.pending.len() / 64 * 64;
        sha2::compress256(&mut state, as_blocks(&self.pending[..head]));
        sha2::compress256(&mut state, as_blocks(&self.padded(64, 8, true)));
        hex::encode(
            state
                .iter()
                .flat_map(|w| w.to_be_bytes())
                .collect::<Vec<u8>>(),
        )
    }

    fn finish_sha512(&self) -> String {
        let mut state = self.sha512;
        sha2::compress512(&mut state, as_blocks(&self.padded(128, 16, true)));
        hex::encode(
            state
                .iter()
                .flat_map(|w| w.to_be_bytes())
                .collect::<Vec<u8>>(),
        )
    }

    /// The state as bytes, to resume later with [`MultiHasher::from_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(200 + self.pending.len());
        self.md5
            .iter()
            .for_each(|w| out.extend_from_slice(&w.to_le_bytes()));
        self.sha1
            .iter()
            .for_each(|w| out.extend_from_slice(&w.to_le_bytes()));
        self.sha256
            .iter()
            .for_each(|w| out.extend_from_slice(&w.to_le_bytes()));
        self.sha512
            .iter()
            .for_each(|w| out.extend_from_slice(&w.to_le_bytes()));
        out.extend_from_slice(&self.len.to_le_bytes());
        out.push(self.pending.len() as u8);
        out.extend_from_slice(&self.pending);
        out
    }

    /// Restores a state saved by [`MultiHasher::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<MultiHasher> {
        let mut reader = WordReader(bytes);
        let mut h = MultiHasher::default();
        h.md5
            .iter_mut()
            .try_for_each(|w| reader.u32().map(|v| *w = v))?;
        h.sha1
            .iter_mut()
            .try_for_each(|w| reader.u32().map(|v| *w = v))?;
        h.sha256
            .iter_mut()
            .try_for_each(|w| reader.u32().map(|v| *w = v))?;
        h.sha512
            .iter_mut()
            .try_for_each(|w| reader.u64().map(|v| *w = v))?;
        h.len = reader.u64()?;
        let pending = usize::from(*reader.0.first()?);
        let rest = reader.0.get(1..)?;
        if pending >= 128 || rest.len() != pending || h.len % 128 != pending as u64 {
            return None;
        }
        h.pending.extend_from_slice(rest);
        Some(h)
    }
}

struct WordReader<'a>(&'a [u8]);

impl WordReader<'_> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_at_checked(4)?;
        self.0 = rest;
        Some(u32::from_le_bytes(head.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_at_checked(8)?;
        self.0 = rest;
        Some(u64::from_le_bytes(head.try_into().ok()?))
    }
}

/// Views whole blocks of bytes as the block arrays the compress functions take.
pub(super) fn as_blocks<N: sha2::digest::generic_array::ArrayLength<u8>>(
    bytes: &[u8],
) -> &[GenericArray<u8, N>] {
    let n = N::USIZE;
    assert_eq!(bytes.len() % n, 0, "whole blocks only");
    // SAFETY: GenericArray<u8, N> is a transparent [u8; N] with alignment 1.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len() / n) }
}

/// Streams hashed in lockstep: while at least `min` of them have a whole
/// `block` left, `hash` gets up to `width` of them and the number of
/// blocks every one of those has; those blocks are then taken off. The
/// streams that are left, fewer than `min`, are returned.
pub(super) fn in_lockstep<'d, S>(
    mut lanes: Vec<(S, &'d [u8])>,
    block: usize,
    (min, width): (usize, usize),
    mut hash: impl FnMut(&mut [(S, &'d [u8])], usize),
) -> Vec<(S, &'d [u8])> {
    lanes.retain(|(_, data)| data.len() >= block);
    while lanes.len() >= min.max(1) {
        let take = width.min(lanes.len());
        let group = &mut lanes[..take];
        let blocks = group
            .iter()
            .map(|(_, d)| d.len() / block)
            .min()
            .unwrap_or(0);
        hash(group, blocks);
        for (_, data) in group.iter_mut() {
            *data = &data[blocks * block..];
        }
        lanes.retain(|(_, data)| data.len() >= block);
    }
    lanes
}

/// MD5 (RFC 1321) of several streams' whole 64-byte blocks: up to three
/// at a time, interleaved, while more than one stream has blocks left.
fn md5_streams(lanes: Vec<(&mut [u32; 4], &[u8])>) {
    in_lockstep(lanes, 64, (1, 3), |group, blocks| match group {
        [(a, da)] => md5_run([a], [da], blocks),
        [(a, da), (b, db)] => md5_run([a, b], [da, db], blocks),
        [(a, da), (b, db), (c, dc)] => md5_run([a, b, c], [da, db, dc], blocks),
        _ => unreachable!("groups of one to three lanes"),
    });
}

/// The first `blocks` blocks of each of `N` streams.
fn md5_run<const N: usize>(mut states: [&mut [u32; 4]; N], data: [&[u8]; N], blocks: usize) {
    for i in 0..blocks {
        let block: [&[u8]; N] = std::array::from_fn(|l| &data[l][i * 64..(i + 1) * 64]);
        md5_blocks(&mut states, block);
    }
}

/// One MD5 block.
fn md5_block(state: &mut [u32; 4], block: &[u8]) {
    md5_blocks(&mut [state], [block]);
}

/// One 64-byte block of each of `N` streams. The steps of the streams are
/// independent, so the processor overlaps their dependency chains; and
/// each step's function is written so that the part not depending on the
/// previous step's result is computed beside it (the chain is MD5's limit).
#[inline(always)]
fn md5_blocks<const N: usize>(states: &mut [&mut [u32; 4]; N], blocks: [&[u8]; N]) {
    const K: [u32; 64] = md5_constants();
    let mut m = [[0u32; 16]; N];
    for (words, block) in m.iter_mut().zip(blocks) {
        for (word, bytes) in words.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_le_bytes(bytes.try_into().expect("4 bytes"));
        }
    }
    let mut a: [u32; N] = std::array::from_fn(|l| states[l][0]);
    let mut b: [u32; N] = std::array::from_fn(|l| states[l][1]);
    let mut c: [u32; N] = std::array::from_fn(|l| states[l][2]);
    let mut d: [u32; N] = std::array::from_fn(|l| states[l][3]);
    // One step of every stream: `$a = $b + (($a + F + K[i] + word) <<< s)`,
    // with F of ($b, $c, $d) and the word index of round $round.
    macro_rules! step {
        ($round:tt, $a:ident, $b:ident, $c:ident, $d:ident, $i:expr, $s:expr) => {
            for l in 0..N {
                let sum = $a[l].wrapping_add(K[$i]).wrapping_add(m[l][word($round, $i)]);
                $a[l] = $b[l].wrapping_add(step!(@f $round, sum, $b[l], $c[l], $d[l]).rotate_left($s));
            }
        };
        (@f 0, $sum:expr, $b:expr, $c:expr, $d:expr) => {
            $sum.wrapping_add($d ^ ($b & ($c ^ $d)))
        };
        // G's two terms share no bit: adding them lets c & !d join the sum
        // before b is known.
        (@f 1, $sum:expr, $b:expr, $c:expr, $d:expr) => {
            $sum.wrapping_add($c & !$d).wrapping_add($b & $d)
        };
        (@f 2, $sum:expr, $b:expr, $c:expr, $d:expr) => {
            $sum.wrapping_add($b ^ ($c ^ $d))
        };
        (@f 3, $sum:expr, $b:expr, $c:expr, $d:expr) => {
            $sum.wrapping_add($c ^ ($b | !$d))
        };
    }
    // Four steps with the round's rotations, starting at step $i.
    macro_rules! four {
        ($round:tt, $i:expr, [$s0:expr, $s1:expr, $s2:expr, $s3:expr]) => {
            step!($round, a, b, c, d, $i, $s0);
            step!($round, d, a, b, c, $i + 1, $s1);
            step!($round, c, d, a, b, $i + 2, $s2);
            step!($round, b, c, d, a, $i + 3, $s3);
        };
    }
    macro_rules! round {
        ($round:tt, $rotations:tt) => {
            four!($round, 16 * $round, $rotations);
            four!($round, 16 * $round + 4, $rotations);
            four!($round, 16 * $round + 8, $rotations);
            four!($round, 16 * $round + 12, $rotations);
        };
    }
    round!(0, [7, 12, 17, 22]);
    round!(1, [5, 9, 14, 20]);
    round!(2, [4, 11, 16, 23]);
    round!(3, [6, 10, 15, 21]);
    for (l, state) in states.iter_mut().enumerate() {
        state[0] = state[0].wrapping_add(a[l]);
        state[1] = state[1].wrapping_add(b[l]);
        state[2] = state[2].wrapping_add(c[l]);
        state[3] = state[3].wrapping_add(d[l]);
    }
}

/// Which message word step `i` of `round` adds.
const fn word(round: usize, i: usize) -> usize {
    match round {
        0 => i,
        1 => (5 * i + 1) % 16,
        2 => (3 * i + 5) % 16,
        _ => (7 * i) % 16,
    }
}

/// MD5's additive constants, floor(abs(sin(i + 1)) * 2^32).
const fn md5_constants() -> [u32; 64] {
    [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(data: &[u8]) -> HexDigests {
        let d = crate::pool::Digests::of(data);
        HexDigests {
            size: d.size,
            md5: hex::encode(d.md5),
            sha1: hex::encode(d.sha1),
            sha256: d.sha256.to_hex(),
            sha512: hex::encode(d.sha512),
        }
    }

    #[test]
    fn matches_the_reference_implementations_at_every_length() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [
            0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 255, 256, 999,
        ] {
            let mut h = MultiHasher::default();
            h.update(&data[..len]);
            assert_eq!(h.finish(), reference(&data[..len]), "length {len}");
        }
    }

    proptest! {
        #[test]
        fn split_updates_and_saved_states_agree(data in proptest::collection::vec(any::<u8>(), 0..3000), cut in 0usize..3000) {
            let cut = cut.min(data.len());
            let mut first = MultiHasher::default();
            first.update(&data[..cut]);
            let mut resumed = MultiHasher::from_bytes(&first.to_bytes()).unwrap();
            resumed.update(&data[cut..]);
            prop_assert_eq!(resumed.finish(), reference(&data));
        }
    }

    #[test]
    fn large_updates_agree_on_either_cores() {
        let data: Vec<u8> = (0..(1u32 << 17) + 77)
            .map(|i| (i * 31 + i / 251) as u8)
            .collect();
        for cores in [Cores::This, Cores::Both] {
            let mut h = MultiHasher::default();
            h.update_on(&data[..100], cores);
            h.update_on(&data[100..], cores);
            assert_eq!(h.finish(), reference(&data), "{cores:?}");
        }
    }

    #[test]
    fn interleaved_streams_agree_with_one_at_a_time() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13 + i / 97) as u8).collect();
        // Unequal lengths, so that three, two and one stream run interleaved;
        // the first updates leave partial blocks pending in each.
        let ends = [(5, 299_999), (64, 100_000), (127, 30_011)];
        let mut hashers: [MultiHasher; 3] = Default::default();
        let firsts: [&[u8]; 3] = std::array::from_fn(|i| &data[..ends[i].0]);
        let rests: [&[u8]; 3] = std::array::from_fn(|i| &data[ends[i].0..ends[i].1]);
        for cores in [Cores::This, Cores::Both] {
            MultiHasher::update_streams(hashers.each_mut(), firsts, cores);
            MultiHasher::update_streams(hashers.each_mut(), rests, cores);
            for (hasher, (_, end)) in hashers.iter().zip(ends) {
                assert_eq!(hasher.finish(), reference(&data[..end]), "{cores:?}");
            }
            hashers = Default::default();
        }
    }

    #[test]
    fn corrupt_state_is_refused() {
        let mut h = MultiHasher::default();
        h.update(b"abc");
        let mut bytes = h.to_bytes();
        bytes.pop();
        assert!(MultiHasher::from_bytes(&bytes).is_none());
    }
}
