//! SHA-512 of several streams at once, one per 64-bit lane of an AVX-512
//! vector register, for the three files of an index.
//!
//! SHA-512 was the largest of the four hashes in a full publish (about 8 %
//! of its CPU time). One stream cannot go faster than its rounds, which
//! run one after another, but the rounds of `Packages`, `Packages.gz` and
//! `Packages.xz` are independent: with AVX-512's 64-bit rotates and
//! three-input logic, a round of four lanes costs about as many
//! instructions as a scalar round of one. Three streams hash at about 2.3
//! times the speed of the `sha2` crate on one. Where only one stream has
//! blocks left, or the processor lacks AVX-512, the `sha2` crate does it.

use super::checksums::{as_blocks, in_lockstep};

/// SHA-512's initial state (FIPS 180-4, 5.3.5).
pub const INIT: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

/// Compresses whole 128-byte blocks of each stream, `blocks[i]` into `states[i]`.
pub fn compress(states: &mut [&mut [u64; 8]], blocks: &[&[u8]]) {
    let lanes: Vec<(&mut [u64; 8], &[u8])> = states
        .iter_mut()
        .map(|s| &mut **s)
        .zip(blocks.iter().copied())
        .collect();
    // Two streams or more to a vector; what one stream has left, sha2 does.
    let min = if vector::available() { 2 } else { usize::MAX };
    let rest = in_lockstep(lanes, 128, (min, vector::LANES), vector::compress);
    for (state, data) in rest {
        sha2::compress512(state, as_blocks(data));
    }
}

/// The round constants (FIPS 180-4, 4.2.3).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

#[cfg(target_arch = "x86_64")]
mod vector {
    use super::K;
    use std::arch::x86_64::*;

    /// Streams per vector: four 64-bit lanes of a 256-bit register.
    pub const LANES: usize = 4;

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }

    /// The first `count` blocks of each of up to [`LANES`] streams.
    pub fn compress(lanes: &mut [(&mut [u64; 8], &[u8])], count: usize) {
        assert!(lanes.len() <= LANES && lanes.iter().all(|(_, b)| b.len() >= count * 128));
        assert!(available());
        // SAFETY: the processor has the features (checked above), and every
        // lane holds `count` blocks (checked above).
        unsafe { compress_avx512(lanes, count) }
    }

    /// The lanes' states as vectors: `v[i]` holds word `i` of every lane.
    #[target_feature(enable = "avx512f,avx512vl")]
    fn gather(lanes: &[(&mut [u64; 8], &[u8])]) -> [__m256i; 8] {
        std::array::from_fn(|i| {
            let word = |l: usize| lanes.get(l).map_or(0, |(s, _)| s[i] as i64);
            _mm256_set_epi64x(word(3), word(2), word(1), word(0))
        })
    }

    #[target_feature(enable = "avx512f,avx512vl")]
    fn compress_avx512(lanes: &mut [(&mut [u64; 8], &[u8])], count: usize) {
        let mut state = gather(lanes);
        for block in 0..count {
            // Message word `t` of every lane (big-endian); a missing lane
            // hashes zeros, and its result is dropped.
            let word = |l: usize, t: usize| -> i64 {
                lanes.get(l).map_or(0, |(_, data)| {
                    let at = block * 128 + t * 8;
                    u64::from_be_bytes(data[at..at + 8].try_into().expect("8 bytes")) as i64
                })
            };
            let mut w: [__m256i; 16] = std::array::from_fn(|t| {
                _mm256_set_epi64x(word(3, t), word(2, t), word(1, t), word(0, t))
            });
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = state;
            for (t, k) in K.iter().enumerate() {
                let wt = if t < 16 { w[t] } else { schedule(&mut w, t) };
                // 0x96: a ^ b ^ c; 0xCA: e ? f : g (Ch); 0xE8: majority (Maj).
                let sigma1 = _mm256_ternarylogic_epi64::<0x96>(
                    _mm256_ror_epi64::<14>(e),
                    _mm256_ror_epi64::<18>(e),
                    _mm256_ror_epi64::<41>(e),
                );
                let ch = _mm256_ternarylogic_epi64::<0xCA>(e, f, g);
                let kw = _mm256_add_epi64(wt, _mm256_set1_epi64x(*k as i64));
                let t1 = _mm256_add_epi64(_mm256_add_epi64(h, sigma1), _mm256_add_epi64(ch, kw));
                let sigma0 = _mm256_ternarylogic_epi64::<0x96>(
                    _mm256_ror_epi64::<28>(a),
                    _mm256_ror_epi64::<34>(a),
                    _mm256_ror_epi64::<39>(a),
                );
                let t2 = _mm256_add_epi64(sigma0, _mm256_ternarylogic_epi64::<0xE8>(a, b, c));
                (h, g, f, e) = (g, f, e, _mm256_add_epi64(d, t1));
                (d, c, b, a) = (c, b, a, _mm256_add_epi64(t1, t2));
            }
            for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
                *s = _mm256_add_epi64(*s, v);
            }
        }
        for (i, v) in state.iter().enumerate() {
            let mut words = [0u64; LANES];
            // SAFETY: `words` is 32 bytes, an unaligned store's width.
            unsafe { _mm256_storeu_si256(words.as_mut_ptr().cast(), *v) };
            for ((s, _), word) in lanes.iter_mut().zip(words) {
                s[i] = word;
            }
        }
    }

    /// Message word `t` (16 to 79), from the ring of the last sixteen.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl")]
    fn schedule(w: &mut [__m256i; 16], t: usize) -> __m256i {
        let w15 = w[(t + 1) % 16];
        let w2 = w[(t + 14) % 16];
        let s0 = _mm256_ternarylogic_epi64::<0x96>(
            _mm256_ror_epi64::<1>(w15),
            _mm256_ror_epi64::<8>(w15),
            _mm256_srli_epi64::<7>(w15),
        );
        let s1 = _mm256_ternarylogic_epi64::<0x96>(
            _mm256_ror_epi64::<19>(w2),
            _mm256_ror_epi64::<61>(w2),
            _mm256_srli_epi64::<6>(w2),
        );
        let next = _mm256_add_epi64(
            _mm256_add_epi64(w[t % 16], s0),
            _mm256_add_epi64(w[(t + 9) % 16], s1),
        );
        w[t % 16] = next;
        next
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod vector {
    pub const LANES: usize = 1;

    pub fn available() -> bool {
        false
    }

    pub fn compress(_: &mut [(&mut [u64; 8], &[u8])], _: usize) {
        unreachable!("never available")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_at_a_time(data: &[&[u8]]) -> Vec<[u64; 8]> {
        data.iter()
            .map(|d| {
                let mut state = INIT;
                sha2::compress512(&mut state, as_blocks(d));
                state
            })
            .collect()
    }

    #[test]
    fn lanes_agree_with_one_stream_at_a_time() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 29 + i / 113) as u8).collect();
        // One to six streams of unequal lengths: groups of four and of
        // fewer, lanes that run out early, one stream left to the end.
        for streams in 1..=6 {
            let parts: Vec<&[u8]> = (0..streams)
                .map(|i| &data[i * 128..i * 128 + 128 * (50 + 300 * i)])
                .collect();
            let mut states = vec![INIT; streams];
            let mut refs: Vec<&mut [u64; 8]> = states.iter_mut().collect();
            compress(&mut refs, &parts);
            assert_eq!(states, one_at_a_time(&parts), "{streams} streams");
        }
        if !vector::available() {
            eprintln!("no AVX-512 here: only the sha2 fallback was checked");
        }
    }
}
