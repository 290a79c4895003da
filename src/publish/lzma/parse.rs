//! The parse: which symbol (literal, match, repeat) codes each position.
//! A greedy choice with one position of lookahead, by the rules of
//! liblzma's fast mode; they keep most of what a full optimal parse finds
//! in text at a fraction of its cost.

use super::super::deflate::{MAX_DIST, MIN_LEN};
use super::matches::{Match, MatchFinder, NICE_LEN, match_len};
use super::model::MATCH_LEN_MAX;
use std::ops::Range;

/// What the parse decided at a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symbol {
    Literal,
    Match(Match),
    Rep { rep: usize, len: u32 },
}

impl Symbol {
    /// How many bytes of data the symbol codes.
    pub fn len(self) -> usize {
        match self {
            Symbol::Literal => 1,
            Symbol::Match(m) => m.len as usize,
            Symbol::Rep { len, .. } => len as usize,
        }
    }

    /// Adds the symbol to a parse for deflate, given the distances repeated
    /// before it: a match out of deflate's window is replaced by the
    /// longest one within it, followed by literals.
    pub fn push_steps(self, reps: &[u32; 4], steps: &mut Vec<Step>) {
        let literal = Step::LITERAL;
        match self {
            Symbol::Literal => steps.push(literal),
            Symbol::Match(m) if m.dist >= MAX_DIST && m.near_len >= MIN_LEN => {
                steps.push(Step {
                    len: m.near_len,
                    dist: m.near_dist + 1,
                });
                steps.extend(std::iter::repeat_n(literal, (m.len - m.near_len) as usize));
            }
            Symbol::Match(m) => steps.push(Step {
                len: m.len,
                dist: m.dist + 1,
            }),
            Symbol::Rep { rep, len } => steps.push(Step {
                len,
                dist: reps[rep] + 1,
            }),
        }
    }
}

/// One step of a parse as any LZ77 coder reads it: `len` bytes copied
/// from `dist` bytes back, or (with `dist` 0) one literal byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub len: u32,
    pub dist: u32,
}

impl Step {
    pub const LITERAL: Step = Step { len: 1, dist: 0 };
}

/// The parse: the match finder and the lookahead it carries over.
pub struct Parser {
    finder: MatchFinder,
    /// The match found at `pos` while deciding about `pos - 1`.
    ahead: Option<(usize, Match)>,
    /// Literals coded in a row.
    misses: u32,
    /// The data's hash digits ([`digest_runs`]) and the first not yet passed.
    digests: Vec<Range<usize>>,
    next_digest: usize,
}

/// The values of `Field: value` lines made of at least [`DIGEST_MIN`]
/// lowercase hex digits: the MD5sum, SHA1, SHA256 and SHA512 of every
/// stanza, about a fifth of an index. No digest repeats, so the parse
/// codes them as literals without searching, and keeps them out of the
/// hash chains. Searching them cost time and, through chance matches of
/// four or five digits, made Packages.xz about 0.5 % larger.
pub fn digest_runs(data: &[u8]) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    // memchr finds line ends and colons many bytes at a time: a byte loop
    // here cost as much as a tenth of the search it saves.
    let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
    for end in ends {
        let line = &data[start..end];
        if let Some(colon) = memchr::memchr(b':', line)
            && line.get(colon + 1) == Some(&b' ')
        {
            let value = &line[colon + 2..];
            if value.len() >= DIGEST_MIN
                && value.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                runs.push(start + colon + 2..end);
            }
        }
        start = end + 1;
    }
    runs
}

/// The shortest value taken for a digest (MD5's is 32 digits).
const DIGEST_MIN: usize = 16;

impl Parser {
    fn main_match(&mut self, data: &[u8], pos: usize, limit: usize) -> Match {
        match self.ahead.take() {
            Some((at, found)) if at == pos => found,
            _ => self.finder.find(data, pos, limit),
        }
    }

    /// A parser of `data`.
    pub fn new(data: &[u8]) -> Parser {
        Parser {
            finder: MatchFinder::new(data.len()),
            ahead: None,
            misses: 0,
            digests: digest_runs(data),
            next_digest: 0,
        }
    }

    /// Where the digest `pos` is in ends, if it is in one (`pos` never
    /// less than at the last call). Its positions stay out of the chains.
    #[inline]
    pub fn digest_at(&mut self, pos: usize) -> Option<usize> {
        while let Some(run) = self.digests.get(self.next_digest) {
            if pos < run.end {
                if pos < run.start {
                    return None;
                }
                self.ahead = None;
                self.finder.skip_to(run.end);
                return Some(run.end);
            }
            self.next_digest += 1;
        }
        None
    }

