//! Hostile paths and malformed changes: each is refused with a clear
//! message, and nothing changes (design invariants 6 and 7).

use crate::support::*;

/// Run `graft upgrade` with `input` as a patch (or edits) and check that it
/// is refused with `code`, says `message`, and changes nothing.
fn refused(t: &Target, kind: &str, input: &[u8], exit: i32, reason: &str, message: &str) {
    let before = t.snapshot();
    let file = t.input("hostile.in", input);
    let run = t.graft(&["upgrade", kind, file.to_str().unwrap()]);
    run.code(exit).says(message);
    t.snapshot().assert_same(&before, reason);
    let id = t.last_upgrade();
    let (state, got_reason, _) = t.upgrade_row(&id);
    assert_eq!(state, "failed", "{reason}");
    assert_eq!(got_reason.as_deref(), Some(reason), "ledger reason");
    assert_eq!(
        t.git(&["branch", "--list", "graft/*"]),
        "",
        "{reason}: no branch for a refused change"
    );
}

fn patch(t: &Target, input: &str, reason: &str, message: &str) {
    refused(t, "--patch", input.as_bytes(), 3, reason, message);
}

fn edits(t: &Target, input: &str, reason: &str, message: &str) {
    refused(t, "--edits", input.as_bytes(), 3, reason, message);
}

fn create(path: &str) -> String {
    format!("--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+owned\n")
}

#[test]
fn traversal_is_refused() {
    let t = Target::python();
    patch(
        &t,
        &create("../outside.txt"),
        "path_traversal",
        "`../outside.txt`",
    );
    patch(&t, &create("src/../../outside.txt"), "path_traversal", "..");
    edits(
        &t,
        r#"[{"op":"create","path":"a/../../x","content":"x"}]"#,
        "path_traversal",
        "..",
    );
    assert!(!t.root.parent().unwrap().join("outside.txt").exists());
}

#[test]
fn absolute_paths_are_refused() {
    let t = Target::python();
    edits(
        &t,
        r#"[{"op":"create","path":"/tmp/graft-owned","content":"x"}]"#,
        "path_absolute",
        "/tmp/graft-owned",
    );
    patch(
        &t,
        "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-root\n+owned\n",
        "path_absolute",
        "/etc/passwd",
    );
    assert!(!std::path::Path::new("/tmp/graft-owned").exists());
}

#[test]
fn git_dir_is_refused_in_any_case() {
    let t = Target::python();
    patch(
        &t,
        "--- a/.git/config\n+++ b/.git/config\n@@ -1 +1 @@\n-[core]\n+[core] # owned\n",
        "path_git_dir",
        ".git/config",
    );
    edits(
        &t,
        r#"[{"op":"create","path":".GIT/hooks/post-merge","content":"rm -rf /"}]"#,
        "path_git_dir",
        ".GIT",
    );
    edits(
        &t,
        r#"[{"op":"create","path":"sub/.git/config","content":"x"}]"#,
        "path_git_dir",
        "sub/.git/config",
    );
}

#[test]
fn symlink_escape_is_refused() {
    let t = Target::python();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), t.path("link")).unwrap();
    t.commit("a symlink to outside");
    patch(&t, &create("link/owned.txt"), "symlink_escape", "link");
    assert!(!outside.path().join("owned.txt").exists());
    // A symlink as the file itself.
    std::os::unix::fs::symlink("/etc/hostname", t.path("host")).unwrap();
    t.commit("a file symlink");
    edits(
        &t,
        r#"[{"op":"replace","path":"host","content":"owned"}]"#,
        "symlink_escape",
        "host",
    );
    // Creating a symlink by patch.
    patch(
        &t,
        "diff --git a/evil b/evil\nnew file mode 120000\n--- /dev/null\n+++ b/evil\n@@ -0,0 +1 @@\n+/etc/passwd\n\\ No newline at end of file\n",
        "unsupported_patch",
        "symbolic link",
    );
}

#[test]
fn protected_paths_need_approval() {
    let t = Target::python_with_config(&format!("{CONFIG}\n[limits]\nmax_file_bytes = 65536\n"));
    edits(
        &t,
        r#"[{"op":"replace","path":"graft.toml","content":"[target]\n"}]"#,
        "path_protected",
        "--approve-protected",
    );
    edits(
        &t,
        r#"[{"op":"create","path":".env","content":"SECRET=1"}]"#,
        "path_protected",
        ".env",
    );
    // With approval, graft.toml may change.
    let file = t.input(
        "ok.json",
        br#"[{"op":"modify","path":"graft.toml","search":"timeout = \"2m\"","replace":"timeout = \"3m\""}]"#,
    );
    t.graft(&[
        "upgrade",
        "--edits",
        file.to_str().unwrap(),
        "--approve-protected",
    ])
    .success();
    assert!(t.read("graft.toml").contains("3m"));
}

