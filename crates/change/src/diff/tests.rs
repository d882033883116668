//! Parsing patches: every header form, and every way a patch can be damaged.

use super::*;

fn parse(text: &str) -> Result<Change, ChangeError> {
    parse_unified_diff("test.patch", text.as_bytes())
}

fn p(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

fn only(change: Change) -> Edit {
    assert_eq!(change.edits.len(), 1, "{change:?}");
    change.edits.into_iter().next().unwrap()
}

fn hunks(edit: &Edit) -> Vec<&Hunk> {
    let ops = match edit {
        Edit::Modify { ops, .. } | Edit::Rename { ops, .. } => ops,
        other => panic!("not a modify: {other:?}"),
    };
    ops.iter()
        .map(|op| match op {
            ModifyOp::Hunk(h) => h,
            other => panic!("not a hunk: {other:?}"),
        })
        .collect()
}

const GIT_MODIFY: &str = "\
diff --git a/src/a.py b/src/a.py
index 3b18e51..a8c4b2e 100644
--- a/src/a.py
+++ b/src/a.py
@@ -1,3 +1,4 @@ def main():
 import os
-x = 1
+x = 2
+y = 3
 print(x)
";

#[test]
fn git_modify() {
    let edit = only(parse(GIT_MODIFY).unwrap());
    let Edit::Modify { path, .. } = &edit else {
        panic!("{edit:?}")
    };
    assert_eq!(path, &p("src/a.py"));
    let h = hunks(&edit);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].header, "@@ -1,3 +1,4 @@");
    assert_eq!(
        (h[0].old_start, h[0].old_len, h[0].new_start, h[0].new_len),
        (1, 3, 1, 4)
    );
    assert_eq!(
        h[0].lines,
        vec![
            HunkLine::Context("import os\n".into()),
            HunkLine::Remove("x = 1\n".into()),
            HunkLine::Add("x = 2\n".into()),
            HunkLine::Add("y = 3\n".into()),
            HunkLine::Context("print(x)\n".into()),
        ]
    );
}

#[test]
fn hunk_counts_default_to_one() {
    let edit = only(parse("--- a/x\n+++ b/x\n@@ -3 +3 @@\n-a\n+b\n").unwrap());
    let h = hunks(&edit);
    assert_eq!(
        (h[0].old_start, h[0].old_len, h[0].new_start, h[0].new_len),
        (3, 1, 3, 1)
    );
}

#[test]
fn git_new_file_with_executable_mode() {
    let text = "\
diff --git a/bin/run.sh b/bin/run.sh
new file mode 100755
index 0000000..1111111
--- /dev/null
+++ b/bin/run.sh
@@ -0,0 +1,2 @@
+#!/bin/sh
+echo hi
";
    assert_eq!(
        only(parse(text).unwrap()),
        Edit::Create {
            path: p("bin/run.sh"),
            content: b"#!/bin/sh\necho hi\n".to_vec(),
            executable: true,
        }
    );
}

#[test]
fn git_new_empty_file_has_no_hunks() {
    let text = "\
diff --git a/empty.txt b/empty.txt
new file mode 100644
index 0000000..e69de29
";
    assert_eq!(
        only(parse(text).unwrap()),
        Edit::Create {
            path: p("empty.txt"),
            content: Vec::new(),
            executable: false,
        }
    );
}

#[test]
fn git_deleted_file_keeps_removed_text() {
    let text = "\
diff --git a/old.txt b/old.txt
deleted file mode 100644
index 1111111..0000000
--- a/old.txt
+++ /dev/null
@@ -1,2 +0,0 @@
-one
-two
";
    assert_eq!(
        only(parse(text).unwrap()),
        Edit::Delete {
            path: p("old.txt"),
            expect: Some(b"one\ntwo\n".to_vec()),
        }
    );
}

#[test]
fn git_rename_with_hunks() {
    let text = "\
diff --git a/src/old name.rs b/src/new.rs
similarity index 90%
rename from src/old name.rs
rename to src/new.rs
index 1111111..2222222 100644
--- a/src/old name.rs
+++ b/src/new.rs
@@ -1,2 +1,2 @@
 fn a() {}
-fn b() {}
+fn c() {}
";
    let edit = only(parse(text).unwrap());
    let Edit::Rename { from, to, ops } = &edit else {
        panic!("{edit:?}")
    };
    assert_eq!(from, &p("src/old name.rs"));
    assert_eq!(to, &p("src/new.rs"));
    assert_eq!(ops.len(), 1);
}

