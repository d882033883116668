//! Duplicate code: token-based clone detection.
//!
//! Each file is a stream of normalised tokens (identifiers fold to one
//! code, literals to another), so a copy with renamed variables or changed
//! constants still matches; a second pass over the exact tokens pairs
//! copies that were not renamed with their real twins. K-grams of half
//! `min_tokens` are hashed (rolling) and winnowed, so any common run of
//! `min_tokens` shares a fingerprint; files are taken in path order, and a
//! fingerprint seen before is tried against its latest occurrences in up
//! to four earlier files, each match extended token by token as far as
//! both streams agree. Matches are gathered into groups, so three copies
//! are one finding, not three pairs. Spans shorter than `min_lines` lines
//! are dropped.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use crate::model::{CloneGroup, ClonePrints, Fragment};

/// (file, first token, tokens).
type Span = (u32, u32, u32);

/// One file's token stream.
pub(crate) struct Stream<'a> {
    pub path: &'a str,
    /// Identifiers and literals folded.
    pub tokens: &'a [u32],
    /// Identifiers and literals kept.
    pub exact: &'a [u32],
    /// Fingerprints made when the file was analysed, if any.
    pub prints: Option<&'a ClonePrints>,
    pub lines: &'a [u32],
}

const BASE: u64 = 0x100_0000_01b3;

/// How many earlier occurrences of a k-gram are tried.
const CANDIDATES: usize = 4;

/// A fingerprint met again: (file, its index in the file's
/// fingerprints, the earlier occurrences it is tried against as (file,
/// token), newest first).
type Try = (u32, u32, [(u32, u32); CANDIDATES]);

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
    // Exact copies, and renamed ones: in folded streams repetitive code
    // (tables of `NAME = "value"`) matches its first look-alike, not its
    // real twin, which the exact pass pairs correctly. The two passes are
    // independent (groups do not depend on the order of matches), so they
    // run side by side.
    let (mut matches, folded) = rayon::join(
        || {
            let mut m = Vec::new();
            find_matches(
                streams,
                |s| s.exact,
                |s| cached(s, min_tokens).map(|p| &p.exact[..]),
                min_tokens,
                min_lines,
                &mut m,
            );
            m
        },
        || {
            let mut m = Vec::new();
            find_matches(
                streams,
                |s| s.tokens,
                |s| cached(s, min_tokens).map(|p| &p.folded[..]),
                min_tokens,
                min_lines,
                &mut m,
            );
            m
        },
    );
    matches.extend(folded);
    group(language, streams, &matches, min_lines)
}

/// A stream's fingerprints if they were made for `min_tokens`.
fn cached<'a>(s: &Stream<'a>, min_tokens: usize) -> Option<&'a ClonePrints> {
    s.prints.filter(|p| p.min_tokens as usize == min_tokens)
}

