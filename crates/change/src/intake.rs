//! What a request may be before anything is stored.
//!
//! Every way a change comes in (a file, standard input, the control
//! socket, the HTTP API, MCP) reads it with a bound derived from the
//! limits, [`Limits::max_request_bytes`]: at most one byte more than the
//! bound is read ([`read_request`]), and a request over it is refused at
//! once, without ever holding more than that in memory. The parsed change
//! is then held to the limits as far as the change alone tells
//! ([`check_change`]): how many files it names, and what it surely writes
//! (the content of a file it creates or replaces, the new side of its
//! hunks). Only [`crate::resolve`], against the tree, knows what every file
//! will be; it checks the limits exactly.

use std::collections::BTreeMap;
use std::io::Read;

use crate::error::ChangeError;
use crate::path::RelPath;
use crate::policy::Limits;
use crate::{Change, Edit, HunkLine, ModifyOp};

/// Reads a whole request from `reader`, refusing it as soon as it is over
/// [`Limits::max_request_bytes`].
pub fn read_request(reader: impl Read, source_name: &str, limits: &Limits) -> Result<Vec<u8>, ChangeError> {
    let limit = limits.max_request_bytes();
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ChangeError::io(source_name, "read", e))?;
    check_request_bytes(source_name, bytes.len(), limits)?;
    Ok(bytes)
}

/// Refuses a request of `len` bytes over [`Limits::max_request_bytes`]
/// (for one that arrived whole, in a JSON body, say).
pub fn check_request_bytes(source_name: &str, len: usize, limits: &Limits) -> Result<(), ChangeError> {
    let limit = limits.max_request_bytes();
    if len as u64 > limit {
        return Err(ChangeError::RequestTooLarge {
            source_name: source_name.to_string(),
            limit,
        });
    }
    Ok(())
}

/// Refuses a change that names more than `max_files` files, or that
/// surely writes more than the byte limits allow, whatever the tree.
pub fn check_change(change: &Change, limits: &Limits) -> Result<(), ChangeError> {
    let mut named: BTreeMap<&RelPath, usize> = BTreeMap::new();
    for edit in &change.edits {
        for path in paths(edit) {
            *named.entry(path).or_default() += 1;
        }
    }
    limits.check_files(named.len())?;
    let (mut total, mut at_least) = (0u64, false);
    for edit in &change.edits {
        // What a file named by one edit alone holds in the end; a file
        // several edits name may be undone by a later one.
        let Some((path, size, exact)) = written(edit).filter(|(path, ..)| named[path] == 1) else {
            continue;
        };
        limits.check_file_bytes(path, size, !exact)?;
        total += size;
        at_least |= !exact;
    }
    limits.check_change_bytes(total, at_least)
}

/// The paths an edit names (a rename both).
fn paths(edit: &Edit) -> Vec<&RelPath> {
    match edit {
        Edit::Create { path, .. }
        | Edit::Delete { path, .. }
        | Edit::Modify { path, .. }
        | Edit::Replace { path, .. } => vec![path],
        Edit::Rename { from, to, .. } => vec![from, to],
    }
}

/// The file an edit writes, the bytes it surely holds after it, and
/// whether that is all of it.
fn written(edit: &Edit) -> Option<(&RelPath, u64, bool)> {
    match edit {
        Edit::Create { path, content, .. } | Edit::Replace { path, content } => {
            Some((path, content.len() as u64, true))
        }
        Edit::Modify { path, ops } | Edit::Rename { to: path, ops, .. } => Some((path, new_side(ops), false)),
        Edit::Delete { .. } => None,
    }
}