#[test]
fn git_pure_rename() {
    let text = "\
diff --git a/a.txt b/b.txt
similarity index 100%
rename from a.txt
rename to b.txt
";
    assert_eq!(
        only(parse(text).unwrap()),
        Edit::Rename {
            from: p("a.txt"),
            to: p("b.txt"),
            ops: vec![],
        }
    );
}

#[test]
fn copy_is_refused() {
    let text = "\
diff --git a/a.txt b/b.txt
similarity index 100%
copy from a.txt
copy to b.txt
";
    let err = parse(text).unwrap_err();
    assert_eq!(err.code(), "unsupported_patch");
    let msg = err.to_string();
    assert!(msg.starts_with("test.patch:3: copying a file"), "{msg}");
}

#[test]
fn symlink_creation_is_refused() {
    let text = "\
diff --git a/link b/link
new file mode 120000
index 0000000..1111111
--- /dev/null
+++ b/link
@@ -0,0 +1 @@
+/etc/passwd
\\ No newline at end of file
";
    let err = parse(text).unwrap_err();
    assert_eq!(err.code(), "unsupported_patch");
    assert!(
        err.to_string()
            .contains("`link` is a symbolic link (mode 120000)"),
        "{err}"
    );
    assert!(err.to_string().starts_with("test.patch:2:"), "{err}");
}

#[test]
fn submodule_is_refused() {
    let text = "diff --git a/sub b/sub\nindex 1111111..2222222 160000\n--- a/sub\n+++ b/sub\n@@ -1 +1 @@\n-Subproject commit 1\n+Subproject commit 2\n";
    assert_eq!(parse(text).unwrap_err().code(), "unsupported_patch");
}

#[test]
fn mode_only_change_is_ignored_but_content_applies() {
    let text = "\
diff --git a/run.sh b/run.sh
old mode 100644
new mode 100755
diff --git a/x.txt b/x.txt
old mode 100644
new mode 100755
--- a/x.txt
+++ b/x.txt
@@ -1 +1 @@
-a
+b
";
    let edit = only(parse(text).unwrap());
    assert!(matches!(edit, Edit::Modify { ref path, .. } if path == &p("x.txt")));
    // A patch of mode changes only has nothing to apply.
    let err = parse("diff --git a/r b/r\nold mode 100644\nnew mode 100755\n").unwrap_err();
    assert_eq!(err.code(), "empty_change");
}

#[test]
fn git_binary_patch_is_refused() {
    let text = "\
diff --git a/logo.png b/logo.png
index 1111111..2222222 100644
GIT binary patch
literal 10
RcmZ?wbhEHbRA6LY00
";
    let err = parse(text).unwrap_err();
    assert_eq!(err.code(), "binary");
    assert_eq!(
        err.to_string(),
        "test.patch:3: `logo.png` is a binary change; Graft applies text patches only"
    );
}

#[test]
fn binary_files_differ_is_refused_in_git_and_plain_diffs() {
    let git =
        "diff --git a/img.png b/img.png\nindex 1..2 100644\nBinary files a/img.png and b/img.png differ\n";
    let err = parse(git).unwrap_err();
    assert_eq!(err.code(), "binary");
    assert!(err.to_string().contains("`img.png`"), "{err}");
    let plain = "Binary files old/img.png and new/img.png differ\n";
    let err = parse(plain).unwrap_err();
    assert_eq!(err.code(), "binary");
    assert!(
        err.to_string().starts_with("test.patch:1: `new/img.png`"),
        "{err}"
    );
}

#[test]
fn crlf_lines_keep_their_carriage_returns() {
    let text = "--- a/w.txt\r\n+++ b/w.txt\r\n@@ -1,2 +1,2 @@\r\n one\r\n-two\r\n+TWO\r\n";
    let edit = only(parse(text).unwrap());
    let Edit::Modify { path, .. } = &edit else {
        panic!()
    };
    assert_eq!(path, &p("w.txt"));
    assert_eq!(
        hunks(&edit)[0].lines,
        vec![
            HunkLine::Context("one\r\n".into()),
            HunkLine::Remove("two\r\n".into()),
            HunkLine::Add("TWO\r\n".into()),
        ]
    );
}

