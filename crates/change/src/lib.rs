//! What a change is, how it arrives, and whether it may touch what it names.
//!
//! A [`Change`] is an ordered list of [`Edit`]s. It arrives as a git-style
//! unified diff ([`parse_unified_diff`]) or as a JSON list of edits
//! ([`parse_edits_json`]), read with a bound and held to the limits as far
//! as the change alone tells before anything is stored ([`read_request`],
//! [`check_change`]). Nothing here writes to disk until
//! [`Resolved::write_to`]: [`resolve`] first computes every resulting file in
//! memory against a tree, checking each path against the [`Policy`]
//! (design invariant 6), so a change that fails anywhere changes nothing.
//!
//! This crate knows nothing about git, the ledger or gates: it is a pure
//! function from (change, tree, policy) to file contents.

mod apply;
mod diff;
mod edits;
mod error;
mod intake;
mod path;
mod policy;

pub use apply::{ChangeKind, OnDisk, Resolved, ResolvedFile, inspect_checked, read_checked, resolve};
pub use diff::parse_unified_diff;
pub use edits::parse_edits_json;
pub use error::ChangeError;
pub use intake::{check_change, check_request_bytes, read_request};
pub use path::RelPath;
pub use policy::{Limits, MIN_REQUEST_BYTES, Policy, REQUEST_BYTES_PER_CHANGE_BYTE};

/// A set of file edits, applied in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    pub edits: Vec<Edit>,
}

/// One file-level edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// A new file; refused if the path already exists.
    Create {
        path: RelPath,
        content: Vec<u8>,
        executable: bool,
    },
    /// Remove a file. `expect`, when given (a diff carries the old text),
    /// must equal the current content.
    Delete { path: RelPath, expect: Option<Vec<u8>> },
    /// Change an existing file by hunks or search/replace pairs, in order.
    Modify { path: RelPath, ops: Vec<ModifyOp> },
    /// Move a file, then apply `ops` to it at its new place.
    Rename {
        from: RelPath,
        to: RelPath,
        ops: Vec<ModifyOp>,
    },
    /// Replace the whole content of an existing file.
    Replace { path: RelPath, content: Vec<u8> },
}

/// One modification inside a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModifyOp {
    Hunk(Hunk),
    /// `search` must occur exactly once in the file.
    SearchReplace {
        search: String,
        replace: String,
    },
}

/// A unified-diff hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// The `@@ -a,b +c,d @@` line as written, for error messages.
    pub header: String,
    pub old_start: usize,
    pub old_len: usize,
    pub new_start: usize,
    pub new_len: usize,
    pub lines: Vec<HunkLine>,
}

/// A line of a hunk, without its leading marker; `text` keeps its own
/// line ending (`\n`, `\r\n`, or none at end of file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HunkLine {
    Context(String),
    Remove(String),
    Add(String),
}
