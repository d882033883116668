//! The command line itself: init, status, diff, ledger, --json, exit codes.

use crate::support::*;

#[test]
fn init_writes_gates_for_each_ecosystem() {
    for (manifest, content, expect) in [
        (
            "Cargo.toml",
            "[package]\nname = \"x\"\nversion = \"0.1.0\"\n",
            "cargo build",
        ),
        ("pyproject.toml", "[project]\nname = \"x\"\n", "pytest"),
        (
            "package.json",
            "{\"scripts\": {\"test\": \"node t.js\", \"lint\": \"eslint .\"}}",
            "npm test",
        ),
        ("go.mod", "module x\n", "go vet ./..."),
    ] {
        let t = Target::with_files(&[(manifest, content)]);
        let run = t.graft(&["init", "--json"]);
        run.success();
        let text = t.read("graft.toml");
        assert!(text.contains(expect), "{manifest}: {text}");
        assert_eq!(run.json()["branch"], "main");
        // What init wrote is a valid config that the rest of graft reads.
        t.graft(&["status"]).success();
        // .graft/ is ignored by git without touching tracked files.
        assert_eq!(t.git(&["status", "--porcelain"]), "?? graft.toml");
        t.graft(&["init"])
            .code(5)
            .stderr_has("already exists; pass --force");
        t.graft(&["init", "--force"]).success();
    }
}

#[test]
fn init_outside_a_repo_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(GRAFT)
        .arg("init")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not inside a git repository"));
}

#[test]
fn missing_config_suggests_init() {
    let t = Target::with_files(&[("a.txt", "a\n")]);
    t.graft(&["status"])
        .code(5)
        .stderr_has("graft.toml: no such file: run `graft init`");
}

#[test]
fn invalid_config_names_file_line_and_key() {
    let t = Target::python();
    t.write("graft.toml", "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"test\"\nkind = \"test\"\ncommand = \"x\"\ntimeout = \"soon\"\n");
    t.graft(&["status"])
        .code(5)
        .stderr_has("graft.toml:8:11: key `gates[0].timeout`: `soon` is not a duration");
    t.write("graft.toml", "[target]\nbranch = \"main\"\nbrnach = 1\n");
    let run = t.graft(&["status", "--json"]);
    run.code(5);
    let e = run.json();
    assert_eq!(e["error"]["code"], "invalid_config");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains(":3:1: unknown key `target.brnach`")
    );
}

#[test]
fn status_diff_and_ledger_tell_the_story() {
    let t = Target::python();
    let ok = t.upgrade_patch(&good_patch(), &["--json"]);
    let ok_id = ok.json()["id"].as_str().unwrap().to_string();
    t.upgrade_patch(&failing_add_patch(), &[]).code(4);
    let failed_id = t.last_upgrade();

    t.graft(&["status"])
        .success()
        .stdout_has(&ok_id)
        .stdout_has("promoted")
        .stdout_has(&failed_id)
        .stdout_has("gate_failed:test");
    let status = t.graft(&["status", "--json"]);
    status.success();
    assert_eq!(status.json()["live_commit"], t.head().as_str());
    assert_eq!(status.json()["recent"].as_array().unwrap().len(), 2);

    t.graft(&["diff", &ok_id])
        .success()
        .stdout_has("modify  app.py  +1 -1")
        .stdout_has("-    return \"Hello, \" + name")
        .stdout_has("+    return \"Welcome, \" + name");
    let diff = t.graft(&["diff", &failed_id, "--json"]);
    assert_eq!(diff.json()["files"][0]["path"], "app.py");
    assert!(diff.json()["diff"].as_str().unwrap().contains("return a - b"));

    let ledger = t.graft(&["ledger"]);
    ledger
        .success()
        .stdout_has("success rate 50 %")
        .stdout_has("gate_failed:test")
        .stdout_has("gate `test` rejects changes most often")
        .stdout_has("app.py");
    let json = t.graft(&["ledger", "--json"]).json();
    assert_eq!(json["total"], 2);
    assert_eq!(json["failures_by_cause"][0]["cause"], "gate_failed:test");
    assert!(
        json["failures_by_cause"][0]["recommendation"]
            .as_str()
            .unwrap()
            .contains("gate `test`")
    );
}

#[test]
fn unknown_and_malformed_ids_exit_6() {
    let t = Target::python();
    t.graft(&["diff", "upg_20200101_000000_abcdef"])
        .code(6)
        .stderr_has("no upgrade `upg_20200101_000000_abcdef`");
    t.graft(&["rollback", "../../etc/passwd"])
        .code(6)
        .stderr_has("is not an upgrade id");
    let run = t.graft(&["cancel", "nope", "--json"]);
    run.code(6);
    assert_eq!(run.json()["error"]["code"], "bad_id");
}

#[test]
fn usage_errors_exit_2() {
    let t = Target::python();
    t.graft(&["upgrade"]).code(2);
    t.graft(&["upgrade", "--patch", "a", "--edits", "b"]).code(2);
    t.graft(&["upgrade", "--patch", "a", "--priority", "11"]).code(2);
}

#[test]
fn patch_from_stdin() {
    use std::io::Write as _;
    let t = Target::python();
    let mut child = t
        .graft_command(&["upgrade", "--patch", "-", "--json"], &[])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(good_patch().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "promoted");
    assert_eq!(v["title"], "Apply patch <stdin>");
}

#[test]
fn format_patch_subject_becomes_the_title() {
    let t = Target::python();
    let mail = format!(
        "From 1234 Mon Sep 17 00:00:00 2001\nFrom: Dev <dev@x>\nSubject: [PATCH] Warmer greeting\n\n---\n app.py | 2 +-\n\n{}",
        good_patch()
    );
    let run = t.upgrade_patch(&mail, &["--json"]);
    run.success();
    assert_eq!(run.json()["title"], "Warmer greeting");
}

#[test]
fn demo_runs_end_to_end() {
    let out = std::process::Command::new(GRAFT)
        .args(["demo", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["requests"].as_u64().unwrap() > 100, "{v}");
    assert_eq!(v["failed"], 0, "no request may fail: {v}");
    let states: Vec<&str> = v["upgrades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["promoted", "rolled_back", "rolled_back"]);
    let reasons: Vec<&str> = v["upgrades"].as_array().unwrap()[1..]
        .iter()
        .map(|u| u["failure"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["deploy_failed:not_ready", "watch_failed:unhealthy"]);
    let versions: Vec<&str> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert_eq!(&versions[..2], ["v1", "v2"], "{versions:?}");
    assert!(
        !versions.contains(&"v3"),
        "the never-ready release served nothing: {versions:?}"
    );
    assert_eq!(v["ledger"]["rollbacks"], 2);
}