#[test]
fn no_newline_at_end_of_file_on_both_sides() {
    let text = "\
--- a/f
+++ b/f
@@ -1,2 +1,2 @@
 a
-b\r
\\ No newline at end of file
+c
\\ No newline at end of file
";
    let edit = only(parse(text).unwrap());
    assert_eq!(
        hunks(&edit)[0].lines,
        vec![
            HunkLine::Context("a\n".into()),
            HunkLine::Remove("b\r".into()),
            HunkLine::Add("c".into()),
        ]
    );
}

#[test]
fn format_patch_preamble_and_signature_are_ignored() {
    let text = "\
From 1234567890abcdef1234567890abcdef12345678 Mon Sep 17 00:00:00 2001
From: Ada <ada@example.com>
Date: Fri, 21 Nov 2025 10:00:00 +0000
Subject: [PATCH] Make x two

--- not a diff header, just prose
The commit message explains why.
---
 src/a.py | 3 ++-
 1 file changed, 2 insertions(+), 1 deletion(-)

diff --git a/src/a.py b/src/a.py
index 3b18e51..a8c4b2e 100644
--- a/src/a.py
+++ b/src/a.py
@@ -1,3 +1,4 @@
 import os
-x = 1
+x = 2
+y = 3
 print(x)
-- 
2.43.0

";
    let edit = only(parse(text).unwrap());
    assert!(matches!(edit, Edit::Modify { ref path, .. } if path == &p("src/a.py")));
}

#[test]
fn multiple_files_in_order() {
    let text = format!(
        "{GIT_MODIFY}diff --git a/b.txt b/b.txt\nnew file mode 100644\n--- /dev/null\n+++ b/b.txt\n@@ -0,0 +1 @@\n+hi\n"
    );
    let change = parse(&text).unwrap();
    assert_eq!(change.edits.len(), 2);
    assert!(matches!(&change.edits[0], Edit::Modify { path, .. } if path == &p("src/a.py")));
    assert!(matches!(&change.edits[1], Edit::Create { path, .. } if path == &p("b.txt")));
}

#[test]
fn plain_diff_u_with_timestamps_and_no_prefixes() {
    let text = "\
--- lib/util.c\t2024-01-01 10:00:00.000000000 +0100
+++ lib/util.c\t2024-01-02 11:00:00.000000000 +0100
@@ -10,2 +10,2 @@
 int a;
-int b;
+long b;
--- README\t2024-01-01 10:00:00.000000000 +0100
+++ README\t2024-01-02 11:00:00.000000000 +0100
@@ -1 +1 @@
-old
+new
";
    let change = parse(text).unwrap();
    assert_eq!(change.edits.len(), 2);
    assert!(matches!(&change.edits[0], Edit::Modify { path, .. } if path == &p("lib/util.c")));
    assert!(matches!(&change.edits[1], Edit::Modify { path, .. } if path == &p("README")));
}

#[test]
fn plain_diff_with_prefixes_and_dev_null() {
    let text = "--- /dev/null\n+++ b/new.py\n@@ -0,0 +1 @@\n+print(1)\n--- a/gone.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n";
    let change = parse(text).unwrap();
    assert_eq!(
        change.edits,
        vec![
            Edit::Create {
                path: p("new.py"),
                content: b"print(1)\n".to_vec(),
                executable: false
            },
            Edit::Delete {
                path: p("gone.py"),
                expect: Some(b"x\n".to_vec())
            },
        ]
    );
}

#[test]
fn plain_diff_epoch_timestamp_means_new_file() {
    let text = "--- new.txt\t1970-01-01 00:00:00.000000000 +0000\n+++ new.txt\t2024-01-01 00:00:00.000000000 +0000\n@@ -0,0 +1 @@\n+hello\n";
    assert!(matches!(only(parse(text).unwrap()), Edit::Create { .. }));
}

#[test]
fn plain_diff_with_different_names_picks_the_simpler() {
    let text = "--- app.py.orig\n+++ app.py\n@@ -1 +1 @@\n-a\n+b\n";
    assert!(matches!(only(parse(text).unwrap()), Edit::Modify { path, .. } if path == p("app.py")));
    let text = "--- app.py\n+++ app.py.new\n@@ -1 +1 @@\n-a\n+b\n";
    assert!(matches!(only(parse(text).unwrap()), Edit::Modify { path, .. } if path == p("app.py")));
}

#[test]
fn same_letter_directories_are_not_prefixes() {
    let text = "diff --git d/x d/x\n--- d/x\n+++ d/x\n@@ -1 +1 @@\n-a\n+b\n";
    assert!(matches!(only(parse(text).unwrap()), Edit::Modify { path, .. } if path == p("d/x")));
}