#[test]
fn search_must_match_exactly_once() {
    let t = Target::python();
    edits(
        &t,
        r#"[{"op":"modify","path":"app.py","search":"def nothing_like_this(","replace":"x"}]"#,
        "search_not_found",
        "def nothing_like_this(",
    );
    edits(
        &t,
        r#"[{"op":"modify","path":"app.py","search":"return","replace":"yield"}]"#,
        "search_ambiguous",
        "app.py",
    );
}

#[test]
fn malformed_patches_are_refused() {
    let t = Target::python();
    // Truncated: the header promises 4 old lines, 2 arrive.
    patch(
        &t,
        "--- a/app.py\n+++ b/app.py\n@@ -3,4 +3,4 @@\n \n \n",
        "truncated_hunk",
        "truncated",
    );
    patch(
        &t,
        "this is not a patch at all\n",
        "malformed_patch",
        "hostile.in:1: no file diffs found",
    );
    patch(
        &t,
        "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return 0\n",
        "hunk_mismatch",
        "app.py",
    );
    patch(
        &t,
        "diff --git a/img.png b/img.png\nnew file mode 100644\nindex 0000000..1111111\nGIT binary patch\nliteral 4\nLcmZ?d\n\nliteral 0\nHcmV?d00001\n\n",
        "binary",
        "binary",
    );
    edits(
        &t,
        r#"[{"op":"chmod","path":"app.py"}]"#,
        "invalid_edits",
        "chmod",
    );
    edits(
        &t,
        r#"[{"op":"create","path":"x.py","content":"x","mode":"777"}]"#,
        "invalid_edits",
        "mode",
    );
    edits(&t, "[]", "empty_change", "no edits");
    edits(
        &t,
        r#"[{"op":"create","path":"app.py","content":"x"}]"#,
        "file_exists",
        "app.py",
    );
    edits(
        &t,
        r#"[{"op":"delete","path":"missing.py"}]"#,
        "file_missing",
        "missing.py",
    );
}

#[test]
fn invalid_utf8_is_refused() {
    let t = Target::python();
    let mut bytes = b"--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-def add(a, b):\n+def add(a, b): # ".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
    refused(&t, "--patch", &bytes, 3, "not_utf8", "UTF-8");
}

#[test]
fn oversize_changes_are_refused() {
    let t = Target::python_with_config(&format!(
        "{CONFIG}\n[limits]\nmax_file_bytes = 1000\nmax_change_bytes = 3000\nmax_files = 4\n"
    ));
    // Over a limit by what the change alone shows: refused as it is read,
    // before anything is stored (no upgrade, nothing to approve).
    let at_intake = |input: String, reason: &str, message: &str| {
        let before = t.snapshot();
        let file = t.input("hostile.in", input.as_bytes());
        let run = t.graft(&["upgrade", "--edits", file.to_str().unwrap(), "--json"]);
        run.code(3);
        let e = &run.json()["error"];
        assert_eq!(e["code"], reason, "{e}");
        assert!(e["message"].as_str().unwrap().contains(message), "{e}");
        t.snapshot().assert_same(&before, reason);
        assert_eq!(
            t.count("SELECT COUNT(*) FROM upgrades"),
            0,
            "{reason}: nothing stored"
        );
    };
    let create = |i: usize, size: usize| {
        format!(
            r#"{{"op":"create","path":"f{i}.txt","content":"{}"}}"#,
            "y".repeat(size)
        )
    };
    let list = |parts: Vec<String>| format!("[{}]", parts.join(","));
    at_intake(
        list(vec![create(0, 2000)]),
        "too_large",
        "`f0.txt` would be 2000 bytes",
    );
    at_intake(
        list((0..4).map(|i| create(i, 900)).collect()),
        "too_large",
        "writes 3600 bytes in all, over the limit of 3000",
    );
    at_intake(
        list((0..5).map(|i| create(i, 1)).collect()),
        "too_many_files",
        "names 5 files, over the limit of 4",
    );
    // Over only once resolved against the tree: a small replacement that
    // grows app.py past 1000 bytes, refused by the pipeline.
    edits(
        &t,
        &format!(
            r#"[{{"op":"modify","path":"app.py","search":"return a + b","replace":"return a + b  # {}"}}]"#,
            "x".repeat(950)
        ),
        "too_large",
        "`app.py` would be 1033 bytes, over the limit of 1000 bytes per file",
    );
}

#[test]
fn binary_content_is_refused_unless_allowed() {
    let t = Target::python();
    edits(
        &t,
        r#"[{"op":"create","path":"blob.bin","content":"a\u0000b"}]"#,
        "binary",
        "blob.bin",
    );
}

#[test]
fn unreadable_input_is_a_usage_error() {
    let t = Target::python();
    let before = t.snapshot();
    t.graft(&["upgrade", "--patch", "/nonexistent/change.diff"])
        .code(2)
        .stderr_has("cannot read /nonexistent/change.diff");
    t.snapshot().assert_same(&before, "after an unreadable input");
}
