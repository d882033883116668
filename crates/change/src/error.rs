//! Every way a change can be refused, as one error type.
//!
//! Messages are read by people (and by the agent that wrote the change), so
//! each says what failed, which file (and line, for input errors) and what
//! to do about it. [`ChangeError::code`] gives a stable snake_case reason
//! for `--json` output and for tests, which must not depend on wording.

use std::path::PathBuf;

use crate::path::RelPath;
use crate::policy::REQUEST_BYTES_PER_CHANGE_BYTE;

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    // ---- path rules (design invariant 6) ----
    #[error("the path `{path}` names no file; give a file path relative to the repository root")]
    PathEmpty { path: String },

    #[error(
        "the path `{}` contains a control character; paths may only hold printable characters",
        path.escape_debug()
    )]
    PathControlChar { path: String },

    #[error(
        "the path `{path}` is absolute; a change may only name files relative to the repository root (like `src/main.rs`)"
    )]
    PathAbsolute { path: String },

    #[error("the path `{path}` contains a backslash; separate directories with `/`")]
    PathBackslash { path: String },

    #[error("the path `{path}` ends with `/`; a change names files, not directories")]
    PathTrailingSlash { path: String },

    #[error(
        "the path `{path}` contains `..`; a change may only touch files inside the repository, named without `..`"
    )]
    PathTraversal { path: String },

    #[error(
        "the path `{path}` is inside `.git`; a change may not touch git's own files (Graft commits for you)"
    )]
    PathGitDir { path: String },

    // ---- policy ----
    #[error(
        "`{path}` is protected (it matches `{pattern}`); pass `--approve-protected` to allow changing it"
    )]
    PathProtected { path: RelPath, pattern: String },

    #[error("the protected-path glob `{glob}` is invalid: {reason}")]
    InvalidGlob { glob: String, reason: String },

    // ---- the tree the change applies to ----
    #[error(
        "`{path}` goes through the symlink `{link}` (pointing to `{}`); Graft never writes through or replaces symlinks, so change the file at its real place",
        target.display()
    )]
    SymlinkEscape {
        path: RelPath,
        link: RelPath,
        target: PathBuf,
    },

    #[error("`{path}` cannot exist because `{component}` is a file, not a directory")]
    NotADirectory { path: RelPath, component: RelPath },

    #[error("`{path}` is a directory; a change can only create, change or delete files")]
    IsADirectory { path: RelPath },

    #[error("`{path}` already exists; modify or replace it instead of creating it")]
    FileExists { path: RelPath },

    #[error("`{path}` does not exist; create it instead (check the path's spelling)")]
    FileMissing { path: RelPath },

    #[error(
        "`{path}` differs from what the patch deletes; the file changed since the patch was made, regenerate the patch"
    )]
    DeleteMismatch { path: RelPath },

    #[error(
        "search text not found in `{path}`: `{}`; copy the text exactly as it is in the current file, whitespace included",
        quote(search)
    )]
    SearchNotFound { path: RelPath, search: String },

    #[error(
        "search text occurs {count} times in `{path}` (at lines {}): `{}`; include more surrounding lines so it matches exactly once",
        join_lines(lines),
        quote(search)
    )]
    SearchAmbiguous {
        path: RelPath,
        search: String,
        count: usize,
        /// 1-based line of each distinct place the text starts on.
        lines: Vec<usize>,
    },

    #[error(
        "hunk `{header}` does not apply to `{path}`: at line {line} the patch expects `{}` but {}; the file changed since the patch was made, regenerate it against the current file",
        quote(expected),
        found_text(found)
    )]
    HunkMismatch {
        path: RelPath,
        header: String,
        /// 1-based line in the file, at the hunk's stated position.
        line: usize,
        expected: String,
        /// `None` when the file ends before that line.
        found: Option<String>,
    },

    #[error(
        "`{path}` would be {}{size} bytes, over the limit of {limit} bytes per file; split the file, or raise `[limits] max_file_bytes` in graft.toml",
        at_least_text(*at_least)
    )]
    FileTooLarge {
        path: RelPath,
        size: u64,
        limit: u64,
        /// `size` is what the change alone shows it writes: the file, once
        /// resolved against the tree, may be larger.
        at_least: bool,
    },

    #[error(
        "the change writes {}{size} bytes in all, over the limit of {limit} bytes per change; split it into smaller changes, or raise `[limits] max_change_bytes` in graft.toml",
        at_least_text(*at_least)
    )]
    ChangeTooLarge { size: u64, limit: u64, at_least: bool },

    #[error(
        "the change names {count} files, over the limit of {limit} files per change; split it into smaller changes, or raise `[limits] max_files` in graft.toml"
    )]
    TooManyFiles { count: u64, limit: u64 },

    /// A request refused as it was read: only `limit` bytes of it and one
    /// more were read.
    #[error(
        "{source_name}: more than {limit} bytes, the most Graft reads of one change ({REQUEST_BYTES_PER_CHANGE_BYTE} times `[limits] max_change_bytes`); split it into smaller changes, or raise `[limits] max_change_bytes` in graft.toml"
    )]
    RequestTooLarge { source_name: String, limit: u64 },

    #[error(
        "`{path}` would hold binary content (a NUL byte or invalid UTF-8); binary files are refused unless `allow_binary` is set"
    )]
    Binary { path: RelPath },

    #[error(
        "`{path}` changed on disk after the change was checked; nothing was written, resolve the change again"
    )]
    Stale { path: RelPath },

    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },

    #[error(
        "{error}; undoing the partial write also failed, so these paths need a manual look: {}",
        leftovers.join(", ")
    )]
    RollbackFailed {
        error: Box<ChangeError>,
        leftovers: Vec<String>,
    },

    // ---- input (patches and JSON edits) ----
    #[error("{source_name}: not valid UTF-8 at byte {offset} (line {line}); a change must be UTF-8 text")]
    NotUtf8 {
        source_name: String,
        offset: usize,
        line: usize,
    },

    #[error("{source_name}: {reason}")]
    EmptyChange {
        source_name: String,
        reason: &'static str,
    },

    #[error("{source_name}:{line}: {reason}")]
    MalformedPatch {
        source_name: String,
        line: usize,
        reason: String,
    },

    #[error(
        "{source_name}:{line}: hunk `{header}` of `{path}` ends after {got} of {want} {side} lines (truncated patch?)"
    )]
    TruncatedHunk {
        source_name: String,
        /// The line of the hunk header.
        line: usize,
        path: String,
        header: String,
        /// `"old"` or `"new"`: which side of the hunk came up short.
        side: &'static str,
        got: usize,
        want: usize,
    },

    #[error("{source_name}:{line}: `{path}` is a binary change; Graft applies text patches only")]
    BinaryPatch {
        source_name: String,
        line: usize,
        path: String,
    },

    #[error("{source_name}:{line}: {what}")]
    UnsupportedPatch {
        source_name: String,
        line: usize,
        what: String,
    },

    #[error("{source_name}: {}{message}", location(index, line, column))]
    InvalidEdits {
        source_name: String,
        /// 0-based index of the offending edit, when known.
        index: Option<usize>,
        /// 1-based line and column in the JSON text, when known.
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },

    /// A refusal (usually a path rule) found while parsing a patch.
    #[error("{source_name}:{line}: {error}")]
    InPatch {
        source_name: String,
        line: usize,
        error: Box<ChangeError>,
    },

    /// A refusal (usually a path rule) found in one edit of a JSON list.
    #[error("{source_name}: edits[{index}]: {error}")]
    InEdits {
        source_name: String,
        index: usize,
        error: Box<ChangeError>,
    },
}