#[test]
fn quoted_git_names_are_unquoted() {
    let text = "diff --git \"a/caf\\303\\251.txt\" \"b/caf\\303\\251.txt\"\n--- \"a/caf\\303\\251.txt\"\n+++ \"b/caf\\303\\251.txt\"\n@@ -1 +1 @@\n-a\n+b\n";
    assert!(matches!(only(parse(text).unwrap()), Edit::Modify { path, .. } if path == p("café.txt")));
}

#[test]
fn git_names_with_spaces() {
    let text = "diff --git a/my file.txt b/my file.txt\nnew file mode 100644\nindex 0000000..e69de29\n";
    assert!(matches!(only(parse(text).unwrap()), Edit::Create { path, .. } if path == p("my file.txt")));
    let text = "--- a/my file.txt\t\n+++ b/my file.txt\t\n@@ -1 +1 @@\n-a\n+b\n";
    assert!(matches!(only(parse(text).unwrap()), Edit::Modify { path, .. } if path == p("my file.txt")));
}

#[test]
fn bad_paths_are_refused_at_parse_time_with_line() {
    for (name, code) in [
        ("../x", "path_traversal"),
        ("/etc/passwd", "path_absolute"),
        (".git/config", "path_git_dir"),
    ] {
        let text = format!("junk\n--- {name}\n+++ {name}\n@@ -1 +1 @@\n-a\n+b\n");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.code(), code, "{name}");
        assert!(err.to_string().starts_with("test.patch:3: the path"), "{err}");
    }
    let text = "diff --git a/x b/x\nrename from x\nrename to ../../etc/cron.d/x\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.code(), "path_traversal");
    assert!(err.to_string().starts_with("test.patch:3:"), "{err}");
}

#[test]
fn truncated_hunk_names_hunk_file_and_line() {
    let text = "\
diff --git a/src/a.rs b/src/a.rs
--- a/src/a.rs
+++ b/src/a.rs
@@ -1,5 +1,6 @@
 a
 b
-c
+C
";
    let err = parse(text).unwrap_err();
    assert_eq!(err.code(), "truncated_hunk");
    assert_eq!(
        err.to_string(),
        "test.patch:4: hunk `@@ -1,5 +1,6 @@` of `src/a.rs` ends after 3 of 5 old lines (truncated patch?)"
    );
}

#[test]
fn truncated_hunk_followed_by_next_file() {
    let text = "--- a/x\n+++ b/x\n@@ -1,2 +1,4 @@\n a\n+b\n b\n--- a/y\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.code(), "truncated_hunk");
    assert!(err.to_string().contains("ends after 3 of 4 new lines"), "{err}");
}

#[test]
fn hunk_with_more_lines_than_its_header_is_refused() {
    let text = "--- a/x\n+++ b/x\n@@ -1,3 +1,2 @@\n a\n+b\n+c\n-d\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.code(), "malformed_patch");
    assert!(
        err.to_string()
            .starts_with("test.patch:6: hunk `@@ -1,3 +1,2 @@` of `x` has more added lines"),
        "{err}"
    );
    let text = "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n+d\n";
    let err = parse(text).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("test.patch:7: hunk `@@ -1,2 +1,2 @@` of `x` has more lines"),
        "{err}"
    );
    let text = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n c\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.code(), "malformed_patch");
    assert!(
        err.to_string()
            .starts_with("test.patch:6: hunk `@@ -1 +1 @@` of `x` has more lines"),
        "{err}"
    );
}

#[test]
fn garbage_inside_a_hunk_is_refused() {
    let text = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\nthis is not a hunk line\n-b\n+c\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.code(), "malformed_patch");
    let msg = err.to_string();
    assert!(
        msg.starts_with("test.patch:5: unexpected line in hunk `@@ -1,3 +1,3 @@` of `x`"),
        "{msg}"
    );
    assert!(msg.contains("`this is not a hunk line`"), "{msg}");
}

#[test]
fn minus_minus_minus_lines_inside_a_hunk_are_content_when_counts_say_so() {
    let text = "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n--- old rule\n+++ new rule\n keep\n";
    let edit = only(parse(text).unwrap());
    assert_eq!(
        hunks(&edit)[0].lines,
        vec![
            HunkLine::Remove("-- old rule\n".into()),
            HunkLine::Add("++ new rule\n".into()),
            HunkLine::Context("keep\n".into()),
        ]
    );
}

