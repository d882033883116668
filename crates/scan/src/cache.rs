//! Per-file results kept between scans, keyed by a hash of the file's
//! content (with its language and the analyzer's version), so a re-scan
//! parses only what changed.
//!
//! The entries live in 16 shard files, `.graft/scan-cache/NN.bin`
//! (postcard), picked by the key's top bits. One file per entry cost more
//! in file-system time than parsing saved; one file for all would be
//! rewritten whole for a one-line change. With shards, a cold scan writes
//! 16 files, a re-scan after one edit rewrites one, and the shards are read
//! and decoded in parallel. Each write is atomic (a temporary file, then a
//! rename), so a scan that dies midway leaves whole shards. A full scan
//! drops the entries it did not use, so the cache stays the repo's size.
//!
//! The token streams, most of a shard's bytes, are stored as raw
//! little-endian words ([`words`], [`prints`]): decoding them is a copy,
//! where a varint per token cost more than the rest of a warm scan's
//! loading. An entry is moved out of the cache when a file uses it, not
//! copied.
//!
//! Beside the shards, `stamps.bin` keeps each file's stat (size, mtime,
//! ctime, inode, device) with its key, as git's index does: a file whose
//! stat is unchanged is not read again. A stamp is kept only for a file
//! last modified more than [`RACY`] before the scan began, so a write in
//! the same clock tick as the scan's read cannot hide behind an equal
//! mtime; ctime, which no tool can set back, catches a restored mtime.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::FileFacts;

/// Bumped whenever what [`FileFacts`] holds or how it is computed changes;
/// it is part of every key, and a shard of another version is ignored.
pub(crate) const ANALYZER_VERSION: u64 = 5;

pub(crate) const DIR_NAME: &str = "scan-cache";

const SHARDS: usize = 16;

const STAMPS: &str = "stamps.bin";

/// How much older than the scan a file's last change must be for its
/// stamp to be trusted (file-system clocks are coarser than a scan).
pub(crate) const RACY: std::time::Duration = std::time::Duration::from_secs(2);

/// What a file looked like when its key was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
    pub key: u128,
}

impl Stamp {
    /// `meta`'s stamp for `key`, if the file last changed more than
    /// [`RACY`] before `started` (wall clock).
    pub(crate) fn of(meta: &std::fs::Metadata, key: u128, started: std::time::SystemTime) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt as _;
        let (mtime_ns, ctime_ns) = times(meta);
        let stamp = Stamp {
            size: meta.len(),
            mtime_ns,
            ctime_ns,
            ino: meta.ino(),
            dev: meta.dev(),
            key,
        };
        let since_epoch = started.duration_since(std::time::UNIX_EPOCH).ok()?;
        let limit = since_epoch.checked_sub(RACY)?.as_nanos() as i128;
        (stamp.mtime_ns < limit && stamp.ctime_ns < limit).then_some(stamp)
    }

    /// Whether `meta` is the file this stamp was taken of, unchanged.
    pub(crate) fn matches(&self, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        self.size == meta.len()
            && (self.mtime_ns, self.ctime_ns) == times(meta)
            && self.ino == meta.ino()
            && self.dev == meta.dev()
    }
}

/// mtime and ctime in nanoseconds since the epoch.
fn times(meta: &std::fs::Metadata) -> (i128, i128) {
    use std::os::unix::fs::MetadataExt as _;
    let ns = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
    (
        ns(meta.mtime(), meta.mtime_nsec()),
        ns(meta.ctime(), meta.ctime_nsec()),
    )
}

#[derive(Serialize, Deserialize, Default)]
struct Stamps {
    version: u64,
    entries: Vec<(String, Stamp)>,
}

#[derive(Deserialize)]
struct Shard {
    version: u64,
    entries: Vec<(u128, FileFacts)>,
}

#[derive(Serialize)]
struct ShardRef<'a> {
    version: u64,
    entries: Vec<(u128, &'a FileFacts)>,
}

/// One shard's entries; each is taken by the first file that uses it.
type Entries = HashMap<u128, Mutex<Option<FileFacts>>>;

pub(crate) struct Cache {
    dir: PathBuf,
    shards: Vec<Entries>,
    /// By path, relative to the root.
    stamps: HashMap<String, Stamp>,
}

fn shard_of(key: u128) -> usize {
    (key >> 124) as usize % SHARDS
}

