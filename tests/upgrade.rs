//! A change through the whole pipeline: what lands, what does not, and
//! what the ledger says about each.

use crate::support::*;

#[test]
fn good_patch_lands_on_main_with_tag_and_ledger_rows() {
    let t = Target::python();
    let base = t.head();
    let run = t.upgrade_patch(&good_patch(), &["--json"]);
    run.success();
    let report = run.json();
    let id = report["id"].as_str().unwrap().to_string();
    assert_eq!(report["state"], "promoted");

    // git: main moved by fast-forward to the staged commit, tagged.
    let head = t.head();
    assert_ne!(head, base);
    assert_eq!(
        t.git(&["rev-parse", "HEAD~1"]),
        base,
        "a fast-forward of one commit"
    );
    assert_eq!(report["landed_commit"], head.as_str());
    assert_eq!(
        t.git(&["rev-parse", &format!("graft/promoted/{id}^{{commit}}")]),
        head
    );
    assert_eq!(
        t.git(&["branch", "--list", &format!("graft/{id}")]),
        "",
        "the branch goes once promoted"
    );
    assert!(
        t.git(&["log", "-1", "--format=%B"])
            .contains(&format!("Graft-Upgrade: {id}"))
    );
    // The working tree follows, and is clean.
    assert!(t.read("app.py").contains("Welcome, "));
    assert_eq!(t.git(&["status", "--porcelain"]), "");

    // ledger.
    assert_eq!(t.upgrade_row(&id).0, "promoted");
    let steps = t.count(&format!("SELECT COUNT(*) FROM steps WHERE upgrade_id = '{id}'"));
    assert!(steps >= 18, "begin and end rows for every step, got {steps}");
    assert!(t.open_steps(&id).is_empty());
    for step in [
        "checkpoint",
        "generate",
        "stage",
        "gate:parse",
        "gate:test",
        "backup",
        "land",
        "deploy",
        "watch",
    ] {
        for phase in ["begin", "end"] {
            let n = t.count(&format!(
                "SELECT COUNT(*) FROM steps WHERE upgrade_id = '{id}' AND step = '{step}' AND phase = '{phase}'"
            ));
            assert_eq!(n, 1, "{step} {phase}");
        }
    }
    let (path, kind, added, removed, before, after): (String, String, i64, i64, Option<String>, Option<String>) = t
        .ledger()
        .query_row(
            "SELECT path, kind, lines_added, lines_removed, blob_before, blob_after FROM file_changes WHERE upgrade_id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert_eq!(
        (path.as_str(), kind.as_str(), added, removed),
        ("app.py", "modify", 1, 1)
    );
    assert_eq!(before.unwrap(), t.git(&["rev-parse", &format!("{base}:app.py")]));
    assert_eq!(after.unwrap(), t.git(&["rev-parse", "HEAD:app.py"]));
    let gates: Vec<(String, String)> = {
        let conn = t.ledger();
        let mut stmt = conn
            .prepare("SELECT name, status FROM gate_runs WHERE upgrade_id = ?1 ORDER BY id")
            .unwrap();
        stmt.query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(
        gates,
        [
            ("parse".into(), "passed".into()),
            ("test".into(), "passed".into())
        ]
    );
    let versions = t.count(&format!(
        "SELECT COUNT(*) FROM file_versions WHERE upgrade_id = '{id}' AND commit_id = '{head}'"
    ));
    assert_eq!(versions, 1);
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM data_backups WHERE upgrade_id = '{id}' AND existed = 1"
        )),
        1
    );
}

