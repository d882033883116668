//! Counting lines added and removed between two texts, for summaries.
//!
//! Myers' O((N+M)·D) algorithm gives the exact count. D is bounded at
//! [`MAX_EXACT_DISTANCE`] so that a wholesale rewrite of a big file cannot
//! stall a status line; past it the counts come from comparing the two
//! texts as multisets of lines, which never overstates the change.

use std::collections::HashMap;

const MAX_EXACT_DISTANCE: usize = 4096;

/// `(added, removed)` lines turning `before` into `after`.
pub(super) fn added_removed(before: &[u8], after: &[u8]) -> (usize, usize) {
    let a: Vec<&[u8]> = before.split_inclusive(|&b| b == b'\n').collect();
    let b: Vec<&[u8]> = after.split_inclusive(|&b| b == b'\n').collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[..a.len() - suffix], &b[..b.len() - suffix]);
    if a.is_empty() || b.is_empty() {
        return (b.len(), a.len());
    }
    // Compare small integers, not byte strings, in the inner loop.
    let mut ids: HashMap<&[u8], u32> = HashMap::new();
    let (ia, ib) = (intern(a, &mut ids), intern(b, &mut ids));
    let common = match edit_distance(&ia, &ib, MAX_EXACT_DISTANCE) {
        Some(d) => (ia.len() + ib.len() - d) / 2,
        None => multiset_common(&ia, &ib),
    };
    (ib.len() - common, ia.len() - common)
}

fn intern<'a>(lines: &[&'a [u8]], ids: &mut HashMap<&'a [u8], u32>) -> Vec<u32> {
    lines
        .iter()
        .map(|l| {
            let next = ids.len() as u32;
            *ids.entry(*l).or_insert(next)
        })
        .collect()
}

/// Myers' greedy forward search: the fewest insertions plus deletions
/// turning `a` into `b`, or `None` past `max_d`.
fn edit_distance(a: &[u32], b: &[u32], max_d: usize) -> Option<usize> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let limit = (a.len() + b.len()).min(max_d);
    let offset = limit as isize + 1;
    // v[k + offset]: furthest x reached on diagonal k = x - y.
    let mut v = vec![0isize; 2 * limit + 3];
    for d in 0..=limit as isize {
        for k in (-d..=d).step_by(2) {
            let i = (k + offset) as usize;
            let mut x = if k == -d || (k != d && v[i - 1] < v[i + 1]) {
                v[i + 1]
            } else {
                v[i - 1] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[i] = x;
            if x >= n && y >= m {
                return Some(d as usize);
            }
        }
    }
    None
}

/// How many lines the two sides share, ignoring order: an upper bound on
/// the longest common subsequence.
fn multiset_common(a: &[u32], b: &[u32]) -> usize {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for &x in a {
        *counts.entry(x).or_default() += 1;
    }
    b.iter()
        .filter(|x| match counts.get_mut(x) {
            Some(c) if *c > 0 => {
                *c -= 1;
                true
            }
            _ => false,
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Textbook dynamic-programming LCS, to check Myers against.
    fn lcs(a: &[u32], b: &[u32]) -> usize {
        let mut dp = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for i in 0..a.len() {
            for j in 0..b.len() {
                dp[i + 1][j + 1] = if a[i] == b[j] {
                    dp[i][j] + 1
                } else {
                    dp[i][j + 1].max(dp[i + 1][j])
                };
            }
        }
        dp[a.len()][b.len()]
    }

    #[test]
    fn simple_counts() {
        assert_eq!(added_removed(b"", b"a\nb\n"), (2, 0));
        assert_eq!(added_removed(b"a\nb\n", b""), (0, 2));
        assert_eq!(added_removed(b"a\nb\nc\n", b"a\nB\nc\n"), (1, 1));
        assert_eq!(added_removed(b"a\nb\nc\n", b"a\nc\n"), (0, 1));
        assert_eq!(added_removed(b"a\n", b"a\n"), (0, 0));
        // The last line losing its newline is a changed line.
        assert_eq!(added_removed(b"a\nb\n", b"a\nb"), (1, 1));
    }

    #[test]
    fn myers_matches_lcs_on_pseudo_random_inputs() {
        // A small linear congruential generator: deterministic, no deps.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |modulo: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % modulo
        };
        for _ in 0..300 {
            let a: Vec<u32> = (0..next(12)).map(|_| next(4) as u32).collect();
            let b: Vec<u32> = (0..next(12)).map(|_| next(4) as u32).collect();
            let d = edit_distance(&a, &b, usize::MAX / 4).unwrap();
            assert_eq!(d, a.len() + b.len() - 2 * lcs(&a, &b), "{a:?} {b:?}");
        }
    }

    #[test]
    fn falls_back_past_the_distance_limit() {
        assert_eq!(edit_distance(&[1, 2, 3], &[4, 5, 6], 2), None);
        assert_eq!(multiset_common(&[1, 2, 2, 3], &[2, 3, 3, 2]), 3);
        let before: String = (0..5000).map(|i| format!("old {i}\n")).collect();
        let after: String = (0..5000).map(|i| format!("new {i}\n")).collect();
        assert_eq!(added_removed(before.as_bytes(), after.as_bytes()), (5000, 5000));
    }
}
