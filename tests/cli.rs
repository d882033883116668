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
    t.graft(&["show", "upg_20200101_000000_abcdef"])
        .code(6)
        .stderr_has(
            "error: no upgrade `upg_20200101_000000_abcdef` in the ledger (`graft status` lists them)",
        );
    let run = t.graft(&["show", "../etc", "--json"]);
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

/// A gate that reports an error first, then 300 lines of noise: more than
/// the 200 lines of tail the ledger keeps.
const NOISY_GATE: &str = "[[gates]]\nname = \"check\"\nkind = \"test\"\ncommand = \"sh check.sh\"\n";
const NOISY_SCRIPT: &str = "echo 'error[E0308]: mismatched types'\ni=0\nwhile [ $i -lt 300 ]; do echo \"noise $i\"; i=$((i+1)); done\nexit 1\n";

#[test]
fn a_failed_gate_leads_with_its_first_error_and_its_output_is_printed_once() {
    let t = Target::python_with_config(NOISY_GATE);
    t.write("check.sh", NOISY_SCRIPT);
    t.commit("a noisy gate");
    let run = t.upgrade_patch(&good_patch(), &[]);
    run.code(4);
    let id = t.last_upgrade();
    run.stdout_has(&format!(
        "failed {id}: gate `check` failed (exit 1): error[E0308]: mismatched types\n  …\n  noise 292\n"
    ))
    .stdout_has("  noise 299\nnothing landed");
    let all = format!("{}{}", run.stdout, run.stderr);
    for line in ["error[E0308]: mismatched types", "noise 299", "noise 292"] {
        assert_eq!(all.matches(line).count(), 1, "{line:?} once:\n{all}");
    }
    run.stdout_has(&format!(
        "`graft show {id}` prints the whole upgrade, every gate's output included"
    ));
    // The ledger keeps the first error beside the tail that lost it.
    let json = t.upgrade_patch(&good_patch(), &["--json"]).json();
    let gate = &json["gates"][1];
    assert_eq!(gate["first_error"], "error[E0308]: mismatched types");
    let tail = gate["output_tail"].as_str().unwrap();
    assert!(
        tail.starts_with("[… 101 earlier lines not kept]\nnoise 100\n"),
        "{tail}"
    );
    assert!(!tail.contains("error[E0308]"), "{tail}");
}

#[test]
fn show_prints_the_whole_upgrade() {
    let t = Target::python_with_config(NOISY_GATE);
    t.write("check.sh", NOISY_SCRIPT);
    t.commit("a noisy gate");
    t.upgrade_patch(&good_patch(), &[]).code(4);
    let id = t.last_upgrade();
    let run = t.graft(&["show", &id]);
    run.success()
        .stdout_has(&format!("upgrade {id}  Apply patch change.diff\n"))
        .stdout_has("  state      failed  (gate_failed:check)\n")
        .stdout_has("  request    patch from cli by cli:")
        .stdout_has("  risk       low  (approval auto)\n")
        .stdout_has("  error      gate `check` failed (exit 1): error[E0308]: mismatched types\n")
        .stdout_has("asked\n  --- a/app.py\n  +++ b/app.py\n")
        .stdout_has("  ✓ gate parse      passed")
        .stdout_has("  ✗ gate check      failed")
        .stdout_has("      first error: error[E0308]: mismatched types\n      [… 101 earlier lines not kept]\n      noise 100\n")
        .stdout_has("      noise 299\n")
        .stdout_has("files\n  modify  app.py  +1 -1\n")
        .stdout_has("steps\n")
        .stdout_has("  checkpoint       ok      main at ")
        .stdout_has("  gate:check       failed  failed in ");
    // The gate's output is printed once.
    assert_eq!(run.stdout.matches("noise 299").count(), 1, "{}", run.stdout);
    let json = t.graft(&["show", &id, "--json"]);
    json.success();
    let v = json.json();
    assert_eq!(v["upgrade"]["id"], id.as_str());
    assert_eq!(v["upgrade"]["risk"], "low");
    assert_eq!(v["gates"][1]["first_error"], "error[E0308]: mismatched types");
    assert!(
        v["asked"]
            .as_str()
            .unwrap()
            .contains("return \"Welcome, \" + name")
    );
    assert!(v["steps"].as_array().unwrap().len() >= 8);
    // A landed upgrade, then rolled back: its commits, deploy and rollback.
    t.write("check.sh", "exit 0\n");
    t.commit("a quiet gate");
    let ok = t.upgrade_patch(&good_patch(), &["--json"]).json();
    let ok_id = ok["id"].as_str().unwrap().to_string();
    t.graft(&["rollback", &ok_id]).success();
    let revert = t.head();
    t.graft(&["show", &ok_id])
        .success()
        .stdout_has("  state      rolled_back  (manual_rollback)\n")
        .stdout_has(&format!("reverted by {}", &revert[..10]))
        .stdout_has("  deploy           ok")
        .stdout_has("rollbacks\n")
        .stdout_has(" manual  by cli:");
}