/// Every match of at least `min_tokens` tokens in the streams `pick`
/// chooses, as (original span, copy span).
fn find_matches<'s>(
    streams: &'s [Stream<'s>],
    pick: impl Fn(&'s Stream<'s>) -> &'s [u32] + Sync,
    pick_prints: impl Fn(&'s Stream<'s>) -> Option<&'s [(u32, u64)]> + Sync,
    min_tokens: usize,
    min_lines: u32,
    matches: &mut Vec<(Span, Span)>,
) {
    let big_k = min_tokens.max(2);
    // Winnowing: k-grams of half the minimum, and the smallest hash of
    // every `w` consecutive ones. Any common run of `big_k` tokens holds
    // the same selected k-gram in both copies, so indexing only those
    // (about 2/(w+1) of the positions) finds every clone the full index
    // would, with a map small enough to stay in cache. Fingerprints come
    // with the cached facts when they were made for this minimum.
    let (k, _) = shape(min_tokens);
    let computed: Vec<Option<Vec<(u32, u64)>>> = streams
        .par_iter()
        .map(|s| {
            pick_prints(s)
                .is_none()
                .then(|| fingerprints(pick(s), min_tokens))
        })
        .collect();
    let prints: Vec<&[(u32, u64)]> = streams
        .iter()
        .zip(&computed)
        .map(|(s, c)| c.as_deref().or_else(|| pick_prints(s)).unwrap_or(&[]))
        .collect();
    let total: usize = prints.iter().map(|p| p.len()).sum();
    // Each selected k-gram's latest occurrences in up to CANDIDATES files,
    // newest first, one per file: the first look-alike is often not the
    // real twin (three similar methods in a row, a family of
    // near-identical files), the nearest earlier one usually is, and each
    // is tried. One slot per file keeps a file that repeats a pattern
    // (`async def a...(...)` wrappers, say) from hiding its twin in
    // another file.
    //
    // The fingerprints are met file by file, each file's in order. A
    // k-gram's slots change only when the k-gram is met, so they are
    // replayed per k-gram over its occurrences sorted into that order,
    // rather than kept in a map looked up at every fingerprint: those
    // lookups, a cache miss each, were most of a re-scan's clone time.
    //
    // Sorted by hash in two steps, both keeping the order met: a counting
    // sort on the top bits (the hashes are uniform, so each bucket holds a
    // handful), then each bucket by the whole hash (a comparison sort of
    // them all cost as much as the lookups it replaced).
    let bits = total.max(16).ilog2().min(24);
    let shift = 64 - bits;
    let mut met: Vec<(u64, u32, u32)> = Vec::with_capacity(total);
    for (f, fps) in prints.iter().enumerate() {
        met.extend(fps.iter().enumerate().map(|(n, &(_, h))| (h, f as u32, n as u32)));
    }
    let (mut all, starts) = bucket_sort(&met, 1 << bits, |x| (x.0 >> shift) as usize);
    drop(met);
    for bucket in starts.windows(2) {
        all[bucket[0]..bucket[1]].sort_by_key(|x| x.0);
    }
    let mut tries: Vec<Try> = Vec::new();
    for same in all.chunk_by(|x, y| x.0 == y.0).filter(|same| same.len() > 1) {
        let mut slots = [(u32::MAX, 0); CANDIDATES];
        for &(_, f, n) in same {
            if slots[0].0 != u32::MAX {
                tries.push((f, n, slots));
            }
            // This file's newest occurrence replaces its older one, so
            // repeats inside one file never push other files out.
            let mut next = [(u32::MAX, 0); CANDIDATES];
            next[0] = (f, prints[f as usize][n as usize].0);
            let mut kept = 1;
            for s in slots {
                if s.0 != f && kept < CANDIDATES {
                    next[kept] = s;
                    kept += 1;
                }
            }
            slots = next;
        }
    }
    drop(all);
    // Into the order met: by file, then by fingerprint.
    let (mut tries, per_file) = bucket_sort(&tries, prints.len(), |t| t.0 as usize);
    for file in per_file.windows(2) {
        tries[file[0]..file[1]].sort_unstable_by_key(|t| t.1);
    }
    // Matches of the current file so far, as (other file, other start -
    // own start, own end): a fingerprint on the same alignment inside one
    // of them is the same match again.
    let mut active: Vec<(u32, isize, usize)> = Vec::new();
    let mut current = u32::MAX;
    for (f, n, candidates) in tries {
        if f != current {
            active.clear();
            current = f;
        }
        let b = pick(&streams[f as usize]);
        let i = prints[f as usize][n as usize].0 as usize;
        active.retain(|&(_, _, end)| end > i);
        for &(g, j) in candidates.iter().take_while(|c| c.0 != u32::MAX) {
            let j = j as usize;
            if g == f && j >= i {
                continue;
            }
            let offset = j as isize - i as isize;
            if active
                .iter()
                .any(|&(ag, ao, end)| ag == g && ao == offset && i < end)
            {
                continue;
            }
            let a = pick(&streams[g as usize]);
            if a[j..j + k] != b[i..i + k] {
                continue;
            }
            let back = common_suffix(&a[..j], &b[..i]);
            let (js, is) = (j - back, i - back);
            let mut len = k + back;
            len += common_prefix(&a[js + len..], &b[is + len..]);
            if g == f && js + len > is {
                // A copy within one file: the two spans may not overlap.
                len = is - js;
            }
            // A span of fewer than `min_lines` lines is no clone, and
            // must not join groups either: it would chain unrelated
            // code into one group, then sink it.
            let lines_of = |s: &Stream<'_>, start: usize| s.lines[start + len - 1] - s.lines[start] + 1;
            if len >= big_k
                && lines_of(&streams[g as usize], js) >= min_lines
                && lines_of(&streams[f as usize], is) >= min_lines
            {
                matches.push(((g, js as u32, len as u32), (f, is as u32, len as u32)));
            }
            active.push((g, offset, is + len));
        }
    }
}

/// Matches run for hundreds of tokens in generated code: they are
/// compared a block at a time (which the compiler turns into vector
/// instructions), then token by token.
const BLOCK: usize = 16;