#[test]
fn failing_tests_leave_everything_byte_identical() {
    let t = Target::python();
    let before = t.snapshot();
    let run = t.upgrade_patch(&failing_patch(), &[]);
    run.code(4)
        .stdout_has("gate `test` failed (exit 1)")
        .stdout_has("AssertionError")
        .stdout_has("nothing landed");
    t.snapshot().assert_same(&before, "after a failed gate");
    let id = t.last_upgrade();
    let (state, reason, error) = t.upgrade_row(&id);
    assert_eq!(state, "failed");
    assert_eq!(reason.as_deref(), Some("gate_failed:test"));
    assert!(error.unwrap().contains("AssertionError"));
    let tail: String = t
        .ledger()
        .query_row(
            "SELECT output_tail FROM gate_runs WHERE upgrade_id = ?1 AND name = 'test'",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(tail.contains("FAILED (failures=1)"), "{tail}");
    // The failed change is kept on its branch for inspection.
    assert!(t.git(&["branch", "--list", &format!("graft/{id}")]).contains(&id));
    // The staging worktree holds nothing of it.
    let staged_app = std::fs::read_to_string(t.path(".graft/staging/app.py")).unwrap();
    assert_eq!(staged_app, APP_PY);
}

#[test]
fn syntax_error_is_caught_by_the_parse_gate_before_any_build() {
    let t = Target::python_with_config(
        "[[gates]]\nname = \"build\"\nkind = \"build\"\ncommand = \"touch ../../built-marker\"\n\n[[gates]]\nname = \"test\"\nkind = \"test\"\ncommand = \"python3 -m unittest -q\"\n",
    );
    let before = t.snapshot();
    let run = t.upgrade_patch(&greet_patch("return (\"Hello, \" + name"), &[]);
    run.code(4)
        .stdout_has("gate `parse` failed")
        .stdout_has("app.py:");
    let id = t.last_upgrade();
    assert_eq!(t.upgrade_row(&id).1.as_deref(), Some("gate_failed:parse"));
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM gate_runs WHERE upgrade_id = '{id}'"
        )),
        1,
        "only parse ran"
    );
    assert!(
        !t.path(".graft/built-marker").exists(),
        "the build gate must not have run"
    );
    t.snapshot().assert_same(&before, "after a syntax error");
}

#[test]
fn parse_error_names_file_line_and_column() {
    let t = Target::python();
    let edits =
        r#"[{"op": "create", "path": "conf/settings.json", "content": "{\n  \"a\": 1,\n  \"b\": \n}\n"}]"#;
    let run = t.upgrade_edits(edits, &[]);
    run.code(4).stdout_has("conf/settings.json:4:1:");
}

#[test]
fn edits_create_modify_delete_rename_land_together() {
    let t = Target::with_files(&[
        ("graft.toml", "[target]\nbranch = \"main\"\n"),
        ("a.py", "x = 1\n"),
        ("old.txt", "old\n"),
        ("gone.txt", "bye\n"),
    ]);
    let edits = r#"[
        {"op": "create", "path": "pkg/new.py", "content": "def f():\n    return 1\n"},
        {"op": "modify", "path": "a.py", "edits": [{"search": "x = 1", "replace": "x = 2"}]},
        {"op": "delete", "path": "gone.txt"},
        {"op": "rename", "from": "old.txt", "to": "docs/old.txt"}
    ]"#;
    let run = t.upgrade_edits(edits, &["--json"]);
    run.success();
    let files = run.json()["files"].clone();
    let kinds: Vec<(String, String)> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("pkg/new.py".into(), "create".into())),
        "{kinds:?}"
    );
    assert!(kinds.contains(&("a.py".into(), "modify".into())), "{kinds:?}");
    assert!(kinds.contains(&("gone.txt".into(), "delete".into())), "{kinds:?}");
    assert!(
        kinds.contains(&("docs/old.txt".into(), "rename".into())),
        "{kinds:?}"
    );
    assert_eq!(t.read("a.py"), "x = 2\n");
    assert!(!t.path("gone.txt").exists());
    assert_eq!(t.read("docs/old.txt"), "old\n");
    assert_eq!(t.git(&["status", "--porcelain"]), "");
}