#[test]
fn usage_errors_under_json_are_one_json_error_on_stdout() {
    let t = Target::python();
    let run = t.graft(&["status", "--bogus", "--json"]);
    run.code(2);
    assert_eq!(run.stderr, "");
    assert_eq!(
        run.json(),
        serde_json::json!({ "error": {
            "code": "usage",
            "exit_code": 2,
            "message": "unexpected argument '--bogus' found\nUsage: graft status [OPTIONS]\nFor more information, try '--help'."
        }})
    );
    let run = t.graft(&["--json", "upgrade", "--patch", "a", "--priority", "11"]);
    run.code(2);
    assert_eq!(
        run.json()["error"]["message"],
        "invalid value '11' for '--priority <PRIORITY>': 11 is not in 1..=10\nFor more information, try '--help'."
    );
    let run = t.graft(&["--json"]);
    run.code(2);
    assert!(
        run.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("'graft' requires a subcommand but one was not provided\n"),
        "{}",
        run.stdout
    );
    // Without --json, clap's own words on stderr; help is no error.
    t.graft(&["status", "--bogus"])
        .code(2)
        .stderr_has("error: unexpected argument '--bogus' found");
    t.graft(&["--json", "status", "--help"])
        .success()
        .stdout_has("Usage: graft status [OPTIONS]");
}

#[test]
fn url_is_an_option_of_the_commands_that_use_it_only() {
    let t = Target::python();
    let help = |args: &[&str]| t.graft(args).success().stdout.clone();
    assert!(!help(&["--help"]).contains("--url"));
    for command in ["upgrade", "status", "show", "rollback", "cancel"] {
        assert!(
            help(&[command, "--help"]).contains("--url <URL>"),
            "graft {command} --help"
        );
    }
    for command in [
        "scan", "ledger", "diff", "init", "run", "logs", "queue", "approve",
    ] {
        assert!(
            !help(&[command, "--help"]).contains("--url"),
            "graft {command} --help"
        );
    }
    t.graft(&["ledger", "--url", "http://127.0.0.1:9"])
        .code(2)
        .stderr_has("error: unexpected argument '--url' found");
    // $GRAFT_URL set for the commands that use it is no business of the rest.
    t.graft_env(&["ledger"], &[("GRAFT_URL", "http://127.0.0.1:9")])
        .success()
        .stdout_has("the ledger is empty");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definitions() {
    let t = Target::python();
    let bash = t.graft(&["completions", "bash"]);
    bash.success()
        .stdout_has("_graft()")
        .stdout_has("complete -F _graft");
    // Valid bash that registers the completion.
    let script = t.input("graft.bash", bash.stdout.as_bytes());
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p graft", script.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("_graft"));
    t.graft(&["completions", "zsh"])
        .success()
        .stdout_has("#compdef graft")
        .stdout_has("show");
    t.graft(&["completions", "fish"])
        .success()
        .stdout_has("complete -c graft");
    t.graft(&["completions", "tcsh"])
        .code(2)
        .stderr_has("invalid value 'tcsh' for '<SHELL>'");
    t.graft(&["man"])
        .success()
        .stdout_has(&format!(".TH graft 1  \"graft {}\"", env!("CARGO_PKG_VERSION")))
        .stdout_has("graft\\-show(1)");
    t.graft(&["man", "upgrade"])
        .success()
        .stdout_has(&format!(
            ".TH graft-upgrade 1  \"graft {}\"",
            env!("CARGO_PKG_VERSION")
        ))
        .stdout_has("\\fB\\-\\-url\\fR");
    t.graft(&["man", "nope"]).code(2).stderr_has(
        "`nope` is not a graft command, so it has no man page; give one of init, upgrade, status, show,",
    );
}
