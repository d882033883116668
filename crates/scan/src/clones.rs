//! Duplicate code: token-based clone detection.
//!
//! Each file is a stream of normalised tokens (identifiers fold to one
//! code, literals to another), so a copy with renamed variables or changed
//! constants still matches. Every window of `min_tokens` tokens is hashed
//! (Rabin-Karp, rolling); files are read in path order, and a window whose
//! hash was seen before starts a match against its first occurrence, which
//! is then extended token by token as far as both streams agree. Matches
//! against the same original are gathered into one group, so three copies
//! are one finding, not three pairs. Spans shorter than `min_lines` lines
//! are dropped.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use crate::model::{CloneGroup, Fragment};

/// (file, token index).
type Occurrence = (u32, u32);
/// (file, first token, tokens).
type Span = (u32, u32, u32);

/// One file's token stream.
pub(crate) struct Stream<'a> {
    pub path: &'a str,
    pub tokens: &'a [u32],
    pub lines: &'a [u32],
}

const BASE: u64 = 0x100_0000_01b3;

/// The window hashes are hashes already: the map only needs their bits
/// spread (a SplitMix64 finaliser), not SipHash's protection, which cost
/// most of the detection time.
type Mix = BuildHasherDefault<MixHasher>;

#[derive(Default)]
struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = self.0.rotate_left(32) ^ n as u64;
    }
}

