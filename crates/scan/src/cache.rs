//! Per-file results kept between scans, keyed by a hash of the file's
//! content (with its language and the analyzer's version), so a re-scan
//! parses only what changed.
//!
//! One small file per entry, `.graft/scan-cache/<key>.bin` (postcard):
//! entries are read and decoded by the same parallel workers that would
//! otherwise parse, a changed file costs one small write (a single cache
//! file would be rewritten whole), and each write is atomic (a temporary
//! file, then a rename), so a scan that dies midway leaves only whole
//! entries. A full scan removes the entries it did not use, so the cache
//! stays the size of the repo.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::model::FileFacts;

/// Bumped whenever what [`FileFacts`] holds or how it is computed changes;
/// it is part of every key, so old entries are simply never found.
pub(crate) const ANALYZER_VERSION: u64 = 2;

pub(crate) const DIR_NAME: &str = "scan-cache";

pub(crate) struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub(crate) fn open(graft_dir: &Path) -> Cache {
        let dir = graft_dir.join(DIR_NAME);
        let _ = std::fs::create_dir_all(&dir);
        Cache { dir }
    }

    fn path(&self, key: u128) -> PathBuf {
        self.dir.join(format!("{key:032x}.bin"))
    }

    /// The entry for `key`; a missing or unreadable one is a miss.
    pub(crate) fn get(&self, key: u128) -> Option<FileFacts> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        postcard::from_bytes(&bytes).ok()
    }

    /// Store an entry. A failed write only costs the next scan time.
    pub(crate) fn put(&self, key: u128, facts: &FileFacts) {
        let Ok(bytes) = postcard::to_stdvec(facts) else {
            return;
        };
        let path = self.path(key);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Remove every entry not in `used`.
    pub(crate) fn prune(&self, used: &HashSet<u128>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let keep = name
                .strip_suffix(".bin")
                .and_then(|k| u128::from_str_radix(k, 16).ok())
                .is_some_and(|k| used.contains(&k));
            if !keep {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The cache key of a file's content in `lang`.
pub(crate) fn key(bytes: &[u8], lang: graft_lang::Lang) -> u128 {
    let seed = (ANALYZER_VERSION << 8) | lang as u64;
    xxhash_rust::xxh3::xxh3_128_with_seed(bytes, seed)
}
