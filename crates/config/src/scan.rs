//! `[scan]`: what `graft scan` looks at and when a figure becomes a finding.
//!
//! Every threshold is "more than": a class with exactly `god_class_methods`
//! methods is not a god class. Counts must be positive, so a typo such as
//! `0` cannot silently turn a detector into "everything is a finding".

use serde::Deserialize;

use crate::values::GlobList;

/// `[scan]` in `graft.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// Globs (relative to the repo root) of files and folders the scan
    /// skips, on top of what `.gitignore` ignores.
    pub exclude: GlobList,
    /// A class or type with more methods than this is a god class.
    pub god_class_methods: Count,
    /// A class or type longer than this many lines is a god class.
    pub god_class_lines: Count,
    /// A module (file) longer than this many lines is a god module.
    pub god_module_lines: Count,
    /// A module with more top-level functions and types than this is a god module.
    pub god_module_definitions: Count,
    /// A function whose cyclomatic complexity exceeds this is complex.
    pub max_cyclomatic: Count,
    /// A function whose cognitive complexity exceeds this is complex.
    pub max_cognitive: Count,
    /// A module that imports more modules of the repo than this is highly coupled.
    pub max_fan_out: Count,
    /// Clones shorter than this many tokens are not reported.
    pub clone_min_tokens: Count,
    /// Clones spanning fewer lines than this are not reported.
    pub clone_min_lines: Count,
    /// Files larger than this many bytes are skipped (generated code).
    pub max_file_bytes: Count,
    /// Worker threads; 0 (the default) means one per core.
    pub threads: usize,
    /// How many of the newest scans keep their suggestions in the ledger;
    /// older scans keep their summary, and suggestions an upgrade was
    /// made from are always kept.
    pub suggestion_history: Count,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            exclude: GlobList::default(),
            god_class_methods: Count(20),
            god_class_lines: Count(500),
            god_module_lines: Count(1000),
            god_module_definitions: Count(50),
            max_cyclomatic: Count(15),
            max_cognitive: Count(25),
            max_fan_out: Count(20),
            clone_min_tokens: Count(50),
            clone_min_lines: Count(5),
            max_file_bytes: Count(1024 * 1024),
            threads: 0,
            suggestion_history: Count(20),
        }
    }
}

/// A positive whole number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "i64")]
pub struct Count(pub u64);

impl TryFrom<i64> for Count {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        if v > 0 {
            Ok(Count(v as u64))
        } else {
            Err(format!("{v} is not a positive whole number"))
        }
    }
}

impl Count {
    pub fn get(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("graft.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_without_a_scan_section() {
        let c = parse("").unwrap();
        assert_eq!(c.scan.god_class_methods.get(), 20);
        assert_eq!(c.scan.god_class_lines.get(), 500);
        assert_eq!(c.scan.clone_min_tokens.get(), 50);
        assert_eq!(c.scan.clone_min_lines.get(), 5);
        assert!(c.scan.exclude.0.is_empty());
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(
            "[scan]\nexclude = [\"vendor/**\", \"*.min.js\"]\ngod_class_methods = 10\ngod_class_lines = 300\n\
             god_module_lines = 800\ngod_module_definitions = 40\nmax_cyclomatic = 12\nmax_cognitive = 20\n\
             max_fan_out = 8\nclone_min_tokens = 30\nclone_min_lines = 3\nmax_file_bytes = 2048\nthreads = 2\n\
             suggestion_history = 5\n",
        )
        .unwrap();
        let s = c.scan;
        assert_eq!(s.exclude.0, vec!["vendor/**", "*.min.js"]);
        assert_eq!(
            [
                s.god_class_methods.get(),
                s.god_class_lines.get(),
                s.god_module_lines.get(),
                s.god_module_definitions.get(),
                s.max_cyclomatic.get(),
                s.max_cognitive.get(),
                s.max_fan_out.get(),
                s.clone_min_tokens.get(),
                s.clone_min_lines.get(),
                s.max_file_bytes.get(),
            ],
            [10, 300, 800, 40, 12, 20, 8, 30, 3, 2048]
        );
        assert_eq!(s.threads, 2);
        assert_eq!(s.suggestion_history.get(), 5);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = parse("[scan]\ngod_class_method = 3\n").unwrap_err();
        assert!(
            e.starts_with("graft.toml:2:1: unknown key `scan.god_class_method`, expected one of `exclude`"),
            "{e}"
        );
    }

    #[test]
    fn zero_and_negative_counts_are_refused() {
        let e = parse("[scan]\nmax_cyclomatic = 0\n").unwrap_err();
        assert_eq!(
            e,
            "graft.toml:2:18: key `scan.max_cyclomatic`: 0 is not a positive whole number"
        );
        let e = parse("[scan]\nclone_min_tokens = -5\n").unwrap_err();
        assert!(
            e.contains("key `scan.clone_min_tokens`: -5 is not a positive whole number"),
            "{e}"
        );
    }

    #[test]
    fn bad_exclude_glob_is_refused() {
        let e = parse("[scan]\nexclude = [\"src/[\"]\n").unwrap_err();
        assert!(
            e.starts_with("graft.toml:2:11: key `scan.exclude`: `src/[` is not a valid glob"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_is_refused() {
        let e = parse("[scan]\ngod_class_lines = \"many\"\n").unwrap_err();
        assert!(e.contains("key `scan.god_class_lines`"), "{e}");
    }
}