#[test]
fn dry_run_prints_diff_and_gates_and_changes_nothing() {
    let t = Target::python();
    let before = t.snapshot();
    let run = t.upgrade_patch(&good_patch(), &["--dry-run"]);
    run.success()
        .stdout_has("+    return \"Welcome, \" + name")
        .stdout_has("gate test")
        .stdout_has("passed")
        .stdout_has("dry run");
    t.snapshot().assert_same(&before, "after a dry run");
    let id = t.last_upgrade();
    let (state, reason, _) = t.upgrade_row(&id);
    assert_eq!(
        (state.as_str(), reason.as_deref()),
        ("cancelled", Some("dry_run"))
    );
    assert_eq!(
        t.git(&["branch", "--list", "graft/*"]),
        "",
        "a dry run keeps no branch"
    );
    // A dry run's failure is reported with the failing gate's exit code.
    t.upgrade_patch(&failing_patch(), &["--dry-run"]).code(4);
    t.snapshot().assert_same(&before, "after a failing dry run");
}

#[test]
fn dirty_tree_is_refused_with_what_to_do() {
    let t = Target::python();
    t.write("app.py", "# local edit\n");
    let before = t.snapshot();
    t.upgrade_patch(&good_patch(), &[])
        .code(5)
        .stdout_has("uncommitted changes (app.py)")
        .stdout_has("commit or stash them");
    t.snapshot().assert_same(&before, "after refusing a dirty tree");
    assert_eq!(t.upgrade_row(&t.last_upgrade()).1.as_deref(), Some("dirty_tree"));
}

#[test]
fn second_upgrade_builds_on_the_first_and_reuses_staging() {
    let t = Target::python_with_config(
        "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"build\"\nkind = \"build\"\n# an ignored build cache, as cargo's target/ would be\ncommand = \"mkdir -p cache && echo x >> cache/builds && cat cache/builds | wc -l > /dev/null\"\n",
    );
    t.write(".gitignore", "__pycache__/\ndata/\ncache/\n");
    t.commit("ignore the cache");
    t.upgrade_patch(&good_patch(), &[]).success();
    let patch2 = "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a + b\n+    return b + a\n";
    t.upgrade_patch(patch2, &[]).success();
    assert!(t.read("app.py").contains("Welcome, "));
    assert!(t.read("app.py").contains("return b + a"));
    // The ignored build output of the first upgrade survived into the second.
    let builds = std::fs::read_to_string(t.path(".graft/staging/cache/builds")).unwrap();
    assert_eq!(
        builds.lines().count(),
        2,
        "the build cache was reset between upgrades"
    );
}

#[test]
fn commit_made_meanwhile_is_never_lost() {
    // A gate that commits to main in the main checkout while it runs, as a
    // developer pushing meanwhile would.
    let t = Target::python_with_config(
        "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"meanwhile\"\nkind = \"custom\"\ncommand = \"cd ../.. && echo note > NOTE.md && git add NOTE.md && git -c user.name=x -c user.email=x@y commit -qm meanwhile\"\n",
    );
    t.upgrade_patch(&good_patch(), &[])
        .code(5)
        .stdout_has("moved from");
    assert_eq!(t.git(&["log", "-1", "--format=%s"]), "meanwhile");
    assert_eq!(t.read("app.py"), APP_PY);
}

#[test]
fn advisory_gate_failure_does_not_block() {
    let t = Target::python_with_config(
        "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"style\"\nkind = \"lint\"\ncommand = \"echo 'style: 3 warnings'; exit 1\"\nrequired = false\n",
    );
    let run = t.upgrade_patch(&good_patch(), &["--json"]);
    run.success();
    let gates = run.json()["gates"].clone();
    assert_eq!(gates[1]["name"], "style");
    assert_eq!(gates[1]["status"], "failed");
    assert_eq!(gates[1]["required"], false);
    assert_eq!(run.json()["state"], "promoted");
}

#[test]
fn gate_timeout_kills_the_command_and_fails() {
    let t = Target::python_with_config(
        "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"slow\"\nkind = \"test\"\ncommand = \"sleep 60\"\ntimeout = 1\n",
    );
    let before = t.snapshot();
    let started = std::time::Instant::now();
    t.upgrade_patch(&good_patch(), &[])
        .code(4)
        .stdout_has("gate `slow` timed out");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    t.snapshot().assert_same(&before, "after a timeout");
}