fn block_differs(a: &[u32], b: &[u32]) -> bool {
    a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) != 0
}

/// How many leading tokens `a` and `b` share.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && !block_differs(&a[i..i + BLOCK], &b[i..i + BLOCK]) {
        i += BLOCK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// How many trailing tokens `a` and `b` share.
fn common_suffix(a: &[u32], b: &[u32]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let mut i = 0;
    while i + BLOCK <= n && !block_differs(&a[n - i - BLOCK..n - i], &b[n - i - BLOCK..n - i]) {
        i += BLOCK;
    }
    while i < n && a[n - i - 1] == b[n - i - 1] {
        i += 1;
    }
    i
}

/// `items` in the order of `bucket(item)` (below `buckets`), keeping their
/// order within a bucket (a counting sort), and where each bucket starts
/// (`buckets + 1` offsets).
fn bucket_sort<T: Copy>(items: &[T], buckets: usize, bucket: impl Fn(&T) -> usize) -> (Vec<T>, Vec<usize>) {
    let mut starts = vec![0usize; buckets + 1];
    for item in items {
        starts[bucket(item) + 1] += 1;
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    let mut next = starts.clone();
    let mut out = items.to_vec();
    for item in items {
        let b = bucket(item);
        out[next[b]] = *item;
        next[b] += 1;
    }
    (out, starts)
}

/// Matches into groups (union-find over spans): the two sides of a match
/// are one group, and so are spans of one file that mostly overlap (the
/// same code matched from several copies), so every copy lands in one
/// group whichever copy it matched. Spans that only touch stay apart, or
/// three similar methods in a row would melt into one fragment.
fn group(
    language: &'static str,
    streams: &[Stream<'_>],
    matches: &[(Span, Span)],
    min_lines: u32,
) -> Vec<CloneGroup> {
    let spans: Vec<Span> = matches.iter().flat_map(|(a, b)| [*a, *b]).collect();
    let mut parent: Vec<usize> = (0..spans.len()).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    fn union(parent: &mut [usize], a: usize, b: usize) {
        let (ra, rb) = (find(parent, a), find(parent, b));
        if ra != rb {
            parent[ra] = rb;
        }
    }
    for m in 0..matches.len() {
        union(&mut parent, 2 * m, 2 * m + 1);
    }
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_unstable_by_key(|&i| (spans[i].0, spans[i].1));
    let mut active: Vec<usize> = Vec::new();
    for &i in &order {
        let (f, start, len) = spans[i];
        active.retain(|&a| spans[a].0 == f && spans[a].1 + spans[a].2 > start);
        for &a in &active {
            let overlap = (spans[a].1 + spans[a].2).min(start + len) - start;
            if overlap * 2 >= spans[a].2.min(len) {
                union(&mut parent, a, i);
            }
        }
        active.push(i);
    }
    let mut members: HashMap<usize, Vec<usize>, Mix> = HashMap::default();
    for &i in &order {
        let r = find(&mut parent, i);
        members.entry(r).or_default().push(i);
    }
    let mut groups: Vec<Vec<usize>> = members.into_values().collect();
    groups.sort_unstable_by_key(|m| (spans[m[0]].0, spans[m[0]].1));
    let mut out = Vec::new();
    for m in groups {
        // Spans in place order; those that mostly overlap the span before
        // are one fragment (overlapping only at the edges, they are two
        // neighbouring copies).
        let mut merged: Vec<(u32, u32, u32)> = Vec::new();
        let mut previous: Option<Span> = None;
        for &i in &m {
            let (f, start, len) = spans[i];
            let same = previous.is_some_and(|(pf, ps, pl)| {
                pf == f && ps + pl > start && ((ps + pl).min(start + len) - start) * 2 >= pl.min(len)
            });
            match merged.last_mut() {
                Some(last) if same => last.2 = last.2.max(start + len),
                _ => merged.push((f, start, start + len)),
            }
            previous = Some(spans[i]);
        }
        if merged.len() < 2 {
            continue;
        }
        let fragments: Vec<Fragment> = merged
            .iter()
            .map(|&(f, start, end)| {
                let s = &streams[f as usize];
                Fragment {
                    path: s.path.to_string(),
                    start_line: s.lines[start as usize],
                    end_line: s.lines[end as usize - 1],
                }
            })
            .collect();
        let lines = fragments
            .iter()
            .map(|f| f.end_line - f.start_line + 1)
            .min()
            .unwrap_or(0);
        if lines < min_lines {
            continue;
        }
        let tokens = m.iter().map(|&i| spans[i].2).min().unwrap_or(0);
        out.push(CloneGroup {
            language,
            tokens,
            lines,
            fragments,
        });
    }
    out
}

/// The selected k-gram hashes of a token stream, as (position, hash): the
/// rightmost minimum of each window of `w` consecutive k-gram hashes.
fn winnow(tokens: &[u32], k: usize, w: usize) -> Vec<(u32, u64)> {
    let hashes = windows(tokens, k);
    let n = hashes.len();
    let rightmost_min = |from: usize, to: usize| {
        let mut m = from;
        for p in from + 1..to {
            if hashes[p] <= hashes[m] {
                m = p;
            }
        }
        m
    };
    if n == 0 {
        return Vec::new();
    }
    if n <= w {
        let m = rightmost_min(0, n);
        return vec![(m as u32, hashes[m])];
    }
    let mut out: Vec<(u32, u64)> = Vec::with_capacity(2 * n / (w + 1) + 1);
    // The minimum of the current window, rescanned only when it leaves
    // the window (every w/2 steps on average).
    let mut m = rightmost_min(0, w);
    out.push((m as u32, hashes[m]));
    for end in w..n {
        let start = end + 1 - w;
        if m < start {
            m = rightmost_min(start, end + 1);
            out.push((m as u32, hashes[m]));
        } else if hashes[end] <= hashes[m] {
            m = end;
            out.push((m as u32, hashes[m]));
        }
    }
    out
}

/// The fingerprints of a token stream for clones of at least
/// `min_tokens` tokens (cached with each file's facts).
pub(crate) fn fingerprints(tokens: &[u32], min_tokens: usize) -> Vec<(u32, u64)> {
    let (k, w) = shape(min_tokens);
    winnow(tokens, k, w)
}

/// k-gram length and window: any common run of `min_tokens` tokens
/// (`w + k - 1`) holds one selected k-gram in both copies.
fn shape(min_tokens: usize) -> (usize, usize) {
    let big_k = min_tokens.max(2);
    let k = big_k / 2;
    (k, big_k - k + 1)
}

/// The rolling hash of every window of `k` tokens, mixed.
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
    out.push(mix(h));
    for i in k..tokens.len() {
        h = h
            .wrapping_sub((tokens[i - k] as u64 + 1).wrapping_mul(pow))
            .wrapping_mul(BASE)
            .wrapping_add(tokens[i] as u64 + 1);
        out.push(mix(h));
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
        Stream {
            path,
            tokens,
            exact: tokens,
            prints: None,
            lines,
        }
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
    fn a_copy_on_one_line_does_not_sink_the_real_copies() {
        // `a` and `b` hold the same 40 tokens over 10 lines; `c` holds
        // them on one line, as a bundle would. `c`'s copy is too short in
        // lines to be a fragment, and must not take `a` and `b` down.
        let body: Vec<u32> = (0..40).map(|i| 20 + (i * 7919) % 97).collect();
        let lines: Vec<u32> = (0..40).map(|i| i / 4 + 1).collect();
        let one_line = vec![1u32; 40];
        let streams = [
            stream("a", &body, &lines),
            stream("b", &body, &lines),
            stream("c", &body, &one_line),
        ];
        let groups = detect("javascript", &streams, 30, 5);
        assert_eq!(groups.len(), 1, "{groups:?}");
        let paths: Vec<&str> = groups[0].fragments.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a", "b"]);
        assert_eq!(groups[0].lines, 10);
    }

    #[test]
    fn shared_runs_are_measured_exactly_at_every_length() {
        for n in 0..50 {
            for cut in 0..=n {
                let a: Vec<u32> = (0..n as u32).collect();
                let mut b = a.clone();
                if cut < n {
                    b[cut] = 999;
                }
                assert_eq!(common_prefix(&a, &b), cut, "prefix, n {n} cut {cut}");
                assert_eq!(common_prefix(&a, &b[..cut]), cut);
                let (ra, rb): (Vec<u32>, Vec<u32>) = (
                    a.iter().rev().copied().collect(),
                    b.iter().rev().copied().collect(),
                );
                assert_eq!(common_suffix(&ra, &rb), cut, "suffix, n {n} cut {cut}");
                assert_eq!(common_suffix(&ra[n - cut..], &rb), cut);
            }
        }
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