impl ChangeError {
    /// A stable snake_case reason, for `--json` output and tests.
    ///
    /// Errors that only add a location ([`ChangeError::InPatch`],
    /// [`ChangeError::InEdits`]) report the code of what they wrap.
    pub fn code(&self) -> &'static str {
        use ChangeError::*;
        match self {
            PathEmpty { .. } => "path_empty",
            PathControlChar { .. } => "path_control_char",
            PathAbsolute { .. } => "path_absolute",
            PathBackslash { .. } => "path_backslash",
            PathTrailingSlash { .. } => "path_trailing_slash",
            PathTraversal { .. } => "path_traversal",
            PathGitDir { .. } => "path_git_dir",
            PathProtected { .. } => "path_protected",
            InvalidGlob { .. } => "invalid_glob",
            SymlinkEscape { .. } => "symlink_escape",
            NotADirectory { .. } => "not_a_directory",
            IsADirectory { .. } => "is_a_directory",
            FileExists { .. } => "file_exists",
            FileMissing { .. } => "file_missing",
            DeleteMismatch { .. } => "delete_mismatch",
            SearchNotFound { .. } => "search_not_found",
            SearchAmbiguous { .. } => "search_ambiguous",
            HunkMismatch { .. } => "hunk_mismatch",
            FileTooLarge { .. } | ChangeTooLarge { .. } | RequestTooLarge { .. } => "too_large",
            TooManyFiles { .. } => "too_many_files",
            Binary { .. } | BinaryPatch { .. } => "binary",
            Stale { .. } => "stale",
            Io { .. } => "io",
            RollbackFailed { .. } => "rollback_failed",
            NotUtf8 { .. } => "not_utf8",
            EmptyChange { .. } => "empty_change",
            MalformedPatch { .. } => "malformed_patch",
            TruncatedHunk { .. } => "truncated_hunk",
            UnsupportedPatch { .. } => "unsupported_patch",
            InvalidEdits { .. } => "invalid_edits",
            InPatch { error, .. } | InEdits { error, .. } => error.code(),
        }
    }

    /// The error without the input location wrappers, for matching on the
    /// cause.
    pub fn root(&self) -> &ChangeError {
        match self {
            ChangeError::InPatch { error, .. } | ChangeError::InEdits { error, .. } => error.root(),
            other => other,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        ChangeError::Io {
            path: path.into(),
            action,
            source,
        }
    }
}