pub(crate) fn detect(
    language: &'static str,
    streams: &[Stream<'_>],
    min_tokens: usize,
    min_lines: u32,
) -> Vec<CloneGroup> {
    let big_k = min_tokens.max(2);
    // Winnowing: k-grams of half the minimum, and the smallest hash of
    // every `w` consecutive ones. Any common run of `big_k` tokens holds
    // the same selected k-gram in both copies, so indexing only those
    // (about 2/(w+1) of the positions) finds every clone the full index
    // would, with a map small enough to stay in cache.
    let k = big_k / 2;
    let w = big_k - k + 1;
    let prints: Vec<Vec<(u32, u64)>> = streams.par_iter().map(|s| winnow(s.tokens, k, w)).collect();
    let total: usize = prints.iter().map(Vec::len).sum();
    let mut first: HashMap<u64, (u32, u32), Mix> = HashMap::with_capacity_and_hasher(total, Mix::default());
    // Keyed by the original occurrence of the fingerprint that matched:
    // the group's fragments as (file, start, len) in tokens; the first is
    // the original.
    let mut groups: HashMap<Occurrence, Vec<Span>, Mix> = HashMap::default();
    let mut originals: Vec<Occurrence> = Vec::new();
    for (f, fps) in prints.iter().enumerate() {
        let f = f as u32;
        let b = streams[f as usize].tokens;
        // Tokens of `f` before this index are already part of a reported copy.
        let mut covered = 0usize;
        for &(i, h) in fps {
            let i = i as usize;
            let Some(&(g, j)) = first.get(&h) else {
                first.insert(h, (f, i as u32));
                continue;
            };
            if i < covered || (g == f && j as usize == i) {
                continue;
            }
            let a = streams[g as usize].tokens;
            let j = j as usize;
            if a[j..j + k] != b[i..i + k] {
                continue;
            }
            // Extend backwards (not into what is already reported), then forwards.
            let mut back = 0;
            while back < j && back < i - covered && a[j - back - 1] == b[i - back - 1] {
                back += 1;
            }
            let (js, is) = (j - back, i - back);
            let mut len = k + back;
            while js + len < a.len() && is + len < b.len() && a[js + len] == b[is + len] {
                len += 1;
            }
            if g == f {
                // A copy within one file: the two spans may not overlap.
                if js + len > is {
                    len = is.saturating_sub(js);
                }
            }
            if len < big_k {
                continue;
            }
            let group = groups.entry((g, j as u32)).or_insert_with(|| {
                originals.push((g, j as u32));
                Vec::new()
            });
            group.push((g, js as u32, len as u32));
            group.push((f, is as u32, len as u32));
            covered = is + len;
        }
    }
    let mut out = Vec::new();
    for key in originals {
        let Some(members) = groups.remove(&key) else {
            continue;
        };
        let mut fragments: Vec<(Fragment, u32)> = Vec::new();
        for (f, start, len) in members {
            let s = &streams[f as usize];
            let frag = Fragment {
                path: s.path.to_string(),
                start_line: s.lines[start as usize],
                end_line: s.lines[(start + len - 1) as usize],
            };
            // The original is matched once per copy, maybe over different
            // spans: keep one fragment per overlapping span, the longest.
            match fragments.iter_mut().find(|(x, _)| {
                x.path == frag.path && x.start_line <= frag.end_line && frag.start_line <= x.end_line
            }) {
                Some((x, l)) => {
                    x.start_line = x.start_line.min(frag.start_line);
                    x.end_line = x.end_line.max(frag.end_line);
                    *l = (*l).max(len);
                }
                None => fragments.push((frag, len)),
            }
        }
        let tokens = fragments.iter().map(|(_, l)| *l).min().unwrap_or(0);
        let lines = fragments
            .iter()
            .map(|(f, _)| f.end_line - f.start_line + 1)
            .min()
            .unwrap_or(0);
        if fragments.len() < 2 || lines < min_lines {
            continue;
        }
        out.push(CloneGroup {
            language,
            tokens,
            lines,
            fragments: fragments.into_iter().map(|(f, _)| f).collect(),
        });
    }
    out
}

/// The selected k-gram hashes of a token stream, as (position, hash): the
/// rightmost minimum of each window of `w` consecutive k-gram hashes.
fn winnow(tokens: &[u32], k: usize, w: usize) -> Vec<(u32, u64)> {
    let hashes: Vec<u64> = windows(tokens, k).into_iter().map(mix).collect();
    let mut out: Vec<(u32, u64)> = Vec::with_capacity(hashes.len() * 2 / (w + 1) + 1);
    if hashes.is_empty() {
        return out;
    }
    if hashes.len() <= w {
        let (p, h) = hashes
            .iter()
            .enumerate()
            .min_by_key(|(p, h)| (**h, std::cmp::Reverse(*p)))
            .unwrap_or((0, &0));
        out.push((p as u32, *h));
        return out;
    }
    // A monotonic deque of positions with increasing hashes.
    let mut dq: std::collections::VecDeque<usize> = std::collections::VecDeque::with_capacity(w);
    let mut last = usize::MAX;
    for (p, &h) in hashes.iter().enumerate() {
        while dq.back().is_some_and(|&q| hashes[q] >= h) {
            dq.pop_back();
        }
        dq.push_back(p);
        if dq.front().is_some_and(|&q| q + w <= p) {
            dq.pop_front();
        }
        if p + 1 >= w
            && let Some(&m) = dq.front()
            && m != last
        {
            out.push((m as u32, hashes[m]));
            last = m;
        }
    }
    out
}

/// The rolling hash of every window of `k` tokens.
fn windows(tokens: &[u32], k: usize) -> Vec<u64> {
    if tokens.len() < k || k == 0 {
        return Vec::new();
    }
    let mut pow = 1u64;
    for _ in 1..k {
        pow = pow.wrapping_mul(BASE);
    }
    let mut h = 0u64;
    for &t in &tokens[..k] {
        h = h.wrapping_mul(BASE).wrapping_add(t as u64 + 1);
    }
    let mut out = Vec::with_capacity(tokens.len() - k + 1);
    out.push(h);
    for i in k..tokens.len() {
        h = h
            .wrapping_sub((tokens[i - k] as u64 + 1).wrapping_mul(pow))
            .wrapping_mul(BASE)
            .wrapping_add(tokens[i] as u64 + 1);
        out.push(h);
    }
    out
}

/// SplitMix64's finaliser: the minimum of a window must not favour some
/// token kinds, as raw polynomial hashes of small codes would.
fn mix(h: u64) -> u64 {
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream<'a>(path: &'a str, tokens: &'a [u32], lines: &'a [u32]) -> Stream<'a> {
        Stream { path, tokens, lines }
    }

    #[test]
    fn three_copies_make_one_group() {
        let body: Vec<u32> = (0..40).map(|i| 20 + (i * 7919) % 97).collect();
        let lines: Vec<u32> = (0..60).map(|i| i / 4 + 1).collect();
        let mut a = vec![100, 101];
        a.extend(&body);
        let mut b = vec![102];
        b.extend(&body);
        b.push(103);
        let c = body.clone();
        let streams = [
            stream("a", &a, &lines),
            stream("b", &b, &lines),
            stream("c", &c, &lines),
        ];
        let groups = detect("python", &streams, 30, 2);
        assert_eq!(groups.len(), 1, "{groups:?}");
        let g = &groups[0];
        assert_eq!(g.tokens, 40);
        let paths: Vec<&str> = g.fragments.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a", "b", "c"]);
        assert_eq!(g.fragments[0].start_line, 1);
    }

    #[test]
    fn short_or_single_line_matches_are_not_clones() {
        let body: Vec<u32> = (0..40).map(|i| 20 + i).collect();
        let one_line = vec![1u32; 40];
        let streams = [stream("a", &body, &one_line), stream("b", &body, &one_line)];
        assert!(detect("go", &streams, 30, 2).is_empty());
        let lines: Vec<u32> = (1..=40).collect();
        let streams = [stream("a", &body, &lines), stream("b", &body, &lines)];
        assert!(detect("go", &streams, 41, 2).is_empty());
        assert_eq!(detect("go", &streams, 40, 2).len(), 1);
    }
}