#[test]
fn blank_lines_between_hunks_are_skipped() {
    let text = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n\n@@ -5 +5 @@\n-c\n+d\n";
    assert_eq!(hunks(&only(parse(text).unwrap())).len(), 2);
}

#[test]
fn garbage_starting_with_a_multibyte_character() {
    let err = parse("--- a/x\n+++ b/x\n@@ -1 +1 @@\né\n").unwrap_err();
    assert_eq!(err.code(), "malformed_patch");
    assert!(err.to_string().contains("unexpected line in hunk"), "{err}");
}

#[test]
fn empty_line_in_hunk_is_an_empty_context_line() {
    let text = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n";
    let edit = only(parse(text).unwrap());
    assert_eq!(hunks(&edit)[0].lines[1], HunkLine::Context("\n".into()));
}

#[test]
fn unreadable_hunk_header() {
    for header in [
        "@@ -1,x +1 @@",
        "@@ -1,2 @@",
        "@@@ -1 -1 +1 @@@",
        "@@ -0,2 +1,2 @@",
    ] {
        let text = format!("--- a/x\n+++ b/x\n{header}\n-a\n+b\n");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.code(), "malformed_patch", "{header}");
        assert!(
            err.to_string()
                .starts_with("test.patch:3: cannot read the hunk header"),
            "{err}"
        );
    }
}

#[test]
fn minus_minus_minus_without_plus_plus_plus() {
    let text = "--- a/x\n@@ -1 +1 @@\n-a\n+b\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.code(), "malformed_patch");
    assert!(
        err.to_string()
            .starts_with("test.patch:1: `--- a/x` is not followed by a `+++` line"),
        "{err}"
    );
    let text = "diff --git a/x b/x\n--- a/x\n@@ -1 +1 @@\n-a\n+b\n";
    let err = parse(text).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("test.patch:2: `--- a/x` is not followed"),
        "{err}"
    );
}

#[test]
fn hunk_without_file_header() {
    let err = parse("@@ -1 +1 @@\n-a\n+b\n").unwrap_err();
    assert_eq!(err.code(), "malformed_patch");
    assert!(err.to_string().contains("hunk without a file header"), "{err}");
}

#[test]
fn file_diff_without_hunks() {
    let err = parse("--- a/x\n+++ b/x\n").unwrap_err();
    assert_eq!(err.code(), "malformed_patch");
    assert!(err.to_string().contains("has no hunks"), "{err}");
}

#[test]
fn empty_and_non_diff_input() {
    assert_eq!(parse("").unwrap_err().code(), "empty_change");
    assert_eq!(parse(" \n\n").unwrap_err().code(), "empty_change");
    let err = parse("Please make x two.\n").unwrap_err();
    assert_eq!(err.code(), "malformed_patch");
    assert!(
        err.to_string().starts_with("test.patch:1: no file diffs found"),
        "{err}"
    );
}

#[test]
fn invalid_utf8_names_offset_and_line() {
    let mut bytes = b"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+".to_vec();
    bytes.push(0xff);
    let err = parse_unified_diff("p.diff", &bytes).unwrap_err();
    assert_eq!(err.code(), "not_utf8");
    assert_eq!(
        err.to_string(),
        "p.diff: not valid UTF-8 at byte 32 (line 5); a change must be UTF-8 text"
    );
}

#[test]
fn create_hunk_with_context_is_refused() {
    let text = "--- /dev/null\n+++ b/n\n@@ -0,0 +1,2 @@\n a\n+b\n";
    // The header's old count is 0, so the context line overflows it.
    assert_eq!(parse(text).unwrap_err().code(), "malformed_patch");
    let text = "diff --git a/n b/n\nnew file mode 100644\n--- a/n\n+++ b/n\n@@ -1 +1 @@\n-a\n+b\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.code(), "malformed_patch");
    assert!(
        err.to_string()
            .starts_with("test.patch:5: hunk `@@ -1 +1 @@` of `n` keeps or removes lines"),
        "{err}"
    );
    assert!(err.to_string().contains("creates the file"), "{err}");
}

#[test]
fn unquote_escapes() {
    assert_eq!(
        unquote("\"a\\tb\\\"c\\\\\" rest"),
        Some(("a\tb\"c\\".to_string(), " rest"))
    );
    assert_eq!(unquote("\"\\303\\251\""), Some(("é".to_string(), "")));
    assert_eq!(unquote("\"unterminated"), None);
}