    /// The symbol to code at `pos`, given the distances the model repeats.
    ///
    /// Hash digits are for the caller to code as literals, without asking
    /// ([`Self::digest_at`]). In any other long run of literals only
    /// some positions are searched: after 32 literals every second one,
    /// after 64 every fourth. The others are not added to the hash chains
    /// either. A match found by the lookahead is always taken up.
    pub fn next(&mut self, data: &[u8], pos: usize, reps: &[u32; 4]) -> Symbol {
        let skip = (self.misses >> SKIP_SHIFT).min(SKIP_MAX);
        let looked_ahead = matches!(self.ahead, Some((at, _)) if at == pos);
        if skip > 0 && self.misses & ((1 << skip) - 1) != 0 && !looked_ahead {
            self.misses += 1;
            self.finder.skip_to(pos + 1);
            return Symbol::Literal;
        }
        let symbol = self.choose(data, pos, reps);
        self.misses = if symbol == Symbol::Literal {
            self.misses + 1
        } else {
            0
        };
        symbol
    }

    /// liblzma's fast-mode choice at `pos`.
    fn choose(&mut self, data: &[u8], pos: usize, reps: &[u32; 4]) -> Symbol {
        let avail = (data.len() - pos).min(MATCH_LEN_MAX as usize);
        let main = self.main_match(data, pos, avail);
        if avail < 2 {
            return Symbol::Literal;
        }
        let (rep, rep_len) = best_rep(data, pos, reps, avail);
        if rep_len >= NICE_LEN as usize {
            return Symbol::Rep {
                rep,
                len: rep_len as u32,
            };
        }
        let main_len = if worth_coding(main) {
            main.len as usize
        } else {
            0
        };
        if main_len >= NICE_LEN as usize {
            return Symbol::Match(main);
        }
        if rep_len >= 2 && rep_beats_match(rep_len, main_len, main.dist) {
            return Symbol::Rep {
                rep,
                len: rep_len as u32,
            };
        }
        if main_len < 2 || avail <= 2 {
            return Symbol::Literal;
        }
        let next_avail = (data.len() - pos - 1).min(MATCH_LEN_MAX as usize);
        let next = self.finder.find(data, pos + 1, next_avail);
        self.ahead = Some((pos + 1, next));
        if next.len >= 4 && next_is_better(next, main) {
            return Symbol::Literal;
        }
        let limit = (main_len - 1).max(2);
        if limit <= next_avail
            && reps.iter().any(|&r| {
                (r as usize) < pos + 1 && match_len(data, pos - r as usize, pos + 1, limit) == limit
            })
        {
            return Symbol::Literal;
        }
        Symbol::Match(main)
    }
}

/// Literals in a row (as a power of two) before positions are skipped,
/// and the most skipped (as a power of two). Hash digits are never
/// searched; this bounds the time text without repeats would take.
const SKIP_SHIFT: u32 = 5;
const SKIP_MAX: u32 = 2;

/// Which of the four repeated distances matches longest at `pos`, and how long.
#[inline]
fn best_rep(data: &[u8], pos: usize, reps: &[u32; 4], avail: usize) -> (usize, usize) {
    let mut best = (0, 0);
    for (i, &rep) in reps.iter().enumerate() {
        let back = rep as usize + 1;
        if back > pos || data[pos] != data[pos - back] || data[pos + 1] != data[pos + 1 - back] {
            continue;
        }
        let len = match_len(data, pos - back, pos, avail);
        if len > best.1 {
            best = (i, len);
        }
    }
    best
}

/// A short match far back costs more bits than its bytes as literals: a
/// 4-byte match 1 KiB back takes about 25 bits, four literals about 18.
/// Coding them anyway made Packages.xz 4 % larger on the bench corpus.
#[inline]
fn worth_coding(m: Match) -> bool {
    match m.len {
        0..=3 => false,
        4 => m.dist < FAR4,
        5 => m.dist < FAR5,
        _ => true,
    }
}

/// How far back a 4-byte and a 5-byte match still pay.
const FAR4: u32 = 1 << 10;
const FAR5: u32 = 1 << 14;

/// liblzma's rule: a repeat costs far less to code than a new distance.
#[inline]
fn rep_beats_match(rep_len: usize, main_len: usize, main_dist: u32) -> bool {
    rep_len + 1 >= main_len
        || (rep_len + 2 >= main_len && main_dist > (1 << 9))
        || (rep_len + 3 >= main_len && main_dist > (1 << 15))
}

/// Whether a distance is so much smaller that a shorter match there pays.
#[inline]
fn change_pair(small: u32, big: u32) -> bool {
    (big >> 7) > small
}

/// liblzma's rule for taking the next position's match instead.
#[inline]
fn next_is_better(next: Match, main: Match) -> bool {
    (next.len >= main.len && next.dist < main.dist)
        || (next.len == main.len + 1 && !change_pair(main.dist, next.dist))
        || next.len > main.len + 1
        || (next.len + 1 >= main.len && main.len >= 3 && change_pair(next.dist, main.dist))
}
