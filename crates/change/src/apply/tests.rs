//! Resolving and writing against real temp directories.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use tempfile::TempDir;

use super::write::BEFORE_STEP;
use super::*;
use crate::{Limits, parse_edits_json, parse_unified_diff};

fn tree(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let full = dir.path().join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, content).unwrap();
    }
    dir
}

fn edits(json: &str) -> Change {
    parse_edits_json("edits.json", json.as_bytes()).unwrap()
}

fn patch(text: &str) -> Change {
    parse_unified_diff("test.patch", text.as_bytes()).unwrap()
}

fn p(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

fn resolve_default(change: &Change, root: &Path) -> Result<Resolved, ChangeError> {
    resolve(change, root, &Policy::default())
}

fn read(root: &Path, path: &str) -> String {
    fs::read_to_string(root.join(path)).unwrap()
}

fn mode(root: &Path, path: &str) -> u32 {
    fs::metadata(root.join(path)).unwrap().permissions().mode() & 0o777
}

/// Every file under `root`, relative, sorted; what a rollback must restore.
fn snapshot(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let ft = entry.file_type().unwrap();
            if ft.is_dir() {
                out.push((format!("{rel}/"), Vec::new()));
                stack.push(path);
            } else if ft.is_symlink() {
                out.push((format!("{rel}@"), Vec::new()));
            } else {
                out.push((rel, fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

// ---- resolve: what each edit does ----

#[test]
fn each_kind_of_edit_resolves_sorted_by_path() {
    let dir = tree(&[
        ("b.txt", "old b\n"),
        ("c.txt", "gone\n"),
        ("d.txt", "moved\n"),
        ("e.txt", "x\n"),
    ]);
    let change = edits(
        r#"[
        {"op": "rename", "from": "d.txt", "to": "sub/d.txt"},
        {"op": "create", "path": "a.txt", "content": "new a\n"},
        {"op": "modify", "path": "b.txt", "search": "old", "replace": "new"},
        {"op": "delete", "path": "c.txt"},
        {"op": "replace", "path": "e.txt", "content": "y\n"}
    ]"#,
    );
    let resolved = resolve_default(&change, dir.path()).unwrap();
    let summary: Vec<(String, ChangeKind, Option<String>)> = resolved
        .files
        .iter()
        .map(|f| (f.path.to_string(), f.kind, f.from.as_ref().map(|r| r.to_string())))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("a.txt".into(), ChangeKind::Create, None),
            ("b.txt".into(), ChangeKind::Modify, None),
            ("c.txt".into(), ChangeKind::Delete, None),
            ("e.txt".into(), ChangeKind::Modify, None),
            ("sub/d.txt".into(), ChangeKind::Rename, Some("d.txt".into())),
        ]
    );
    let b = &resolved.files[1];
    assert_eq!(b.before.as_deref(), Some(&b"old b\n"[..]));
    assert_eq!(b.after.as_deref(), Some(&b"new b\n"[..]));
    let c = &resolved.files[2];
    assert_eq!(
        (c.before.as_deref(), c.after.as_deref()),
        (Some(&b"gone\n"[..]), None)
    );
    let d = &resolved.files[4];
    assert_eq!(d.before, d.after);
    // Nothing was written.
    assert_eq!(read(dir.path(), "b.txt"), "old b\n");
    assert!(!dir.path().join("a.txt").exists());
    assert!(!dir.path().join("sub").exists());
}

#[test]
fn create_then_modify_in_one_change() {
    let dir = tree(&[]);
    let change = edits(
        r#"[
        {"op": "create", "path": "app/main.py", "content": "def main():\n    pass\n"},
        {"op": "modify", "path": "app/main.py", "search": "pass", "replace": "return 0"}
    ]"#,
    );
    let resolved = resolve_default(&change, dir.path()).unwrap();
    assert_eq!(resolved.files.len(), 1);
    assert_eq!(resolved.files[0].kind, ChangeKind::Create);
    assert_eq!(
        resolved.files[0].after.as_deref(),
        Some(&b"def main():\n    return 0\n"[..])
    );
}

#[test]
fn edits_that_net_out_are_dropped() {
    let dir = tree(&[("a.txt", "a\n")]);
    let change = edits(
        r#"[
        {"op": "create", "path": "tmp.txt", "content": "x"},
        {"op": "delete", "path": "tmp.txt"},
        {"op": "modify", "path": "a.txt", "search": "a", "replace": "a"},
        {"op": "rename", "from": "a.txt", "to": "b.txt"},
        {"op": "rename", "from": "b.txt", "to": "a.txt"}
    ]"#,
    );
    let resolved = resolve_default(&change, dir.path()).unwrap();
    assert!(resolved.is_empty(), "{resolved:?}");
}

