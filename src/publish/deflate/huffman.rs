//! Length-limited Huffman codes: optimal code lengths by package-merge,
//! and the canonical codes deflate derives from them (RFC 1951, 3.2.2).

/// Optimal code lengths, none above `max_bits`, for symbols with these
/// frequencies (0: unused, length 0). The code is complete whenever two or
/// more symbols are used, as inflaters require; a single used symbol gets
/// length 1.
pub fn lengths(freqs: &[u32], max_bits: u32) -> Vec<u8> {
    let mut used: Vec<(u32, usize)> = freqs
        .iter()
        .enumerate()
        .filter(|(_, f)| **f > 0)
        .map(|(s, f)| (*f, s))
        .collect();
    let mut out = vec![0u8; freqs.len()];
    match used.len() {
        0 => return out,
        1 => {
            out[used[0].1] = 1;
            return out;
        }
        _ => {}
    }
    assert!(
        used.len() <= 1 << max_bits,
        "too many symbols for the limit"
    );
    used.sort_unstable();
    let weights: Vec<u64> = used.iter().map(|(f, _)| u64::from(*f)).collect();
    for (rank, bits) in package_merge(&weights, max_bits).into_iter().enumerate() {
        out[used[rank].1] = bits;
    }
    out
}

/// Package-merge on ascending `weights`: each level's list merges the
/// leaves with the pairs of the level below; the 2n-2 cheapest items of the
/// top list say how often each leaf is chosen, which is its code length.
/// A prefix of a level's list holds a prefix of its pairs, so counting
/// leaves and pairs in prefixes, level by level down, is enough.
fn package_merge(weights: &[u64], max_bits: u32) -> Vec<u8> {
    let n = weights.len();
    // For each level, whether each item of its merged list is a leaf.
    let mut levels: Vec<Vec<bool>> = Vec::with_capacity(max_bits as usize);
    let mut list: Vec<u64> = weights.to_vec();
    levels.push(vec![true; n]);
    for _ in 1..max_bits {
        let pairs: Vec<u64> = list.chunks_exact(2).map(|p| p[0] + p[1]).collect();
        let (merged, kinds) = merge(weights, &pairs);
        list = merged;
        levels.push(kinds);
    }
    let mut bits = vec![0u8; n];
    let mut take = 2 * n - 2;
    for kinds in levels.iter().rev() {
        let leaves = kinds[..take].iter().filter(|leaf| **leaf).count();
        bits[..leaves].iter_mut().for_each(|b| *b += 1);
        take = 2 * (take - leaves);
    }
    bits
}

/// Merges two ascending lists (leaves first on equal weight); returns the
/// weights and which items are leaves.
fn merge(leaves: &[u64], pairs: &[u64]) -> (Vec<u64>, Vec<bool>) {
    let mut weights = Vec::with_capacity(leaves.len() + pairs.len());
    let mut kinds = Vec::with_capacity(leaves.len() + pairs.len());
    let (mut i, mut j) = (0, 0);
    while i < leaves.len() || j < pairs.len() {
        if j == pairs.len() || (i < leaves.len() && leaves[i] <= pairs[j]) {
            weights.push(leaves[i]);
            kinds.push(true);
            i += 1;
        } else {
            weights.push(pairs[j]);
            kinds.push(false);
            j += 1;
        }
    }
    (weights, kinds)
}

/// The canonical codes of these lengths, bit-reversed: deflate packs
/// Huffman codes most significant bit first into an LSB-first stream.
pub fn codes(lengths: &[u8]) -> Vec<u16> {
    let mut count = [0u16; 16];
    for &len in lengths {
        count[usize::from(len)] += 1;
    }
    count[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for bits in 1..16 {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    lengths
        .iter()
        .map(|&len| {
            if len == 0 {
                return 0;
            }
            let code = next[usize::from(len)];
            next[usize::from(len)] += 1;
            code.reverse_bits() >> (16 - u32::from(len))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kraft(lengths: &[u8], max_bits: u32) -> u64 {
        lengths
            .iter()
            .filter(|l| **l > 0)
            .map(|&l| 1u64 << (max_bits - u32::from(l)))
            .sum()
    }

    #[test]
    fn skewed_frequencies_are_limited_and_complete() {
        // Fibonacci frequencies make an unlimited Huffman code 30 deep.
        let mut freqs = vec![1u32, 1];
        while freqs.len() < 30 {
            let n = freqs.len();
            freqs.push(freqs[n - 1] + freqs[n - 2]);
        }
        let lengths = lengths(&freqs, 15);
        assert!(lengths.iter().all(|l| (1..=15).contains(l)));
        assert_eq!(kraft(&lengths, 15), 1 << 15);
    }

    #[test]
    fn canonical_codes_follow_rfc_1951() {
        // The example of RFC 1951, 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4).
        let codes = codes(&[3, 3, 3, 3, 3, 2, 4, 4]);
        let expected = [0b010, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111];
        let lens = [3, 3, 3, 3, 3, 2, 4, 4];
        for ((code, want), len) in codes.iter().zip(expected).zip(lens) {
            assert_eq!(*code, (want as u16).reverse_bits() >> (16 - len));
        }
    }

    proptest! {
        #[test]
        fn lengths_are_optimal_limited_complete(freqs in prop::collection::vec(0u32..5000, 2..300)) {
            let lengths = lengths(&freqs, 15);
            let used = freqs.iter().filter(|f| **f > 0).count();
            prop_assert!(lengths.iter().zip(&freqs).all(|(l, f)| (*l == 0) == (*f == 0)));
            prop_assert!(lengths.iter().all(|l| *l <= 15));
            if used >= 2 {
                prop_assert_eq!(kraft(&lengths, 15), 1 << 15);
            }
        }
    }
}