#[test]
fn gate_that_edits_the_tree_is_refused() {
    let t = Target::python_with_config(
        "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"fmt\"\nkind = \"lint\"\ncommand = \"echo '# formatted' >> app.py\"\n",
    );
    let before = t.snapshot();
    t.upgrade_patch(&good_patch(), &[])
        .code(4)
        .stdout_has("gate `fmt` changed tracked files in the staging tree (app.py)");
    t.snapshot().assert_same(&before, "after a tree-editing gate");
}

#[test]
fn gates_see_the_upgrade_in_their_environment() {
    let t = Target::python_with_config(
        "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"env\"\nkind = \"custom\"\ncommand = \"echo id=$GRAFT_UPGRADE_ID gate=$GRAFT_GATE custom=$CUSTOM\"\nenv = { CUSTOM = \"yes\" }\n",
    );
    let run = t.upgrade_patch(&good_patch(), &["--json"]);
    run.success();
    let id = run.json()["id"].as_str().unwrap().to_string();
    let tail = run.json()["gates"][1]["output_tail"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(tail.trim(), format!("id={id} gate=env custom=yes"));
}

#[test]
fn commits_are_by_the_repos_identity_or_by_graft_when_it_has_none() {
    let t = Target::python();
    // No identity anywhere: no global or system git config.
    let empty = t.input("empty.gitconfig", b"");
    let env = [
        ("GIT_CONFIG_GLOBAL", empty.to_str().unwrap()),
        ("GIT_CONFIG_NOSYSTEM", "1"),
    ];
    let patch = t.input("change.diff", good_patch().as_bytes());
    let run = t.graft_env(&["upgrade", "--patch", patch.to_str().unwrap(), "--json"], &env);
    run.success();
    let id = run.json()["id"].as_str().unwrap().to_string();
    let who = || t.git(&["log", "-1", "--format=%an <%ae> / %cn <%ce>"]);
    assert_eq!(who(), "Graft <graft@localhost> / Graft <graft@localhost>");
    // A revert commit too.
    t.graft_env(&["rollback", &id], &env).success();
    assert_eq!(who(), "Graft <graft@localhost> / Graft <graft@localhost>");
    // The repo's own identity, once it has one.
    t.git(&["config", "user.name", "Ada Lovelace"]);
    t.git(&["config", "user.email", "ada@example.org"]);
    let edits = t.input("edits.json", create_notes().as_bytes());
    t.graft_env(&["upgrade", "--edits", edits.to_str().unwrap()], &env)
        .success();
    assert_eq!(
        who(),
        "Ada Lovelace <ada@example.org> / Ada Lovelace <ada@example.org>"
    );
}

fn create_notes() -> String {
    serde_json::json!([{ "op": "create", "path": "notes.txt", "content": "notes\n" }]).to_string()
}

/// The user and host `graft` runs as, asked of the system the way a
/// person would (`id -un`, the kernel's host name).
fn me_at_host() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("run id");
    let user = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    format!("cli:{user}@{host}")
}

#[test]
fn a_commit_names_the_patch_file_and_the_real_user() {
    let t = Target::python();
    let me = me_at_host();
    // No login shell: neither USER nor LOGNAME is set.
    let patch = t.input("change.diff", good_patch().as_bytes());
    let mut cmd = t.graft_command(&["upgrade", "--patch", patch.to_str().unwrap(), "--json"], &[]);
    let out = cmd.env_remove("USER").env_remove("LOGNAME").output().unwrap();
    let run = Run::from(out, &["upgrade"]);
    run.success();
    let id = run.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        t.git(&["log", "-1", "--format=%B"]),
        format!("Apply patch change.diff\n\nGraft-Upgrade: {id}\nRequested-By: {me}")
    );
    assert_eq!(run.json()["title"], "Apply patch change.diff");
    // Edits, from a relative path in a subfolder.
    t.write("changes/notes.json", &create_notes());
    let run = t.graft(&["upgrade", "--edits", "changes/notes.json", "--json"]);
    run.success();
    assert_eq!(t.git(&["log", "-1", "--format=%s"]), "Apply edits notes.json");
    let by: String = t
        .ledger()
        .query_row("SELECT requested_by FROM upgrades WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(by, me);
}

