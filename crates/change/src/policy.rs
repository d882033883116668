//! What a change may touch and how big it may be.
//!
//! The path half of design invariant 6 beyond the lexical rules of
//! [`RelPath`]: protected paths (Graft's own config and state, secrets) need
//! explicit approval, and limits keep a runaway generator from writing
//! megabytes or binaries into the repo.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::ChangeError;
use crate::path::RelPath;

/// Patterns protected in every repository, whatever the config says:
/// Graft's own config and state, and the usual places secrets live.
pub(crate) const BUILTIN_PROTECTED: &[&str] = &[
    "graft.toml",
    ".graft/**",
    ".graft",
    ".env",
    ".env.*",
    "**/.env",
    "**/*.pem",
    "**/*.key",
    "**/id_rsa*",
    "**/id_ed25519*",
];

/// How many bytes of a request are read per byte a change may write: a
/// patch carries the lines it removes and its context beside what it
/// writes (a rewritten file, twice), and a list of edits its JSON.
pub const REQUEST_BYTES_PER_CHANGE_BYTE: u64 = 4;

/// The bound on a request's bytes is never below this, so that a small
/// `max_change_bytes` still lets a patch that deletes a file through.
pub const MIN_REQUEST_BYTES: u64 = 64 * 1024;

/// Size and content limits for one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sum of the sizes of all files the change creates or rewrites.
    pub max_change_bytes: u64,
    /// Size of any one resulting file.
    pub max_file_bytes: u64,
    /// Files the change may touch (create, change, delete; a rename is one).
    pub max_files: u64,
    /// Whether a resulting file may hold NUL bytes or invalid UTF-8.
    pub allow_binary: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_change_bytes: 1024 * 1024,
            max_file_bytes: 512 * 1024,
            max_files: 1000,
            allow_binary: false,
        }
    }
}

impl Limits {
    /// The most bytes of one request (a patch, a list of edits, an
    /// instruction) Graft reads: [`REQUEST_BYTES_PER_CHANGE_BYTE`] times
    /// `max_change_bytes`, at least [`MIN_REQUEST_BYTES`].
    pub fn max_request_bytes(&self) -> u64 {
        self.max_change_bytes
            .saturating_mul(REQUEST_BYTES_PER_CHANGE_BYTE)
            .max(MIN_REQUEST_BYTES)
    }

    /// Refuses a change touching more than `max_files` files.
    pub fn check_files(&self, count: usize) -> Result<(), ChangeError> {
        let count = count as u64;
        if count > self.max_files {
            return Err(ChangeError::TooManyFiles {
                count,
                limit: self.max_files,
            });
        }
        Ok(())
    }

    /// Refuses a file of `size` bytes (`at_least`: or more) over
    /// `max_file_bytes`.
    pub fn check_file_bytes(&self, path: &RelPath, size: u64, at_least: bool) -> Result<(), ChangeError> {
        if size > self.max_file_bytes {
            return Err(ChangeError::FileTooLarge {
                path: path.clone(),
                size,
                limit: self.max_file_bytes,
                at_least,
            });
        }
        Ok(())
    }

    /// Refuses a change writing `total` bytes (`at_least`: or more) in
    /// all over `max_change_bytes`.
    pub fn check_change_bytes(&self, total: u64, at_least: bool) -> Result<(), ChangeError> {
        if total > self.max_change_bytes {
            return Err(ChangeError::ChangeTooLarge {
                size: total,
                limit: self.max_change_bytes,
                at_least,
            });
        }
        Ok(())
    }
}

/// Protected paths plus limits; built once per target.
#[derive(Debug, Clone)]
pub struct Policy {
    set: GlobSet,
    /// Same order as the globs in `set`, so a match index names its pattern.
    patterns: Vec<String>,
    limits: Limits,
    approve_protected: bool,
}