/// Quotes at most about 80 characters of `text`: its first line, with "…"
/// when anything was cut, so a long search block stays readable in a message.
pub(crate) fn quote(text: &str) -> String {
    const MAX: usize = 80;
    let first = text.split_inclusive('\n').next().unwrap_or("");
    let first_trimmed = first.trim_end_matches(['\n', '\r']);
    let mut out: String = first_trimmed.chars().take(MAX).collect();
    if out.len() < first_trimmed.len() || first.len() < text.len() {
        out.push('…');
    }
    out
}

fn at_least_text(at_least: bool) -> &'static str {
    if at_least { "at least " } else { "" }
}

fn join_lines(lines: &[usize]) -> String {
    let parts: Vec<String> = lines.iter().map(usize::to_string).collect();
    parts.join(", ")
}

fn found_text(found: &Option<String>) -> String {
    match found {
        Some(text) => format!("the file has `{}`", quote(text)),
        None => "the file ends before that line".to_string(),
    }
}

fn location(index: &Option<usize>, line: &Option<usize>, column: &Option<usize>) -> String {
    let mut out = String::new();
    if let Some(i) = index {
        out.push_str(&format!("edits[{i}]"));
    }
    if let (Some(l), Some(c)) = (line, column) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&format!("(line {l}, column {c})"));
    }
    if !out.is_empty() {
        out.push_str(": ");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_keeps_short_single_lines() {
        assert_eq!(quote("def foo("), "def foo(");
    }

    #[test]
    fn quote_cuts_after_first_line() {
        assert_eq!(quote("def foo(\n    pass\n"), "def foo(…");
    }

    #[test]
    fn quote_keeps_single_line_with_newline_whole() {
        assert_eq!(quote("x = 1\n"), "x = 1");
    }

    #[test]
    fn quote_cuts_long_lines_at_80_chars() {
        let long = "é".repeat(100);
        let q = quote(&long);
        assert_eq!(q.chars().count(), 81);
        assert!(q.ends_with('…'));
    }

    #[test]
    fn wrappers_report_the_inner_code() {
        let inner = ChangeError::PathTraversal { path: "../x".into() };
        let err = ChangeError::InPatch {
            source_name: "p.diff".into(),
            line: 3,
            error: Box::new(inner),
        };
        assert_eq!(err.code(), "path_traversal");
        assert!(matches!(err.root(), ChangeError::PathTraversal { .. }));
        assert!(
            err.to_string()
                .starts_with("p.diff:3: the path `../x` contains `..`")
        );
    }

    #[test]
    fn invalid_edits_message_names_index_and_position() {
        let err = ChangeError::InvalidEdits {
            source_name: "e.json".into(),
            index: Some(2),
            line: Some(4),
            column: Some(7),
            message: "unknown field `serch`".into(),
        };
        assert_eq!(
            err.to_string(),
            "e.json: edits[2] (line 4, column 7): unknown field `serch`"
        );
        assert_eq!(err.code(), "invalid_edits");
    }
}