#[test]
fn rename_chain_is_one_rename() {
    let dir = tree(&[("a.txt", "a\n")]);
    let change = edits(
        r#"[
        {"op": "rename", "from": "a.txt", "to": "b.txt"},
        {"op": "modify", "path": "b.txt", "search": "a", "replace": "b"},
        {"op": "rename", "from": "b.txt", "to": "c/c.txt"}
    ]"#,
    );
    let resolved = resolve_default(&change, dir.path()).unwrap();
    assert_eq!(resolved.files.len(), 1, "{resolved:?}");
    let f = &resolved.files[0];
    assert_eq!((f.path.as_str(), f.kind), ("c/c.txt", ChangeKind::Rename));
    assert_eq!(f.from, Some(p("a.txt")));
    assert_eq!(f.before.as_deref(), Some(&b"a\n"[..]));
    assert_eq!(f.after.as_deref(), Some(&b"b\n"[..]));
}

#[test]
fn rename_with_hunks_from_a_patch() {
    let dir = tree(&[("src/old.rs", "fn a() {}\nfn b() {}\n")]);
    let change = patch(
        "diff --git a/src/old.rs b/src/new.rs\nsimilarity index 60%\nrename from src/old.rs\nrename to src/new.rs\n--- a/src/old.rs\n+++ b/src/new.rs\n@@ -1,2 +1,2 @@\n fn a() {}\n-fn b() {}\n+fn c() {}\n",
    );
    let resolved = resolve_default(&change, dir.path()).unwrap();
    assert_eq!(resolved.files.len(), 1);
    let f = &resolved.files[0];
    assert_eq!(
        (f.path.as_str(), f.kind, f.from.clone()),
        ("src/new.rs", ChangeKind::Rename, Some(p("src/old.rs")))
    );
    assert_eq!(f.after.as_deref(), Some(&b"fn a() {}\nfn c() {}\n"[..]));
    assert_eq!(f.lines_added_removed(), (1, 1));
}

