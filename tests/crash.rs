//! Crash safety: `graft` is killed with SIGKILL at every step of an upgrade
//! and of a rollback; the next start recovers to one consistent state, and
//! git, the working tree, the data files and the ledger all agree
//! (design invariant 2).

use std::time::{Duration, Instant};

use crate::support::*;

/// A second change, to show the repo still works after recovery.
const NEXT: &str =
    "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a + b\n+    return b + a\n";

fn crash_upgrade(point: &str, lands: bool) {
    let t = Target::python();
    let base = t.head();
    let before = t.snapshot();
    let data = t.read("data/state.json");
    let p = t.input("change.diff", good_patch().as_bytes());
    t.graft_env(
        &["upgrade", "--patch", p.to_str().unwrap()],
        &[("GRAFT_TEST_KILL_AT", point)],
    )
    .killed();

    // Restart: any command recovers first.
    t.graft(&["status"]).success().stderr_has("graft: recovered");
    let id = t.last_upgrade();
    assert!(
        t.open_steps(&id).is_empty(),
        "{point}: the journal has open steps after recovery"
    );
    let (state, reason, error) = t.upgrade_row(&id);
    if lands {
        assert_eq!(state, "promoted", "{point}");
        assert_eq!(t.git(&["rev-parse", "HEAD~1"]), base, "{point}");
        let head = t.head();
        assert_eq!(
            t.git(&["rev-parse", &format!("graft/promoted/{id}^{{commit}}")]),
            head,
            "{point}: tag"
        );
        assert_eq!(
            t.git(&["branch", "--list", "graft/*"]),
            "",
            "{point}: branch left"
        );
        assert!(t.read("app.py").contains("Welcome, "), "{point}");
        let landed: Option<String> = t
            .ledger()
            .query_row("SELECT landed_commit FROM upgrades WHERE id = ?1", [&id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            landed.as_deref(),
            Some(head.as_str()),
            "{point}: ledger and git agree"
        );
    } else {
        assert_eq!(state, "failed", "{point}");
        assert_eq!(reason.as_deref(), Some("interrupted"), "{point}");
        assert!(error.unwrap().contains("nothing landed"), "{point}");
        t.snapshot().assert_same(&before, point);
        // Staging holds nothing of the interrupted change.
        if t.path(".graft/staging/app.py").exists() {
            assert_eq!(
                std::fs::read_to_string(t.path(".graft/staging/app.py")).unwrap(),
                APP_PY,
                "{point}"
            );
        }
    }
    assert_eq!(t.git(&["status", "--porcelain"]), "", "{point}: working tree");
    assert_eq!(t.read("data/state.json"), data, "{point}: data file");
    // And it works again.
    t.upgrade_patch(NEXT, &[]).success();
}

macro_rules! crash_upgrade_at {
    ($($name:ident: $point:literal => $lands:expr,)*) => {
        $(#[test] fn $name() { crash_upgrade($point, $lands); })*
    };
}

crash_upgrade_at! {
    kill_before_checkpoint: "checkpoint:before" => false,
    kill_after_checkpoint: "checkpoint:after" => false,
    kill_before_generate: "generate:before" => false,
    kill_after_generate: "generate:after" => false,
    kill_before_stage: "stage:before" => false,
    kill_after_stage: "stage:after" => false,
    kill_before_parse_gate: "gate:parse:before" => false,
    kill_after_parse_gate: "gate:parse:after" => false,
    kill_before_test_gate: "gate:test:before" => false,
    kill_after_test_gate: "gate:test:after" => false,
    kill_before_review: "review:before" => false,
    kill_after_review: "review:after" => false,
    kill_before_release: "release:before" => false,
    kill_after_release: "release:after" => false,
    kill_before_backup: "backup:before" => false,
    kill_after_backup: "backup:after" => false,
    kill_before_land: "land:before" => false,
    kill_after_branch_moved: "land:merged" => true,
    kill_after_land: "land:after" => true,
    kill_before_deploy: "deploy:before" => true,
    kill_after_deploy: "deploy:after" => true,
    kill_before_watch: "watch:before" => true,
    kill_after_watch: "watch:after" => true,
}

fn crash_rollback(point: &str, reverted: bool) {
    let t = Target::python();
    let base_tree = t.git(&["rev-parse", "HEAD^{tree}"]);
    let run = t.upgrade_patch(&good_patch(), &["--json"]);
    run.success();
    let id = run.json()["id"].as_str().unwrap().to_string();
    let landed = t.head();
    // The program writes its data after the upgrade.
    t.write("data/state.json", "{\"visits\": 99}\n");

    t.graft_env(&["rollback", &id], &[("GRAFT_TEST_KILL_AT", point)])
        .killed();
    t.graft(&["status"]).success();
    assert!(t.open_steps(&id).is_empty(), "{point}: open steps after recovery");
    assert_eq!(t.git(&["status", "--porcelain"]), "", "{point}: working tree");
    let state = t.upgrade_row(&id).0;
    if reverted {
        assert_eq!(state, "rolled_back", "{point}");
        assert_eq!(
            t.git(&["rev-parse", "HEAD^{tree}"]),
            base_tree,
            "{point}: tree back to before the upgrade"
        );
        assert_eq!(
            t.read("data/state.json"),
            "{\"visits\": 1}\n",
            "{point}: data restored"
        );
        assert_eq!(
            t.count(&format!(
                "SELECT COUNT(*) FROM rollbacks WHERE upgrade_id = '{id}'"
            )),
            1
        );
    } else {
        assert_eq!(state, "promoted", "{point}");
        assert_eq!(t.head(), landed, "{point}: nothing reverted");
        assert_eq!(
            t.read("data/state.json"),
            "{\"visits\": 99}\n",
            "{point}: data untouched"
        );
        // The rollback can be run again and completes.
        t.graft(&["rollback", &id]).success();
        assert_eq!(t.git(&["rev-parse", "HEAD^{tree}"]), base_tree);
        assert_eq!(t.read("data/state.json"), "{\"visits\": 1}\n");
    }
}

macro_rules! crash_rollback_at {
    ($($name:ident: $point:literal => $reverted:expr,)*) => {
        $(#[test] fn $name() { crash_rollback($point, $reverted); })*
    };
}

crash_rollback_at! {
    kill_rollback_before_revert: "rollback:revert:before" => false,
    kill_rollback_after_revert: "rollback:revert:after" => false,
    kill_rollback_before_land: "rollback:land:before" => false,
    kill_rollback_after_branch_moved: "land:merged" => true,
    kill_rollback_after_land: "rollback:land:after" => true,
    kill_rollback_before_switch: "rollback:switch:before" => true,
    kill_rollback_before_data: "rollback:data:before" => true,
    kill_rollback_after_data: "rollback:data:after" => true,
}

/// Killed from outside while a gate runs: the gate's whole process group
/// must not outlive Graft's recovery.
#[test]
fn kill_during_a_gate_leaves_no_orphan_processes() {
    let t = Target::python_with_config(
        "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"slow\"\nkind = \"test\"\ncommand = \"(sleep 120 &) ; touch ../gate-started; sleep 120\"\n",
    );
    let before = t.snapshot();
    let p = t.input("change.diff", good_patch().as_bytes());
    let mut child = t
        .graft_command(&["upgrade", "--patch", p.to_str().unwrap()], &[])
        .spawn()
        .unwrap();
    let marker = t.path(".graft/gate-started");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the gate never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = t.last_upgrade();
    let pgid: i64 = t
        .ledger()
        .query_row(
            "SELECT json_extract(detail, '$.pgid') FROM steps WHERE upgrade_id = ?1 AND step = 'gate:slow:process'",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();

    t.graft(&["status"]).success();
    // Give the kernel a moment to reap.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !group_alive(pgid as i32),
        "processes of the gate's group {pgid} survived recovery"
    );
    let (state, reason, _) = t.upgrade_row(&id);
    assert_eq!(
        (state.as_str(), reason.as_deref()),
        ("failed", Some("interrupted"))
    );
    t.snapshot().assert_same(&before, "after a kill during a gate");
}

/// Processes whose command line holds `token`.
fn processes_with(token: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(token))
        })
        .collect()
}