/// Bytes the result of `ops` surely holds. Hunks apply in order, each
/// after the one before, so all their new sides are in the result; a
/// search/replace may replace what an earlier op wrote, so with one
/// among them only the last op's new side counts.
fn new_side(ops: &[ModifyOp]) -> u64 {
    let of = |op: &ModifyOp| -> u64 {
        match op {
            ModifyOp::Hunk(h) => h
                .lines
                .iter()
                .map(|l| match l {
                    HunkLine::Context(t) | HunkLine::Add(t) => t.len() as u64,
                    HunkLine::Remove(_) => 0,
                })
                .sum(),
            ModifyOp::SearchReplace { replace, .. } => replace.len() as u64,
        }
    };
    if ops.iter().all(|op| matches!(op, ModifyOp::Hunk(_))) {
        ops.iter().map(of).sum()
    } else {
        ops.last().map_or(0, of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_edits_json, parse_unified_diff};

    fn limits(max_change_bytes: u64, max_file_bytes: u64, max_files: u64) -> Limits {
        Limits {
            max_change_bytes,
            max_file_bytes,
            max_files,
            allow_binary: false,
        }
    }

    fn check(json: &str, l: &Limits) -> Result<(), ChangeError> {
        check_change(&parse_edits_json("e.json", json.as_bytes()).unwrap(), l)
    }

    #[test]
    fn a_request_is_read_up_to_its_bound_and_no_further() {
        let l = limits(16 * 1024, 1024, 10);
        assert_eq!(l.max_request_bytes(), 64 * 1024);
        let exact = vec![b'x'; 64 * 1024];
        assert_eq!(read_request(&exact[..], "p.diff", &l).unwrap().len(), 64 * 1024);
        // An endless reader: refused after the bound and one byte more.
        let err = read_request(std::io::repeat(b'x'), "<stdin>", &l).unwrap_err();
        assert_eq!(err.code(), "too_large");
        assert_eq!(
            err.to_string(),
            "<stdin>: more than 65536 bytes, the most Graft reads of one change (4 times `[limits] max_change_bytes`); split it into smaller changes, or raise `[limits] max_change_bytes` in graft.toml"
        );
        assert!(check_request_bytes("body", 64 * 1024 + 1, &l).is_err());
    }

    #[test]
    fn files_are_counted_by_the_paths_the_change_names() {
        let l = limits(1 << 20, 1 << 20, 2);
        let three = r#"[{"op":"create","path":"a","content":"1"},{"op":"delete","path":"b"},{"op":"modify","path":"a","search":"1","replace":"2"},{"op":"rename","from":"c","to":"d"}]"#;
        let err = check(three, &l).unwrap_err();
        assert_eq!(err.code(), "too_many_files");
        assert!(
            err.to_string()
                .starts_with("the change names 4 files, over the limit of 2"),
            "{err}"
        );
        assert!(check(three, &limits(1 << 20, 1 << 20, 4)).is_ok());
    }

    #[test]
    fn what_a_change_surely_writes_is_held_to_the_byte_limits() {
        let l = limits(3000, 1000, 10);
        // A created file's size is exact.
        let big = format!(
            r#"[{{"op":"create","path":"big.txt","content":"{}"}}]"#,
            "x".repeat(1001)
        );
        let err = check(&big, &l).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`big.txt` would be 1001 bytes, over the limit of 1000 bytes per file; split the file, or raise `[limits] max_file_bytes` in graft.toml"
        );
        // A replacement is only what it surely writes.
        let sr = format!(
            r#"[{{"op":"modify","path":"a.py","search":"x","replace":"{}"}}]"#,
            "y".repeat(1001)
        );
        assert!(
            check(&sr, &l)
                .unwrap_err()
                .to_string()
                .contains("would be at least 1001 bytes")
        );
        // Four files of 900: 3600 bytes in all.
        let parts: Vec<String> = (0..4)
            .map(|i| {
                format!(
                    r#"{{"op":"create","path":"f{i}","content":"{}"}}"#,
                    "z".repeat(900)
                )
            })
            .collect();
        let err = check(&format!("[{}]", parts.join(",")), &l).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the change writes 3600 bytes in all, over the limit of 3000"),
            "{err}"
        );
        // A file named twice may end anywhere: not counted.
        let twice = format!(
            r#"[{{"op":"create","path":"t","content":"{}"}},{{"op":"delete","path":"t"}}]"#,
            "x".repeat(5000)
        );
        assert!(check(&twice, &l).is_ok());
    }

    #[test]
    fn every_hunk_of_a_file_counts_and_removed_lines_do_not() {
        let l = limits(1 << 20, 25, 10);
        let patch = "--- a/f.txt\n+++ b/f.txt\n@@ -1,2 +1,2 @@\n keep\n-old line that is long enough\n+new\n@@ -10,1 +10,2 @@\n ctx\n+added line\n";
        // New sides: "keep\n" "new\n" and "ctx\n" "added line\n": 24 bytes.
        let change = parse_unified_diff("p.diff", patch.as_bytes()).unwrap();
        assert!(check_change(&change, &l).is_ok());
        let err = check_change(&change, &limits(1 << 20, 23, 10)).unwrap_err();
        assert!(
            err.to_string().starts_with("`f.txt` would be at least 24 bytes"),
            "{err}"
        );
    }
}