#[test]
fn existence_rules() {
    let dir = tree(&[("a.txt", "a\n"), ("b.txt", "b\n")]);
    let cases = [
        (
            r#"{"op": "create", "path": "a.txt", "content": ""}"#,
            "file_exists",
            "`a.txt` already exists",
        ),
        (
            r#"{"op": "modify", "path": "x.txt", "search": "a", "replace": "b"}"#,
            "file_missing",
            "`x.txt` does not exist",
        ),
        (
            r#"{"op": "replace", "path": "x.txt", "content": ""}"#,
            "file_missing",
            "`x.txt` does not exist",
        ),
        (
            r#"{"op": "delete", "path": "x.txt"}"#,
            "file_missing",
            "`x.txt` does not exist",
        ),
        (
            r#"{"op": "rename", "from": "x.txt", "to": "y.txt"}"#,
            "file_missing",
            "`x.txt` does not exist",
        ),
        (
            r#"{"op": "rename", "from": "a.txt", "to": "b.txt"}"#,
            "file_exists",
            "`b.txt` already exists",
        ),
    ];
    for (edit, code, fragment) in cases {
        let err = resolve_default(&edits(&format!("[{edit}]")), dir.path()).unwrap_err();
        assert_eq!(err.code(), code, "{edit}");
        assert!(err.to_string().contains(fragment), "{edit}: {err}");
    }
    // Deleting twice in one change: the second sees the first.
    let change = edits(r#"[{"op": "delete", "path": "a.txt"}, {"op": "delete", "path": "a.txt"}]"#);
    assert_eq!(
        resolve_default(&change, dir.path()).unwrap_err().code(),
        "file_missing"
    );
}

#[test]
fn empty_change_is_refused() {
    let dir = tree(&[]);
    let err = resolve_default(&Change::default(), dir.path()).unwrap_err();
    assert_eq!(err.code(), "empty_change");
}

// ---- resolve: the tree's shape and symlinks ----

#[test]
fn directory_symlink_pointing_outside_is_refused() {
    let outside = tree(&[("secret.txt", "s\n")]);
    let dir = tree(&[("a.txt", "a\n")]);
    symlink(outside.path(), dir.path().join("vendor")).unwrap();
    for edit in [
        r#"{"op": "create", "path": "vendor/new.txt", "content": "x"}"#,
        r#"{"op": "modify", "path": "vendor/secret.txt", "search": "s", "replace": "t"}"#,
        r#"{"op": "rename", "from": "a.txt", "to": "vendor/a.txt"}"#,
    ] {
        let err = resolve_default(&edits(&format!("[{edit}]")), dir.path()).unwrap_err();
        assert_eq!(err.code(), "symlink_escape", "{edit}");
        let msg = err.to_string();
        assert!(msg.contains("goes through the symlink `vendor`"), "{msg}");
        assert!(msg.contains(&outside.path().display().to_string()), "{msg}");
    }
    assert_eq!(read(outside.path(), "secret.txt"), "s\n");
    assert!(!outside.path().join("new.txt").exists());
}

#[test]
fn file_symlinks_are_never_written_through_or_replaced() {
    let dir = tree(&[("real.txt", "r\n")]);
    symlink("real.txt", dir.path().join("link.txt")).unwrap();
    symlink("/nonexistent/target", dir.path().join("dangling")).unwrap();
    for (edit, path) in [
        (
            r#"{"op": "modify", "path": "link.txt", "search": "r", "replace": "x"}"#,
            "link.txt",
        ),
        (
            r#"{"op": "replace", "path": "link.txt", "content": "x"}"#,
            "link.txt",
        ),
        (r#"{"op": "delete", "path": "link.txt"}"#, "link.txt"),
        (
            r#"{"op": "create", "path": "dangling", "content": "x"}"#,
            "dangling",
        ),
        (
            r#"{"op": "rename", "from": "link.txt", "to": "other.txt"}"#,
            "link.txt",
        ),
    ] {
        let err = resolve_default(&edits(&format!("[{edit}]")), dir.path()).unwrap_err();
        assert_eq!(err.code(), "symlink_escape", "{edit}");
        assert!(
            err.to_string()
                .starts_with(&format!("`{path}` goes through the symlink `{path}`")),
            "{err}"
        );
    }
}

#[test]
fn a_file_where_a_directory_must_be() {
    let dir = tree(&[("a", "file\n"), ("d/x.txt", "x\n")]);
    let err = resolve_default(
        &edits(r#"[{"op": "create", "path": "a/b.txt", "content": ""}]"#),
        dir.path(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "not_a_directory");
    assert_eq!(
        err.to_string(),
        "`a/b.txt` cannot exist because `a` is a file, not a directory"
    );
    let err = resolve_default(
        &edits(r#"[{"op": "replace", "path": "d", "content": ""}]"#),
        dir.path(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "is_a_directory");
    let err = resolve_default(
        &edits(r#"[{"op": "create", "path": "d", "content": ""}]"#),
        dir.path(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "is_a_directory");
}

#[test]
fn shape_conflicts_inside_one_change() {
    let dir = tree(&[]);
    let change = edits(
        r#"[{"op": "create", "path": "n", "content": ""}, {"op": "create", "path": "n/x", "content": ""}]"#,
    );
    assert_eq!(
        resolve_default(&change, dir.path()).unwrap_err().code(),
        "not_a_directory"
    );
    let change = edits(
        r#"[{"op": "create", "path": "m/x", "content": ""}, {"op": "create", "path": "m", "content": ""}]"#,
    );
    assert_eq!(
        resolve_default(&change, dir.path()).unwrap_err().code(),
        "is_a_directory"
    );
}

// ---- resolve: policy ----

#[test]
fn protected_paths_need_approval() {
    let dir = tree(&[("graft.toml", "x = 1\n")]);
    let change = edits(r#"[{"op": "replace", "path": "graft.toml", "content": "x = 2\n"}]"#);
    let err = resolve_default(&change, dir.path()).unwrap_err();
    assert_eq!(err.code(), "path_protected");
    assert!(err.to_string().contains("--approve-protected"), "{err}");
    let approved = Policy::new(&[], Limits::default(), true).unwrap();
    assert_eq!(resolve(&change, dir.path(), &approved).unwrap().files.len(), 1);
    // Renaming a secret out of its protected name is still touching it.
    let change = edits(r#"[{"op": "rename", "from": "graft.toml", "to": "x.txt"}]"#);
    assert_eq!(
        resolve_default(&change, dir.path()).unwrap_err().code(),
        "path_protected"
    );
}

// ---- resolve: modifications ----

#[test]
fn search_errors_name_file_and_lines() {
    let dir = tree(&[("src/a.py", "def bar():\n    x = 1\n    x = 1\n")]);
    let change = edits(r#"[{"op": "modify", "path": "src/a.py", "search": "def foo(", "replace": ""}]"#);
    let err = resolve_default(&change, dir.path()).unwrap_err();
    assert_eq!(err.code(), "search_not_found");
    assert!(
        err.to_string()
            .starts_with("search text not found in `src/a.py`: `def foo(`"),
        "{err}"
    );
    let change = edits(r#"[{"op": "modify", "path": "src/a.py", "search": "x = 1", "replace": "x = 2"}]"#);
    let err = resolve_default(&change, dir.path()).unwrap_err();
    assert_eq!(err.code(), "search_ambiguous");
    assert!(matches!(&err, ChangeError::SearchAmbiguous { count: 2, lines, .. } if lines == &vec![2, 3]));
}

#[test]
fn patch_applies_to_a_shifted_file() {
    // The patch was made when `x = 1` was on line 2; three lines were
    // added above it since.
    let dir = tree(&[("a.py", "# one\n# two\n# three\nimport os\nx = 1\nprint(x)\n")]);
    let change = patch("--- a/a.py\n+++ b/a.py\n@@ -1,3 +1,3 @@\n import os\n-x = 1\n+x = 2\n print(x)\n");
    let resolved = resolve_default(&change, dir.path()).unwrap();
    assert_eq!(
        resolved.files[0].after.as_deref(),
        Some(&b"# one\n# two\n# three\nimport os\nx = 2\nprint(x)\n"[..])
    );
}

#[test]
fn failing_hunk_names_file_hunk_and_line() {
    let dir = tree(&[("a.py", "import os\nx = 5\nprint(x)\n")]);
    let change = patch("--- a/a.py\n+++ b/a.py\n@@ -1,3 +1,3 @@\n import os\n-x = 1\n+x = 2\n print(x)\n");
    let err = resolve_default(&change, dir.path()).unwrap_err();
    assert_eq!(err.code(), "hunk_mismatch");
    let msg = err.to_string();
    assert!(
        msg.starts_with("hunk `@@ -1,3 +1,3 @@` does not apply to `a.py`: at line 2 the patch expects `x = 1` but the file has `x = 5`"),
        "{msg}"
    );
}

#[test]
fn crlf_file_and_missing_final_newline_through_a_patch() {
    let dir = tree(&[("w.txt", "one\r\ntwo")]);
    let change = patch(
        "--- a/w.txt\n+++ b/w.txt\n@@ -1,2 +1,2 @@\n one\r\n-two\n\\ No newline at end of file\n+TWO\r\n",
    );
    let resolved = resolve_default(&change, dir.path()).unwrap();
    assert_eq!(resolved.files[0].after.as_deref(), Some(&b"one\r\nTWO\r\n"[..]));
}

#[test]
fn delete_checks_what_the_patch_expected() {
    let dir = tree(&[("old.txt", "one\nTWO\n")]);
    let change = patch("--- a/old.txt\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-one\n-two\n");
    let err = resolve_default(&change, dir.path()).unwrap_err();
    assert_eq!(err.code(), "delete_mismatch");
    assert!(
        err.to_string()
            .starts_with("`old.txt` differs from what the patch deletes"),
        "{err}"
    );
    fs::write(dir.path().join("old.txt"), "one\ntwo\n").unwrap();
    let resolved = resolve_default(&change, dir.path()).unwrap();
    assert_eq!(resolved.files[0].kind, ChangeKind::Delete);
}

// ---- resolve: limits ----

fn with_limits(max_change_bytes: u64, max_file_bytes: u64, allow_binary: bool) -> Policy {
    let limits = Limits {
        max_change_bytes,
        max_file_bytes,
        allow_binary,
        ..Limits::default()
    };
    Policy::new(&[], limits, false).unwrap()
}

#[test]
fn file_count_limit_counts_every_file_touched() {
    let dir = tree(&[("old.txt", "old\n"), ("moved.txt", "m\n")]);
    let change = edits(
        r#"[{"op": "create", "path": "a", "content": "1"}, {"op": "delete", "path": "old.txt"}, {"op": "rename", "from": "moved.txt", "to": "here.txt"}]"#,
    );
    let two = Limits {
        max_files: 2,
        ..Limits::default()
    };
    let err = resolve(&change, dir.path(), &Policy::new(&[], two, false).unwrap()).unwrap_err();
    assert_eq!(err.code(), "too_many_files");
    assert_eq!(
        err.to_string(),
        "the change names 3 files, over the limit of 2 files per change; split it into smaller changes, or raise `[limits] max_files` in graft.toml"
    );
    let three = Limits { max_files: 3, ..two };
    assert!(resolve(&change, dir.path(), &Policy::new(&[], three, false).unwrap()).is_ok());
}

#[test]
fn file_size_limit() {
    let dir = tree(&[]);
    let change = edits(r#"[{"op": "create", "path": "big.txt", "content": "0123456789a"}]"#);
    let err = resolve(&change, dir.path(), &with_limits(100, 10, false)).unwrap_err();
    assert_eq!(err.code(), "too_large");
    assert!(
        err.to_string()
            .starts_with("`big.txt` would be 11 bytes, over the limit of 10 bytes per file"),
        "{err}"
    );
    assert!(resolve(&change, dir.path(), &with_limits(100, 11, false)).is_ok());
}

#[test]
fn change_size_limit() {
    let dir = tree(&[]);
    let change = edits(
        r#"[{"op": "create", "path": "a", "content": "123456"}, {"op": "create", "path": "b", "content": "123456"}]"#,
    );
    let err = resolve(&change, dir.path(), &with_limits(11, 10, false)).unwrap_err();
    assert_eq!(err.code(), "too_large");
    assert!(
        err.to_string()
            .starts_with("the change writes 12 bytes in all, over the limit of 11 bytes"),
        "{err}"
    );
    assert!(resolve(&change, dir.path(), &with_limits(12, 10, false)).is_ok());
}

#[test]
fn binary_content_refused_unless_allowed() {
    let dir = tree(&[]);
    let nul = Change {
        edits: vec![Edit::Create {
            path: p("blob.bin"),
            content: b"a\0b".to_vec(),
            executable: false,
        }],
    };
    let err = resolve_default(&nul, dir.path()).unwrap_err();
    assert_eq!(err.code(), "binary");
    assert!(
        err.to_string()
            .starts_with("`blob.bin` would hold binary content"),
        "{err}"
    );
    let latin1 = Change {
        edits: vec![Edit::Create {
            path: p("latin1.txt"),
            content: b"caf\xe9\n".to_vec(),
            executable: false,
        }],
    };
    assert_eq!(resolve_default(&latin1, dir.path()).unwrap_err().code(), "binary");
    let allow = with_limits(1 << 20, 1 << 19, true);
    assert!(resolve(&nul, dir.path(), &allow).is_ok());
    assert!(resolve(&latin1, dir.path(), &allow).is_ok());
}

#[test]
fn moving_an_existing_binary_file_is_not_new_content() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("logo.png"), b"\x89PNG\0\0").unwrap();
    let change = edits(r#"[{"op": "rename", "from": "logo.png", "to": "img/logo.png"}]"#);
    let resolved = resolve_default(&change, dir.path()).unwrap();
    assert_eq!(resolved.files[0].kind, ChangeKind::Rename);
}

// ---- write_to ----

#[test]
fn write_to_applies_everything() {
    let dir = tree(&[("b.txt", "old b\n"), ("c.txt", "gone\n"), ("d.txt", "moved\n")]);
    fs::set_permissions(dir.path().join("b.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(dir.path().join("d.txt"), fs::Permissions::from_mode(0o755)).unwrap();
    let change = edits(
        r##"[
        {"op": "create", "path": "new/deep/run.sh", "content": "#!/bin/sh\n", "executable": true},
        {"op": "create", "path": "a.txt", "content": "a\n"},
        {"op": "modify", "path": "b.txt", "search": "old", "replace": "new"},
        {"op": "delete", "path": "c.txt"},
        {"op": "rename", "from": "d.txt", "to": "e/d.txt"}
    ]"##,
    );
    let resolved = resolve_default(&change, dir.path()).unwrap();
    resolved.write_to(dir.path()).unwrap();
    let root = dir.path();
    assert_eq!(read(root, "new/deep/run.sh"), "#!/bin/sh\n");
    assert_eq!(mode(root, "new/deep/run.sh") & 0o100, 0o100);
    assert_eq!(mode(root, "a.txt") & 0o111, 0);
    assert_eq!(read(root, "b.txt"), "new b\n");
    assert_eq!(mode(root, "b.txt"), 0o600, "a rewrite keeps permissions");
    assert!(!root.join("c.txt").exists());
    assert!(!root.join("d.txt").exists());
    assert_eq!(read(root, "e/d.txt"), "moved\n");
    assert_eq!(mode(root, "e/d.txt"), 0o755, "a rename keeps permissions");
    let leftovers: Vec<_> = snapshot(root)
        .into_iter()
        .filter(|(p, _)| p.contains(".graft-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn write_to_refuses_a_tree_that_changed_since_resolve() {
    let dir = tree(&[("a.txt", "a\n"), ("b.txt", "b\n")]);
    let change = edits(
        r#"[{"op": "replace", "path": "a.txt", "content": "A\n"}, {"op": "replace", "path": "b.txt", "content": "B\n"}]"#,
    );
    let resolved = resolve_default(&change, dir.path()).unwrap();
    fs::write(dir.path().join("b.txt"), "edited meanwhile\n").unwrap();
    let before = snapshot(dir.path());
    let err = resolved.write_to(dir.path()).unwrap_err();
    assert_eq!(err.code(), "stale");
    assert!(
        err.to_string()
            .starts_with("`b.txt` changed on disk after the change was checked"),
        "{err}"
    );
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn write_to_refuses_a_parent_that_became_a_file() {
    let dir = tree(&[("a.txt", "a\n")]);
    let change = edits(
        r#"[{"op": "replace", "path": "a.txt", "content": "A\n"}, {"op": "create", "path": "pkg/mod.py", "content": "x\n"}]"#,
    );
    let resolved = resolve_default(&change, dir.path()).unwrap();
    fs::write(dir.path().join("pkg"), "now a file\n").unwrap();
    let before = snapshot(dir.path());
    let err = resolved.write_to(dir.path()).unwrap_err();
    assert_eq!(err.code(), "not_a_directory");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn write_to_refuses_a_symlink_that_appeared_since_resolve() {
    let outside = tree(&[]);
    let dir = tree(&[]);
    let change = edits(r#"[{"op": "create", "path": "out/x.txt", "content": "x\n"}]"#);
    let resolved = resolve_default(&change, dir.path()).unwrap();
    symlink(outside.path(), dir.path().join("out")).unwrap();
    let err = resolved.write_to(dir.path()).unwrap_err();
    assert_eq!(err.code(), "symlink_escape");
    assert!(!outside.path().join("x.txt").exists());
}

/// Runs `f` with a hook before each move-into-place or removal step.
fn with_hook<T>(hook: impl FnMut(usize, &Path) + 'static, f: impl FnOnce() -> T) -> T {
    BEFORE_STEP.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
    let out = f();
    BEFORE_STEP.with(|h| *h.borrow_mut() = None);
    out
}

#[test]
fn write_to_rolls_back_when_a_later_move_fails() {
    let dir = tree(&[
        ("a.txt", "a\n"),
        ("b.txt", "b\n"),
        ("gone.txt", "g\n"),
        ("moved.txt", "m\n"),
    ]);
    let change = edits(
        r#"[
        {"op": "replace", "path": "a.txt", "content": "A\n"},
        {"op": "create", "path": "n1/n2/new.txt", "content": "new\n"},
        {"op": "replace", "path": "b.txt", "content": "B\n"},
        {"op": "rename", "from": "moved.txt", "to": "r/moved.txt"},
        {"op": "create", "path": "z.txt", "content": "z\n"},
        {"op": "delete", "path": "gone.txt"}
    ]"#,
    );
    let resolved = resolve_default(&change, dir.path()).unwrap();
    let before = snapshot(dir.path());
    // Writes go in path order: a.txt, b.txt, n1/n2/new.txt, r/moved.txt,
    // z.txt. Before the last, something makes `z.txt` a non-empty
    // directory, so the real rename onto it fails.
    let root = dir.path().to_path_buf();
    let err = with_hook(
        move |step, dest| {
            if step == 4 {
                assert!(dest.ends_with("z.txt"));
                fs::create_dir(root.join("z.txt")).unwrap();
                fs::write(root.join("z.txt/keep"), "k").unwrap();
            }
        },
        || resolved.write_to(dir.path()),
    )
    .unwrap_err();
    assert_eq!(err.code(), "io");
    assert!(err.to_string().contains("cannot move into place"), "{err}");
    // Everything is as it was, apart from what the hook itself made.
    fs::remove_dir_all(dir.path().join("z.txt")).unwrap();
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn write_to_rolls_back_when_a_removal_fails() {
    let dir = tree(&[("a.txt", "a\n"), ("gone.txt", "g\n")]);
    fs::set_permissions(dir.path().join("a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    let change = edits(
        r#"[
        {"op": "replace", "path": "a.txt", "content": "A\n"},
        {"op": "create", "path": "new/x.txt", "content": "x\n"},
        {"op": "delete", "path": "gone.txt"}
    ]"#,
    );
    let resolved = resolve_default(&change, dir.path()).unwrap();
    let root = dir.path().to_path_buf();
    let err = with_hook(
        move |_, dest| {
            if dest.ends_with("gone.txt") {
                fs::remove_file(root.join("gone.txt")).unwrap();
                fs::create_dir(root.join("gone.txt")).unwrap();
            }
        },
        || resolved.write_to(dir.path()),
    )
    .unwrap_err();
    assert_eq!(err.code(), "io");
    assert!(err.to_string().contains("cannot remove"), "{err}");
    assert_eq!(read(dir.path(), "a.txt"), "a\n");
    assert_eq!(mode(dir.path(), "a.txt"), 0o640, "restored with its permissions");
    assert!(
        !dir.path().join("new").exists(),
        "created directories are removed"
    );
}

#[test]
fn line_counts() {
    let dir = tree(&[("a.txt", "1\n2\n3\n"), ("d.txt", "x\ny\n")]);
    let change = edits(
        r#"[
        {"op": "modify", "path": "a.txt", "search": "2\n", "replace": "two\nzwei\n"},
        {"op": "create", "path": "n.txt", "content": "a\nb\nc"},
        {"op": "delete", "path": "d.txt"}
    ]"#,
    );
    let resolved = resolve_default(&change, dir.path()).unwrap();
    let counts: Vec<(usize, usize)> = resolved.files.iter().map(|f| f.lines_added_removed()).collect();
    assert_eq!(counts, vec![(2, 1), (0, 2), (3, 0)]);
    assert_eq!(resolved.lines_added_removed(), (5, 3));
}

#[test]
fn change_kind_names() {
    assert_eq!(ChangeKind::Rename.to_string(), "rename");
    assert_eq!(ChangeKind::Create.to_string(), "create");
    assert_eq!(serde_json::to_string(&ChangeKind::Modify).unwrap(), "\"modify\"");
    assert_eq!(serde_json::to_string(&ChangeKind::Delete).unwrap(), "\"delete\"");
}

/// Design invariant 7: damaged input gets an error, never a panic. Mangle
/// a patch line by line in many deterministic ways and push each result
/// through parsing and resolving.
#[test]
fn mangled_patches_never_panic() {
    let dir = tree(&[
        ("src/a.py", "import os\nx = 1\nprint(x)\n"),
        ("b.txt", "one\ntwo\n"),
    ]);
    let base = "diff --git a/src/a.py b/src/a.py\nindex 1..2 100644\n--- a/src/a.py\n+++ b/src/a.py\n@@ -1,3 +1,4 @@\n import os\n-x = 1\n+x = 2\n+y = 3\n print(x)\n\\ No newline at end of file\ndiff --git a/b.txt b/c.txt\nrename from b.txt\nrename to c.txt\n--- a/b.txt\n+++ b/c.txt\n@@ -2 +2 @@\n-two\n+2\n";
    let lines: Vec<&str> = base.split_inclusive('\n').collect();
    let replacements = [
        "",
        "\n",
        "@@ -99999999999999999999 +1 @@\n",
        "@@ -9223372036854775807,1 +1 @@\n",
        "é\n",
        "-\n",
        "+\n",
        " \n",
        "\\\n",
        "--- \n",
        "+++ \n",
        "diff --git \n",
        "rename from \"\n",
        "@@ -0,0 +0,0 @@\n",
        "\r\n",
    ];
    let mut runs = 0;
    for i in 0..lines.len() {
        for r in replacements {
            for cut in [None, Some(i + 1)] {
                let mut mangled: Vec<&str> = lines.clone();
                mangled[i] = r;
                if let Some(cut) = cut {
                    mangled.truncate(cut);
                }
                let text = mangled.concat();
                if let Ok(change) = parse_unified_diff("m.patch", text.as_bytes()) {
                    let _ = resolve_default(&change, dir.path());
                }
                runs += 1;
            }
        }
    }
    assert_eq!(runs, lines.len() * replacements.len() * 2);
    // Cut short at every character.
    for (cut, _) in base.char_indices() {
        if let Ok(change) = parse_unified_diff("m.patch", &base.as_bytes()[..cut]) {
            let _ = resolve_default(&change, dir.path());
        }
    }
    // A hunk claiming a huge line number still applies where it matches.
    let change =
        patch("--- a/b.txt\n+++ b/b.txt\n@@ -9223372036854775807,1 +9223372036854775807,1 @@\n-two\n+2\n");
    let resolved = resolve_default(&change, dir.path()).unwrap();
    assert_eq!(resolved.files[0].after.as_deref(), Some(&b"one\n2\n"[..]));
}
