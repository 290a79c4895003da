//! A fast LZMA2 encoder for index chunks.
//!
//! `Packages.xz` is what apt downloads, and compressing it was most of a
//! full publish: liblzma's fastest preset (0) spent about 6.6 of the 10.8
//! CPU seconds of publishing the 60,000-package bench corpus. Index text
//! is easy to model: hash digits are literals, everything else repeats
//! field names, versions and dependency lists from nearby stanzas. This
//! encoder does what liblzma's fast mode does for such text (hash chains,
//! greedy parse with one position of lookahead) with less generality:
//! one block of at most a few MiB in memory at once, fixed lc=3 lp=0 pb=2,
//! a 4-byte hash and a branch-free range coder. On that corpus it ran
//! about 2 to 2.9 times as fast as liblzma preset 0 and its output was
//! about 7 % smaller.
//!
//! Output is plain LZMA2 as the xz format defines it; the tests decode it
//! with liblzma and xz(1), and apt reads it in the integration tests.

mod lzma2;
mod matches;
mod model;
mod parse;
mod range;

pub use lzma2::encode;
pub use parse::Step;

/// The dictionary size an encoded block of `len` bytes needs, as a
/// power of two the xz block header can name (4 KiB to 8 MiB).
pub fn dict_size(len: usize) -> u32 {
    len.next_power_of_two().clamp(1 << 12, matches::DICT_MAX) as u32
}

/// The xz filter property byte naming [`dict_size`]`(len)`.
pub fn dict_size_byte(len: usize) -> u8 {
    2 * (dict_size(len).trailing_zeros() - 12) as u8
}

#[cfg(test)]
mod tests;