impl Cache {
    /// Read every shard under `graft_dir` (in parallel); a missing,
    /// unreadable or outdated shard is empty.
    pub(crate) fn load(graft_dir: &Path) -> Cache {
        let dir = graft_dir.join(DIR_NAME);
        let stamps = || -> HashMap<String, Stamp> {
            std::fs::read(dir.join(STAMPS))
                .ok()
                .and_then(|bytes| postcard::from_bytes::<Stamps>(&bytes).ok())
                .filter(|s| s.version == ANALYZER_VERSION)
                .map(|s| s.entries.into_iter().collect())
                .unwrap_or_default()
        };
        let (stamps, shards) = rayon::join(stamps, || Cache::load_shards(&dir));
        Cache { dir, shards, stamps }
    }

    fn load_shards(dir: &Path) -> Vec<Entries> {
        (0..SHARDS)
            .into_par_iter()
            .map(|i| {
                std::fs::read(dir.join(format!("{i:02}.bin")))
                    .ok()
                    .and_then(|bytes| postcard::from_bytes::<Shard>(&bytes).ok())
                    .filter(|s| s.version == ANALYZER_VERSION)
                    .map(|s| {
                        s.entries
                            .into_iter()
                            .map(|(k, f)| (k, Mutex::new(Some(f))))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The stamp kept for the file at `rel`, if any (only then is a stat
    /// worth it).
    pub(crate) fn stamp(&self, rel: &str) -> Option<Stamp> {
        self.stamps.get(rel).copied()
    }

    /// The facts cached for `key`, moved out. A second file with the same
    /// content finds nothing and is analysed again (such files are nearly
    /// always empty).
    pub(crate) fn take(&self, key: u128) -> Option<FileFacts> {
        let slot = self.shards[shard_of(key)].get(&key)?;
        slot.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Write back the shards that changed: those with a new entry, and on a
    /// full scan (`prune`) those holding entries no file uses any more. A
    /// failed write only costs the next scan time.
    pub(crate) fn save(self, used: &[(u128, &FileFacts)], stamps: Vec<(String, Stamp)>, prune: bool) {
        let Cache {
            dir,
            shards,
            stamps: old_stamps,
        } = self;
        save_stamps(&dir, &old_stamps, stamps, prune);
        let mut by_shard: Vec<Vec<(u128, &FileFacts)>> = vec![Vec::new(); SHARDS];
        let mut seen: HashSet<u128> = HashSet::with_capacity(used.len());
        for &(key, facts) in used {
            if seen.insert(key) {
                by_shard[shard_of(key)].push((key, facts));
            }
        }
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        by_shard
            .into_par_iter()
            .zip(shards)
            .enumerate()
            .for_each(|(i, (mut entries, old))| {
                let added = entries.iter().any(|(k, _)| !old.contains_key(k));
                let stale = old.keys().any(|k| !seen.contains(k));
                if !(added || (prune && stale)) {
                    return;
                }
                // A scoped scan keeps what it did not see (never taken).
                let kept: Vec<(u128, FileFacts)> = if prune {
                    Vec::new()
                } else {
                    old.into_iter()
                        .filter(|(k, _)| !seen.contains(k))
                        .filter_map(|(k, f)| {
                            f.into_inner().unwrap_or_else(|p| p.into_inner()).map(|f| (k, f))
                        })
                        .collect()
                };
                entries.extend(kept.iter().map(|(k, f)| (*k, f)));
                entries.sort_unstable_by_key(|(k, _)| *k);
                let Ok(bytes) = postcard::to_stdvec(&ShardRef {
                    version: ANALYZER_VERSION,
                    entries,
                }) else {
                    return;
                };
                write_whole(&dir.join(format!("{i:02}.bin")), &bytes);
            });
    }
}

/// Write the stamps of this scan (and, for a scoped one, those of the
/// files it did not see) unless they are what was loaded.
fn save_stamps(dir: &Path, old: &HashMap<String, Stamp>, mut new: Vec<(String, Stamp)>, prune: bool) {
    if !prune {
        let seen: HashSet<&str> = new.iter().map(|(p, _)| p.as_str()).collect();
        let kept: Vec<(String, Stamp)> = old
            .iter()
            .filter(|(p, _)| !seen.contains(p.as_str()))
            .map(|(p, s)| (p.clone(), *s))
            .collect();
        new.extend(kept);
    }
    if new.len() == old.len() && new.iter().all(|(p, s)| old.get(p) == Some(s)) {
        return;
    }
    new.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let stamps = Stamps {
        version: ANALYZER_VERSION,
        entries: new,
    };
    if let Ok(bytes) = postcard::to_stdvec(&stamps) {
        write_whole(&dir.join(STAMPS), &bytes);
    }
}

/// Replace `path` with `bytes` whole or not at all (a temporary file, then
/// a rename), so a scan that dies midway leaves the old file or the new
/// one. A failure only costs the next scan time.
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else { return };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    if std::fs::create_dir_all(dir).is_err()
        || std::fs::write(&tmp, bytes).is_err()
        || std::fs::rename(&tmp, path).is_err()
    {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The cache key of a file's content in `lang`.
pub(crate) fn key(bytes: &[u8], lang: graft_lang::Lang) -> u128 {
    let seed = (ANALYZER_VERSION << 8) | lang as u64;
    xxhash_rust::xxh3::xxh3_128_with_seed(bytes, seed)
}

/// A `Vec<u32>` as one byte string of little-endian words.
pub(crate) mod words {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u32], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|w| w.to_le_bytes()).collect();
        s.serialize_bytes(&bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        d.deserialize_bytes(super::Records(4, |b: &[u8]| {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        }))
    }
}

/// Clone fingerprints, `(u32, u64)`, as one byte string of 12-byte records.
pub(crate) mod prints {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[(u32, u64)], s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(v.len() * 12);
        for (i, h) in v {
            bytes.extend_from_slice(&i.to_le_bytes());
            bytes.extend_from_slice(&h.to_le_bytes());
        }
        s.serialize_bytes(&bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u32, u64)>, D::Error> {
        d.deserialize_bytes(super::Records(12, |b: &[u8]| {
            let (i, h) = b.split_at(4);
            (
                u32::from_le_bytes(i.try_into().unwrap_or_default()),
                u64::from_le_bytes(h.try_into().unwrap_or_default()),
            )
        }))
    }
}

/// Decodes a byte string of records of `.0` bytes each with `.1`.
struct Records<F>(usize, F);

impl<'de, T, F: Fn(&[u8]) -> T> serde::de::Visitor<'de> for Records<F> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a byte string of fixed-size records")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<T>, E> {
        if !v.len().is_multiple_of(self.0) {
            return Err(E::invalid_length(v.len(), &self));
        }
        Ok(v.chunks_exact(self.0).map(&self.1).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClonePrints;

    fn facts() -> FileFacts {
        FileFacts {
            lines: 3,
            tokens: vec![1, 2, 16, u32::MAX],
            exact_tokens: vec![0x8000_0001, 2, 16, 7],
            token_lines: vec![1, 1, 2, 3],
            prints: Some(ClonePrints {
                min_tokens: 50,
                exact: vec![(0, u64::MAX), (3, 42)],
                folded: vec![],
            }),
            ..FileFacts::default()
        }
    }

    #[test]
    fn entries_survive_a_save_and_a_load_and_are_handed_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = facts();
        let key = 7u128 << 124 | 1;
        Cache::load(dir.path()).save(&[(key, &f)], Vec::new(), true);
        let cache = Cache::load(dir.path());
        assert_eq!(cache.take(key), Some(f));
        assert_eq!(cache.take(key), None, "an entry is moved out, not copied");
        assert_eq!(cache.take(key + 1), None);
    }

    #[test]
    fn a_stamp_is_kept_only_for_a_file_older_than_the_racy_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.py");
        std::fs::write(&path, "x = 1\n").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let now = std::time::SystemTime::now();
        assert_eq!(Stamp::of(&meta, 9, now), None, "changed just now");
        let later = now + RACY + std::time::Duration::from_millis(100);
        let stamp = Stamp::of(&meta, 9, later).expect("old enough");
        assert_eq!(stamp.key, 9);
        assert!(stamp.matches(&meta));
        // (Another size: within one clock tick the times may not move.)
        std::fs::write(&path, "x = 22\n").unwrap();
        assert!(!stamp.matches(&std::fs::metadata(&path).unwrap()), "rewritten");
    }

    #[test]
    fn a_damaged_shard_is_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = facts();
        let key = 3u128 << 124;
        Cache::load(dir.path()).save(&[(key, &f)], Vec::new(), true);
        let path = dir.path().join(DIR_NAME).join("03.bin");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 5);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(Cache::load(dir.path()).take(key), None);
    }
}
