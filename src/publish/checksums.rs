//! The four checksums a `Release` lists, computed incrementally with a
//! state that can be saved and resumed.
//!
//! An index of 60,000 packages is about 90 MB of text; hashing it four ways
//! costs more than everything else an incremental publish does. Saving the
//! hash state after each chunk lets the next publish resume from the last
//! chunk that did not change instead of hashing the whole file again.

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
            sha512: [
                0x6a09_e667_f3bc_c908,
                0xbb67_ae85_84ca_a73b,
                0x3c6e_f372_fe94_f82b,
                0xa54f_f53a_5f1d_36f1,
                0x510e_527f_ade6_82d1,
                0x9b05_688c_2b3e_6c1f,
                0x1f83_d9ab_fb41_bd6b,
                0x5be0_cd19_137e_2179,
            ],
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
    pub fn update_on(&mut self, mut data: &[u8], cores: Cores) {
        self.len += data.len() as u64;
        if !self.pending.is_empty() {
            let take = (128 - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < 128 {
                return;
            }
            let block = std::mem::take(&mut self.pending);
            self.compress(&block, cores);
            self.pending = block;
            self.pending.clear();
        }
        let whole = data.len() / 128 * 128;
        self.compress(&data[..whole], cores);
        self.pending.extend_from_slice(&data[whole..]);
    }

    /// Compresses whole 128-byte blocks with every algorithm; MD5, the
    /// slowest, runs beside the three SHAs on the other core if allowed.
    fn compress(&mut self, blocks: &[u8], cores: Cores) {
        if blocks.is_empty() {
            return;
        }
        let (md5, shas) = (
            &mut self.md5,
            (&mut self.sha1, &mut self.sha256, &mut self.sha512),
        );
        let mut run_md5 = || blocks.chunks_exact(64).for_each(|b| md5_block(md5, b));
        let mut run_shas = || {
            sha1::compress(shas.0, as_blocks(blocks));
            sha2::compress256(shas.1, as_blocks(blocks));
            sha2::compress512(shas.2, as_blocks(blocks));
        };
        if cores == Cores::Both && blocks.len() >= 1 << 16 {
            rayon::join(run_md5, run_shas);
        } else {
            run_md5();
            run_shas();
        }
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
fn as_blocks<N: sha2::digest::generic_array::ArrayLength<u8>>(
    bytes: &[u8],
) -> &[GenericArray<u8, N>] {
    let n = N::USIZE;
    assert_eq!(bytes.len() % n, 0, "whole blocks only");
    // SAFETY: GenericArray<u8, N> is a transparent [u8; N] with alignment 1.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len() / n) }
}

/// One MD5 block (RFC 1321).
fn md5_block(state: &mut [u32; 4], block: &[u8]) {
    const K: [u32; 64] = md5_constants();
    let mut m = [0u32; 16];
    for (word, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
        *word = u32::from_le_bytes(bytes.try_into().expect("4 bytes"));
    }
    let [mut a, mut b, mut c, mut d] = *state;
    // Written out four steps at a time with constant rotations, so that
    // the compiler unrolls all 64 steps: a loop choosing the round function
    // and rotation at run time hashed at about half the speed.
    for i in (0..16).step_by(4) {
        a = md5_step(b, (b & c) | (!b & d), a, m[i], K[i], 7);
        d = md5_step(a, (a & b) | (!a & c), d, m[i + 1], K[i + 1], 12);
        c = md5_step(d, (d & a) | (!d & b), c, m[i + 2], K[i + 2], 17);
        b = md5_step(c, (c & d) | (!c & a), b, m[i + 3], K[i + 3], 22);
    }
    for i in (16..32).step_by(4) {
        let g = |j: usize| m[(5 * j + 1) % 16];
        a = md5_step(b, (d & b) | (!d & c), a, g(i), K[i], 5);
        d = md5_step(a, (c & a) | (!c & b), d, g(i + 1), K[i + 1], 9);
        c = md5_step(d, (b & d) | (!b & a), c, g(i + 2), K[i + 2], 14);
        b = md5_step(c, (a & c) | (!a & d), b, g(i + 3), K[i + 3], 20);
    }
    for i in (32..48).step_by(4) {
        let g = |j: usize| m[(3 * j + 5) % 16];
        a = md5_step(b, b ^ c ^ d, a, g(i), K[i], 4);
        d = md5_step(a, a ^ b ^ c, d, g(i + 1), K[i + 1], 11);
        c = md5_step(d, d ^ a ^ b, c, g(i + 2), K[i + 2], 16);
        b = md5_step(c, c ^ d ^ a, b, g(i + 3), K[i + 3], 23);
    }
    for i in (48..64).step_by(4) {
        let g = |j: usize| m[(7 * j) % 16];
        a = md5_step(b, c ^ (b | !d), a, g(i), K[i], 6);
        d = md5_step(a, b ^ (a | !c), d, g(i + 1), K[i + 1], 10);
        c = md5_step(d, a ^ (d | !b), c, g(i + 2), K[i + 2], 15);
        b = md5_step(c, d ^ (c | !a), b, g(i + 3), K[i + 3], 21);
    }
    state[0] = state[0].wrapping_add(a);
    state[1] = state[1].wrapping_add(b);
    state[2] = state[2].wrapping_add(c);
    state[3] = state[3].wrapping_add(d);
}

/// One MD5 step: the new value of the register `a`, given the round
/// function's value `f` of the other three and `b`.
#[inline(always)]
fn md5_step(b: u32, f: u32, a: u32, m: u32, k: u32, rotation: u32) -> u32 {
    b.wrapping_add(
        a.wrapping_add(f)
            .wrapping_add(k)
            .wrapping_add(m)
            .rotate_left(rotation),
    )
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
    fn corrupt_state_is_refused() {
        let mut h = MultiHasher::default();
        h.update(b"abc");
        let mut bytes = h.to_bytes();
        bytes.pop();
        assert!(MultiHasher::from_bytes(&bytes).is_none());
    }
}
