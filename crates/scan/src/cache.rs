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

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::FileFacts;

/// Bumped whenever what [`FileFacts`] holds or how it is computed changes;
/// it is part of every key, and a shard of another version is ignored.
pub(crate) const ANALYZER_VERSION: u64 = 4;

pub(crate) const DIR_NAME: &str = "scan-cache";

const SHARDS: usize = 16;

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

pub(crate) struct Cache {
    dir: PathBuf,
    shards: Vec<HashMap<u128, FileFacts>>,
}

fn shard_of(key: u128) -> usize {
    (key >> 124) as usize % SHARDS
}

impl Cache {
    /// Read every shard under `graft_dir` (in parallel); a missing,
    /// unreadable or outdated shard is empty.
    pub(crate) fn load(graft_dir: &Path) -> Cache {
        let dir = graft_dir.join(DIR_NAME);
        let shards = (0..SHARDS)
            .into_par_iter()
            .map(|i| {
                std::fs::read(dir.join(format!("{i:02}.bin")))
                    .ok()
                    .and_then(|bytes| postcard::from_bytes::<Shard>(&bytes).ok())
                    .filter(|s| s.version == ANALYZER_VERSION)
                    .map(|s| s.entries.into_iter().collect())
                    .unwrap_or_default()
            })
            .collect();
        Cache { dir, shards }
    }

    pub(crate) fn get(&self, key: u128) -> Option<FileFacts> {
        self.shards[shard_of(key)].get(&key).cloned()
    }

    /// Write back the shards that changed: those with a new entry, and on a
    /// full scan (`prune`) those holding entries no file uses any more. A
    /// failed write only costs the next scan time.
    pub(crate) fn save(&self, used: &[(u128, &FileFacts)], prune: bool) {
        let mut by_shard: Vec<Vec<(u128, &FileFacts)>> = vec![Vec::new(); SHARDS];
        let mut seen: HashSet<u128> = HashSet::with_capacity(used.len());
        for &(key, facts) in used {
            if seen.insert(key) {
                by_shard[shard_of(key)].push((key, facts));
            }
        }
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        by_shard.into_par_iter().enumerate().for_each(|(i, mut entries)| {
            let old = &self.shards[i];
            let added = entries.iter().any(|(k, _)| !old.contains_key(k));
            let stale =
                old.len() > entries.len() || old.keys().any(|k| shard_of(*k) == i && !seen.contains(k));
            if !(added || (prune && stale)) {
                return;
            }
            if !prune {
                entries.extend(
                    old.iter()
                        .filter(|(k, _)| !seen.contains(k))
                        .map(|(k, f)| (*k, f)),
                );
            }
            entries.sort_unstable_by_key(|(k, _)| *k);
            let Ok(bytes) = postcard::to_stdvec(&ShardRef {
                version: ANALYZER_VERSION,
                entries,
            }) else {
                return;
            };
            let path = self.dir.join(format!("{i:02}.bin"));
            let tmp = self.dir.join(format!("{i:02}.tmp{}", std::process::id()));
            if std::fs::write(&tmp, bytes).is_err() || std::fs::rename(&tmp, &path).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        });
    }
}

/// The cache key of a file's content in `lang`.
pub(crate) fn key(bytes: &[u8], lang: graft_lang::Lang) -> u128 {
    let seed = (ANALYZER_VERSION << 8) | lang as u64;
    xxhash_rust::xxh3::xxh3_128_with_seed(bytes, seed)
}
