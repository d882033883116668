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

/// Added to the agent target's graft.toml: failures on purpose must not
/// make learning hold upgrades; a provider that changes a build file (so
/// its change is held for approval after its gates).
const CRASH_CONFIG: &str = r#"
[policy]
learn_min_outcomes = 1000

[provider.command.bump]
command = "printf '# bumped\\n' >> Cargo.toml && echo v2 > VERSION"
"#;

/// Now, on CLOCK_MONOTONIC (what the kill mark records).
fn monotonic() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

/// What `graft run` is doing when it is killed.
#[derive(Clone, Copy, Debug)]
enum Doing {
    /// Delivering a good upgrade: release, backup, land, deploy, watch.
    Deliver,
    /// Rolling back an upgrade whose release went unhealthy in its watch
    /// window (after writing its data file).
    WatchFails,
    /// Rolling back an older upgrade, whose revert is gated.
    RollbackOlder,
    /// Carrying on an approved upgrade from its staged commit.
    Approve,
}

/// `graft run` with the example agent under load is killed with SIGKILL
/// at journal point `point` while `doing`; a new `graft run` recovers.
/// Then git, the working tree, the data file, the ledger and the live
/// release agree, upgrade `id` ended `ends`, no request failed while a
/// `graft run` was alive, and the next upgrade works.
fn crash_under_graft_run(point: &str, doing: Doing, ends: &str) {
    use crate::support::agent::*;
    let port = free_port();
    // Failures on purpose must not make learning hold upgrades.
    let mut config = agent_config(port) + CRASH_CONFIG;
    if matches!(doing, Doing::WatchFails) {
        // Checked by HTTP, so that a release going bad is seen without it
        // crashing (a crash resets its own connections, which no
        // supervisor can prevent).
        config = config
            .replace("ready = \"notify\"", "ready = \"http\"\nfailures = 2")
            .replace("window = \"1s\"", "window = \"4s\"");
    }
    let t = Target::agent_with(&config);
    let base_tree = t.git(&["rev-parse", "HEAD^{tree}"]);
    let upgrade = |edits: &str| -> String {
        let run = t.upgrade_edits(edits, &["--json"]);
        run.json()["id"].as_str().unwrap().to_string()
    };
    // What is there before graft run is killed.
    let (setup, expected_tree) = match doing {
        Doing::RollbackOlder => {
            let d = t.run_daemon();
            let older = upgrade(&release("v2", None));
            // A later upgrade on top (another file): the revert of the
            // older one makes a tree no gate has seen.
            upgrade(r#"[{"op":"create","path":"later.txt","content":"later\n"}]"#);
            drop(d);
            (Some(older), t.git(&["rev-parse", "HEAD^{tree}"]))
        }
        Doing::Approve => {
            // A provider changes a build file: held after its gates, with
            // its staged commit.
            let d = t.run_daemon();
            let run = t.graft(&["upgrade", "--json", "bump the version"]);
            run.code(11);
            drop(d);
            (
                Some(run.json()["id"].as_str().unwrap().to_string()),
                base_tree.clone(),
            )
        }
        _ => (None, base_tree.clone()),
    };

    let mark = t.path(".graft/killed-at");
    let mut d = t.run_daemon_env(&[
        ("GRAFT_TEST_KILL_AT", point),
        ("GRAFT_TEST_KILL_MARK", mark.to_str().unwrap()),
    ]);
    let l = load(port, 4, true);
    // The load's start on CLOCK_MONOTONIC, which the kill mark uses too.
    let load_start = monotonic() - l.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let writer = matches!(doing, Doing::WatchFails).then(|| {
        let notes = t.path("data/notes.txt");
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if get(port, "/version").is_ok_and(|r| r.1 == "v2\n") {
                    std::fs::write(&notes, "notes written by v2\n").unwrap();
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            false
        })
    });
    let mut asked = match (doing, &setup) {
        (Doing::Deliver, _) => t.graft_command(
            &[
                "upgrade",
                "--edits",
                t.input("e.json", release("v2", None).as_bytes())
                    .to_str()
                    .unwrap(),
            ],
            &[],
        ),
        (Doing::WatchFails, _) => t.graft_command(
            &[
                "upgrade",
                "--edits",
                t.input(
                    "e.json",
                    release("v2", Some("unhealthy_after_ms=1000")).as_bytes(),
                )
                .to_str()
                .unwrap(),
            ],
            &[],
        ),
        (Doing::RollbackOlder, Some(id)) => t.graft_command(&["rollback", id], &[]),
        (Doing::Approve, Some(id)) => t.graft_command(&["approve", id], &[]),
        _ => unreachable!(),
    }
    .spawn()
    .unwrap();
    let status = d.wait_exit(60);
    let killed_at: Duration = std::fs::read_to_string(&mark)
        .ok()
        .and_then(|ns| ns.parse::<u64>().ok())
        .map(|ns| Duration::from_nanos(ns) - load_start)
        .expect("graft run wrote when it was killed");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(status.signal(), Some(9), "{point}: graft run was killed there");
    let _ = asked.wait();
    if let Some(w) = writer {
        assert!(w.join().unwrap(), "{point}: v2 served and wrote the data file");
    }
    let id = setup
        .filter(|_| !matches!(doing, Doing::Deliver | Doing::WatchFails))
        .unwrap_or_else(|| t.last_upgrade());

    // A new graft run recovers, and serves.
    let d = t.run_daemon();
    let back_at = l.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let r = l.stop();
    // Requests that ended while a graft run was alive: before the kill,
    // or sent after the new one served.
    let failed_while = |from: Duration, to: Duration| -> Vec<String> {
        r.samples
            .iter()
            .filter(|s| s.at >= from && s.at + s.latency <= to && s.outcome != graft_load::Outcome::Ok)
            .map(|s| format!("sent at {:?}, {:?} after: {:?}", s.at, s.latency, s.outcome))
            .collect()
    };
    assert_eq!(
        failed_while(Duration::ZERO, killed_at),
        Vec::<String>::new(),
        "{point}: failed before the kill at {killed_at:?}"
    );
    assert_eq!(
        failed_while(back_at, r.duration),
        Vec::<String>::new(),
        "{point}: failed after the restart at {back_at:?}"
    );

    // One consistent state.
    assert!(
        t.open_steps(&id).is_empty(),
        "{point}: open journal steps: {:?}",
        t.open_steps(&id)
    );
    assert_eq!(t.upgrade_row(&id).0, ends, "{point}: {:?}", t.upgrade_row(&id));
    assert_eq!(t.git(&["status", "--porcelain"]), "", "{point}: working tree");
    assert_eq!(
        t.git(&["rev-parse", "HEAD^{tree}"]),
        expected_tree,
        "{point}: the branch's tree"
    );
    let live: String = t
        .ledger()
        .query_row("SELECT commit_id FROM live ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        t.git(&["rev-parse", "refs/graft/live"]),
        live,
        "{point}: git and the ledger agree on what is live"
    );
    assert_eq!(
        t.git(&["rev-parse", &format!("{live}^{{tree}}")]),
        expected_tree,
        "{point}: the live release is the branch's tree"
    );
    assert_eq!(d.status()["supervisor"]["live_commit"], live.as_str(), "{point}");
    assert_eq!(
        get(port, "/version").unwrap().1,
        t.read("VERSION"),
        "{point}: what serves is what git says is live"
    );
    assert_eq!(t.read("data/notes.txt"), "notes before\n", "{point}: data file");

    // And it works again.
    t.upgrade_edits(&release("v9", Some("")), &[]).success();
    assert_eq!(get(port, "/version").unwrap().1, "v9\n", "{point}");
}