impl Policy {
    /// `protected` adds to the built-in patterns (Graft's config and state,
    /// `.env` files, keys; see [`Policy::protected_patterns`]). Globs match whole
    /// repo-relative paths and `*` does not cross `/` (use `**` for that).
    pub fn new(protected: &[String], limits: Limits, approve_protected: bool) -> Result<Policy, ChangeError> {
        let mut builder = GlobSetBuilder::new();
        let mut patterns = Vec::new();
        let all = BUILTIN_PROTECTED
            .iter()
            .map(|s| s.to_string())
            .chain(protected.iter().cloned());
        for pattern in all {
            let glob = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| ChangeError::InvalidGlob {
                    glob: pattern.clone(),
                    reason: e.kind().to_string(),
                })?;
            builder.add(glob);
            patterns.push(pattern);
        }
        let set = builder.build().map_err(|e| ChangeError::InvalidGlob {
            glob: e.glob().unwrap_or("").to_string(),
            reason: e.kind().to_string(),
        })?;
        Ok(Policy {
            set,
            patterns,
            limits,
            approve_protected,
        })
    }

    /// The first protected pattern `path` matches, if any.
    pub fn is_protected(&self, path: &RelPath) -> Option<String> {
        let first = self.set.matches(path.as_str()).into_iter().min()?;
        Some(self.patterns[first].clone())
    }

    /// Refuses a protected path unless protected changes were approved.
    pub fn check_path(&self, path: &RelPath) -> Result<(), ChangeError> {
        if self.approve_protected {
            return Ok(());
        }
        match self.is_protected(path) {
            Some(pattern) => Err(ChangeError::PathProtected {
                path: path.clone(),
                pattern,
            }),
            None => Ok(()),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn approve_protected(&self) -> bool {
        self.approve_protected
    }

    /// Every protected pattern, built-in ones first.
    pub fn protected_patterns(&self) -> &[String] {
        &self.patterns
    }
}

impl Default for Policy {
    /// Only the built-in protected paths, default limits, no approval.
    fn default() -> Self {
        Policy::new(&[], Limits::default(), false).expect("built-in globs are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn default_limits() {
        let l = Limits::default();
        assert_eq!(l.max_change_bytes, 1_048_576);
        assert_eq!(l.max_file_bytes, 524_288);
        assert_eq!(l.max_files, 1000);
        assert!(!l.allow_binary);
        assert_eq!(l.max_request_bytes(), 4 * 1_048_576);
        let tiny = Limits {
            max_change_bytes: 10,
            ..l
        };
        assert_eq!(tiny.max_request_bytes(), MIN_REQUEST_BYTES);
    }

    #[test]
    fn builtin_patterns_protect_config_state_and_secrets() {
        let policy = Policy::default();
        for (path, pattern) in [
            ("graft.toml", "graft.toml"),
            (".graft", ".graft"),
            (".graft/ledger.db", ".graft/**"),
            (".env", ".env"),
            (".env.local", ".env.*"),
            ("svc/.env", "**/.env"),
            ("certs/server.pem", "**/*.pem"),
            ("server.key", "**/*.key"),
            ("home/.ssh/id_rsa.pub", "**/id_rsa*"),
            ("id_ed25519", "**/id_ed25519*"),
        ] {
            assert_eq!(policy.is_protected(&p(path)).as_deref(), Some(pattern), "{path}");
        }
        for path in [
            "src/graft.toml.rs",
            "sub/graft.toml",
            "src/main.rs",
            "env.rs",
            "a/.envrc",
        ] {
            assert_eq!(policy.is_protected(&p(path)), None, "{path}");
        }
    }

    #[test]
    fn check_path_refuses_protected_and_names_pattern() {
        let policy = Policy::default();
        let err = policy.check_path(&p(".graft/state.json")).unwrap_err();
        assert_eq!(err.code(), "path_protected");
        let msg = err.to_string();
        assert!(msg.contains("`.graft/state.json` is protected"), "{msg}");
        assert!(msg.contains("`.graft/**`"), "{msg}");
        assert!(msg.contains("--approve-protected"), "{msg}");
        assert!(policy.check_path(&p("src/lib.rs")).is_ok());
    }

    #[test]
    fn approval_allows_protected_paths() {
        let policy = Policy::new(&[], Limits::default(), true).unwrap();
        assert!(policy.check_path(&p("graft.toml")).is_ok());
        // Still reported as protected, so callers can show it.
        assert_eq!(
            policy.is_protected(&p("graft.toml")).as_deref(),
            Some("graft.toml")
        );
        assert!(policy.approve_protected());
    }

    #[test]
    fn user_globs_do_not_cross_directories_with_single_star() {
        let policy = Policy::new(
            &["migrations/*.sql".to_string(), "deploy/**".to_string()],
            Limits::default(),
            false,
        )
        .unwrap();
        assert_eq!(
            policy.is_protected(&p("migrations/001.sql")).as_deref(),
            Some("migrations/*.sql")
        );
        assert_eq!(policy.is_protected(&p("migrations/old/001.sql")), None);
        assert_eq!(
            policy.is_protected(&p("deploy/k8s/app.yaml")).as_deref(),
            Some("deploy/**")
        );
        assert_eq!(policy.protected_patterns().len(), BUILTIN_PROTECTED.len() + 2);
    }

    #[test]
    fn invalid_glob_is_named() {
        let err = Policy::new(&["src/[a-".to_string()], Limits::default(), false).unwrap_err();
        assert_eq!(err.code(), "invalid_glob");
        assert!(err.to_string().contains("`src/[a-`"), "{err}");
    }

    #[test]
    fn limits_are_kept() {
        let limits = Limits {
            max_change_bytes: 10,
            max_file_bytes: 5,
            max_files: 2,
            allow_binary: true,
        };
        let policy = Policy::new(&[], limits, false).unwrap();
        assert_eq!(*policy.limits(), limits);
    }
}