/// The standard Python target with its test gate's command replaced.
fn with_gate_command(command: &str) -> Target {
    Target::python_with_config(&CONFIG.replace("python3 -m unittest -q", command))
}

#[test]
fn a_gate_that_cannot_run_as_set_up_is_a_set_up_problem_not_a_failure_of_the_change() {
    for (command, why) in [
        (
            "pytesttt -q",
            "gate `test` could not run as set up: `pytesttt -q` was not found (exit 127: sh: 1: pytesttt: not found); install what it needs, or correct `command` of the gate `test` in graft.toml",
        ),
        (
            "python3 -m unittest --bogus",
            "gate `test` could not run as set up: `python3 -m unittest --bogus` refused its command line (exit 2: python3 -m unittest: error: unrecognized arguments: --bogus); install what it needs, or correct `command` of the gate `test` in graft.toml",
        ),
    ] {
        let t = with_gate_command(command);
        let before = t.snapshot();
        let run = t.upgrade_patch(&good_patch(), &["--json"]);
        run.code(5);
        let report = run.json();
        assert_eq!(report["failure"]["reason"], "gate_setup:test", "{command}");
        assert_eq!(report["gates"][1]["status"], "misconfigured", "{command}");
        let message = report["failure"]["message"].as_str().unwrap();
        assert!(message.starts_with(why), "{command}:\n{message}");
        t.snapshot().assert_same(&before, command);
        // A gate of the change's own making still fails as the change's.
        let failing = Target::python();
        let run = failing.upgrade_patch(&failing_patch(), &["--json"]);
        run.code(4);
        assert_eq!(run.json()["failure"]["reason"], "gate_failed:test");
    }
}

/// Outcomes that say nothing about a change (its gate could not run, a
/// dry run, input refused at the door, a repo not ready, a person's own
/// rollback) do not teach the risk policy that such changes fail.
#[test]
fn learning_counts_only_what_judged_the_change() {
    let t = with_gate_command("pytesttt -q");
    for _ in 0..3 {
        t.upgrade_patch(&good_patch(), &[]).code(5);
        t.upgrade_patch(&good_patch(), &["--dry-run"]).code(5);
        t.upgrade_edits(
            r#"[{"op":"modify","path":"app.py","search":"no such text","replace":"x"}]"#,
            &[],
        )
        .code(3);
    }
    t.write("app.py", "dirty\n");
    for _ in 0..3 {
        t.upgrade_patch(&good_patch(), &[]).code(5);
    }
    t.git(&["checkout", "--", "app.py"]);
    t.write("graft.toml", CONFIG);
    t.commit("the gate runs now");
    for _ in 0..3 {
        let run = t.upgrade_patch(&good_patch(), &["--json"]);
        run.success();
        t.graft(&["rollback", run.json()["id"].as_str().unwrap()])
            .success();
    }
    // Nine failures of patch upgrades to the top level, three rollbacks:
    // none of them is the change's; the next one is low risk and lands.
    let run = t.upgrade_patch(&good_patch(), &["--json"]);
    run.success();
    let reasons = run.json()["risk_reasons"].to_string();
    assert!(!reasons.contains("similar upgrades"), "{reasons}");
    assert_eq!(run.json()["risk"], "low");
}

#[test]
fn a_risk_raised_by_learning_says_which_setting_turns_that_off() {
    let t = Target::python();
    for _ in 0..3 {
        t.upgrade_patch(&failing_patch(), &[]).code(4);
    }
    let run = t.upgrade_patch(&good_patch(), &["--json"]);
    run.code(11);
    let reasons = run.json()["risk_reasons"].to_string();
    assert!(
        reasons.contains("similar upgrades failed often (patch upgrades 3 of 3; changes at the top level 3 of 3); `[policy] learn_risk = false` turns this off"),
        "{reasons}"
    );
    t.write("graft.toml", &format!("{CONFIG}\n[policy]\nlearn_risk = false\n"));
    t.commit("no learning");
    let run = t.upgrade_patch(&good_patch(), &["--json"]);
    run.success();
    assert_eq!(run.json()["risk"], "low");
}