macro_rules! crash_under_graft_run_at {
    ($($name:ident: $point:literal while $doing:ident => $ends:literal,)*) => {
        $(#[test] fn $name() { crash_under_graft_run($point, Doing::$doing, $ends); })*
    };
}

crash_under_graft_run_at! {
    run_kill_before_release: "release:before" while Deliver => "failed",
    run_kill_after_release: "release:after" while Deliver => "failed",
    run_kill_before_backup: "backup:before" while Deliver => "failed",
    run_kill_after_backup: "backup:after" while Deliver => "failed",
    run_kill_before_land: "land:before" while Deliver => "failed",
    run_kill_after_branch_moved: "land:merged" while Deliver => "rolled_back",
    run_kill_after_land: "land:after" while Deliver => "rolled_back",
    run_kill_before_deploy: "deploy:before" while Deliver => "rolled_back",
    run_kill_after_deploy: "deploy:after" while Deliver => "rolled_back",
    run_kill_before_watch: "watch:before" while Deliver => "rolled_back",
    run_kill_after_watch: "watch:after" while Deliver => "rolled_back",
    run_kill_before_rollback_revert: "rollback:revert:before" while WatchFails => "rolled_back",
    run_kill_after_rollback_revert: "rollback:revert:after" while WatchFails => "rolled_back",
    run_kill_before_rollback_land: "rollback:land:before" while WatchFails => "rolled_back",
    run_kill_after_rollback_land: "rollback:land:after" while WatchFails => "rolled_back",
    run_kill_before_rollback_switch: "rollback:switch:before" while WatchFails => "rolled_back",
    run_kill_after_rollback_switch: "rollback:switch:after" while WatchFails => "rolled_back",
    run_kill_before_rollback_data: "rollback:data:before" while WatchFails => "rolled_back",
    run_kill_after_rollback_data: "rollback:data:after" while WatchFails => "rolled_back",
    run_kill_before_rollback_gate: "rollback:gate:check:before" while RollbackOlder => "promoted",
    run_kill_after_rollback_gate: "rollback:gate:check:after" while RollbackOlder => "promoted",
    run_kill_before_restage: "restage:before" while Approve => "failed",
    run_kill_after_restage: "restage:after" while Approve => "failed",
}

/// The counts ARCHITECTURE.md gives for the kill matrices are the
/// entries of the lists above.
#[test]
fn the_architecture_counts_the_kill_points_there_are() {
    let source = include_str!("crash.rs");
    let entries = |list: &str| -> usize {
        let start = source.rfind(&format!("{list}! {{\n")).expect(list);
        let body = &source[start..start + source[start..].find("\n}").unwrap()];
        body.lines()
            .filter(|l| l.trim_start().starts_with("kill_") || l.trim_start().starts_with("run_kill_"))
            .count()
    };
    let architecture = include_str!("../ARCHITECTURE.md").replace('\n', " ");
    let architecture = architecture.split_whitespace().collect::<Vec<_>>().join(" ");
    for said in [
        format!(
            "{} journal points of an upgrade, {} of a rollback",
            entries("crash_upgrade_at"),
            entries("crash_rollback_at")
        ),
        format!(
            "{} journal points under `graft run`",
            entries("crash_under_graft_run_at")
        ),
    ] {
        assert!(architecture.contains(&said), "ARCHITECTURE.md should say: {said}");
    }
}