/// A gate whose process group cannot be recorded in the ledger (so that
/// recovery could not find it after a crash) does not run on: its group
/// is killed at once and the upgrade fails saying why.
#[test]
fn a_gate_whose_process_group_cannot_be_recorded_does_not_run() {
    let t = Target::python_with_config(
        "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"slow\"\nkind = \"test\"\ncommand = \"(sleep 117.25 &) ; sleep 117.25\"\n",
    );
    let before = t.snapshot();
    let p = t.input("change.diff", good_patch().as_bytes());
    let run = t.graft_env(
        &["upgrade", "--patch", p.to_str().unwrap(), "--json"],
        &[("GRAFT_TEST_FAIL_AT", "gate:process")],
    );
    run.code(4);
    let report = run.json();
    assert_eq!(report["gates"][1]["name"], "slow");
    assert_eq!(report["gates"][1]["status"], "error");
    let output = report["gates"][1]["output_tail"].as_str().unwrap();
    assert!(
        output.contains("its process group could not be recorded in the ledger (GRAFT_TEST_FAIL_AT=gate:process: the write failed on purpose), so it was stopped at once: a gate Graft could not find again after a crash must not run"),
        "{output}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        processes_with("117.25"),
        Vec::<i32>::new(),
        "the gate's processes were stopped"
    );
    t.snapshot()
        .assert_same(&before, "a gate that could not be recorded");
}
