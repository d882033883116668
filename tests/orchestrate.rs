//! Orchestration end to end, on real repos with the real binary: the
//! persistent queue and its order, risk and approvals, expiry, schedules
//! on a controllable clock (`graft schedule tick --now`), retries with
//! the previous failure as context, and learning from outcomes.

use serde_json::{Value, json};

use crate::support::llm::{Api, LlmServer};
use crate::support::*;

/// Edits creating one new file.
fn create(path: &str, content: &str) -> String {
    json!([{ "op": "create", "path": path, "content": content }]).to_string()
}

/// Queue edits (`--queue`): returns the new upgrade's id.
fn queue_edits(t: &Target, edits: &str, priority: &str) -> String {
    let run = t.upgrade_edits(edits, &["--queue", "--priority", priority, "--json"]);
    run.success();
    let v = run.json();
    assert_eq!(v["state"], "queued", "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect()
}

/// The row of a `graft ledger --json` list with this `key`.
fn row(list: &Value, key: &str) -> Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("no `{key}` in {list}"))
}

fn state(t: &Target, id: &str) -> String {
    t.upgrade_row(id).0
}

#[test]
fn the_queue_runs_by_priority_then_age() {
    let t = Target::python();
    let low = queue_edits(&t, &create("notes/low.txt", "low\n"), "3");
    let first = queue_edits(&t, &create("notes/first.txt", "first\n"), "8");
    let second = queue_edits(&t, &create("notes/second.txt", "second\n"), "8");
    // Queued is only queued: nothing ran.
    assert!(!t.path("notes").exists());
    let want = vec![first.clone(), second.clone(), low.clone()];
    assert_eq!(ids(&t.graft(&["queue", "--json"]).json()["queued"]), want);
    assert_eq!(ids(&t.graft(&["status", "--json"]).json()["queued"]), want);
    let human = t.graft(&["status"]);
    human.success().stdout_has(&format!("{first}  Apply edits"));
    assert!(human.stdout.contains("priority  8"), "{}", human.stdout);

    let run = t.graft(&["queue", "run", "--json"]);
    run.success();
    let reports = run.json();
    assert_eq!(ids(&reports), want, "run in priority order, then age");
    for r in reports.as_array().unwrap() {
        assert_eq!(r["state"], "promoted", "{r}");
    }
    // And landed in that order on the branch.
    let landed: Vec<String> = want
        .iter()
        .map(|id| {
            t.ledger()
                .query_row("SELECT landed_commit FROM upgrades WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .unwrap()
        })
        .collect();
    let log = t.git(&["log", "--format=%H", "-3"]);
    let newest_first: Vec<&str> = log.lines().collect();
    assert_eq!(
        newest_first,
        [landed[2].as_str(), landed[1].as_str(), landed[0].as_str()]
    );
    t.graft(&["queue", "run"]).success().stdout_has("nothing queued");
    let status = t.graft(&["status", "--json"]).json();
    assert_eq!(status["completed_today"]["by_state"], json!({ "promoted": 3 }));
    t.graft(&["status"])
        .success()
        .stdout_has("completed today promoted 3");
}

#[test]
fn medium_and_high_risk_wait_for_approval_and_run_or_are_dropped() {
    let t = Target::python();
    let head = t.head();
    // A build file is medium risk: held before anything runs.
    let run = t.upgrade_edits(
        &create(
            "pyproject.toml",
            "[project]\nname = \"app\"\nversion = \"0.1.0\"\n",
        ),
        &["--priority", "7", "--title", "Package the app", "--json"],
    );
    run.code(11);
    let v = run.json();
    let medium = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        (v["state"].as_str(), v["risk"].as_str()),
        (Some("awaiting_approval"), Some("medium"))
    );
    assert!(
        v["risk_reasons"]
            .to_string()
            .contains("medium: changes build file `pyproject.toml`"),
        "{v}"
    );
    assert_eq!(t.head(), head, "nothing landed");
    assert!(!t.path("pyproject.toml").exists());
    // graft status lists it the way a person scans a queue.
    let status = t.graft(&["status"]);
    status.success();
    let line = status
        .stdout
        .lines()
        .find(|l| l.contains(&medium))
        .unwrap_or_else(|| panic!("{}", status.stdout))
        .to_string();
    assert!(line.contains("Package the app"), "{line}");
    assert!(line.contains("priority  7  awaiting approval"), "{line}");
    assert_eq!(
        ids(&t.graft(&["status", "--json"]).json()["awaiting_approval"]),
        vec![medium.clone()]
    );

    // Approved: it runs through every gate and lands.
    let approved = t.graft(&["approve", &medium, "--json"]);
    approved.success();
    assert_eq!(approved.json()["state"], "promoted", "{}", approved.stdout);
    assert!(t.path("pyproject.toml").exists());
    let (by, level): (String, String) = t
        .ledger()
        .query_row(
            "SELECT approved_by, approved_level FROM upgrades WHERE id = ?1",
            [&medium],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(by.starts_with("cli:"), "{by}");
    assert_eq!(level, "medium");
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM approvals WHERE upgrade_id = '{medium}'"
        )),
        1,
        "the approval is audited"
    );

    // CI configuration is high risk; rejected, it never runs.
    let head = t.head();
    let run = t.upgrade_edits(
        &create(".github/workflows/ci.yml", "on: push\njobs: {}\n"),
        &["--json"],
    );
    run.code(11);
    let v = run.json();
    let high = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["risk"], "high");
    assert!(
        v["risk_reasons"]
            .to_string()
            .contains("high: changes CI configuration `.github/workflows/ci.yml`"),
        "{v}"
    );
    let before = t.snapshot();
    t.graft(&["reject", &high, "--reason", "not this week"])
        .success()
        .stdout_has("rejected");
    assert_eq!(state(&t, &high), "cancelled");
    assert!(
        t.upgrade_row(&high)
            .2
            .unwrap_or_default()
            .contains("not this week")
    );
    t.snapshot()
        .assert_same(&before, "a rejected upgrade changes nothing");
    assert_eq!(t.head(), head);
    // It cannot be approved any more, and an unknown id is a clear error.
    t.graft(&["approve", &high])
        .code(2)
        .says(&format!("upgrade {high} is cancelled, not awaiting approval"));
    t.graft(&["approve", "upg_20200101_000000_abcdef"]).code(6);
}

#[test]
fn a_change_that_weakens_tests_is_high_risk_with_that_reason() {
    let t = Target::python();
    let patch = "--- a/test_app.py\n+++ b/test_app.py\n@@ -6,9 +6,6 @@ import app\n class AppTest(unittest.TestCase):\n     def test_add(self):\n         self.assertEqual(app.add(2, 3), 5)\n \n-    def test_greet(self):\n-        self.assertTrue(app.greet(\"Ada\").endswith(\"Ada\"))\n-\n \n if __name__ == \"__main__\":\n";
    let before = t.snapshot();
    let run = t.upgrade_patch(patch, &["--json"]);
    run.code(11);
    let v = run.json();
    assert_eq!(v["risk"], "high", "{v}");
    let reasons = v["risk_reasons"].to_string();
    assert!(
        reasons.contains(
            "high: removes 1 test function(s) (test_greet): a change must not make its own gates easier"
        ),
        "{reasons}"
    );
    assert!(
        reasons.contains("high: removes 1 assertion(s): a change must not make its own gates easier"),
        "{reasons}"
    );
    t.snapshot().assert_same(&before, "held, nothing ran");
    // Auto-approving low risk does not let it through, nor does a good
    // track record: the floor of a weakened test is high.
    let t2 = Target::python_with_config(&format!("{CONFIG}\n[policy]\nauto_approve_medium_risk = true\n"));
    let run = t2.upgrade_patch(patch, &["--json"]);
    run.code(11);
    assert_eq!(run.json()["risk"], "high");
}

#[test]
fn an_approval_not_given_in_time_expires() {
    let t = Target::python_with_config(&format!("{CONFIG}\n[policy]\napproval_timeout = \"1h\"\n"));
    let run = t.upgrade_edits(&create("setup.py", "print('setup')\n"), &["--json"]);
    run.code(11);
    let id = run.json()["id"].as_str().unwrap().to_string();
    // Half an hour on: still waiting.
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    t.graft(&["schedule", "tick", "--now", &soon])
        .success()
        .stdout_has("nothing was due");
    assert_eq!(state(&t, &id), "awaiting_approval");
    let later = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let tick = t.graft(&["schedule", "tick", "--now", &later, "--json"]);
    tick.success();
    assert_eq!(tick.json()["expired"], json!([id]));
    assert_eq!(state(&t, &id), "cancelled");
    let (_, reason, error) = t.upgrade_row(&id);
    assert_eq!(reason.as_deref(), Some("expired"));
    assert!(
        error
            .unwrap_or_default()
            .contains("longer than [policy] approval_timeout, 1h"),
        "the message says why"
    );
    t.graft(&["approve", &id])
        .code(2)
        .says("is cancelled, not awaiting approval");
    assert!(!t.path("setup.py").exists());
    // A bad clock is a usage error that changes nothing.
    let before = t.snapshot();
    t.graft(&["schedule", "tick", "--now", "next tuesday"])
        .code(2)
        .says("--now `next tuesday` is not an RFC 3339 time");
    assert_eq!(state(&t, &id), "cancelled");
    before.assert_same(&t.snapshot(), "a bad clock");
}

/// A function lizard would count at cyclomatic complexity 33 (each `if`
/// and each `and`).
fn complex_py() -> String {
    let mut s = String::from("def route(kind, n):\n");
    for i in 0..16 {
        s.push_str(&format!("    if kind == {i} and n > {i}:\n        return {i}\n"));
    }
    s.push_str("    return -1\n");
    s
}

#[test]
fn a_weekly_scan_and_a_daily_autofix_fire_on_the_clock_and_queue_work() {
    let t = Target::python_with_config(&format!(
        "{CONFIG}\n[schedule]\nscan = \"weekly\"\nautofix = \"daily\"\n\n[policy]\napproval_timeout = \"30d\"\n"
    ));
    t.write("router.py", &complex_py());
    t.commit("router");
    let tick = |now: &str| {
        let run = t.graft(&["schedule", "tick", "--now", now, "--json"]);
        run.success();
        run.json()
    };
    // Sunday: the first tick only sets the baseline.
    let v = tick("2026-11-22T12:00:00Z");
    assert_eq!(v["ran"], json!([]));
    assert_eq!(t.count("SELECT COUNT(*) FROM scans"), 0);
    // Monday 04:00 UTC: both due (weekly is Mondays 03:00, daily 03:00).
    let v = tick("2026-11-23T04:00:00Z");
    let ran: Vec<&str> = v["ran"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["schedule"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["scan", "autofix"], "{v}");
    assert_eq!(t.count("SELECT COUNT(*) FROM scans"), 1);
    let scan = &v["ran"][0]["detail"];
    let queued = scan["queued"].as_array().unwrap();
    assert_eq!(queued.len(), 1, "{scan}");
    let sug = queued[0]["id"].as_str().unwrap();
    let (title, source, kind): (String, String, String) = t
        .ledger()
        .query_row(
            "SELECT title, source, kind FROM upgrades WHERE id = ?1",
            [sug],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(title.starts_with("Simplify `route` (complexity 33"), "{title}");
    assert_eq!((source.as_str(), kind.as_str()), ("schedule", "suggestion"));
    assert_eq!(
        t.count("SELECT COUNT(*) FROM upgrades WHERE kind = 'autofix' AND source = 'schedule' AND state = 'queued'"),
        1
    );
    // The same hour again: nothing is due twice.
    assert_eq!(tick("2026-11-23T05:00:00Z")["ran"], json!([]));
    // Tuesday: only the daily autofix.
    let v = tick("2026-11-24T03:30:00Z");
    assert_eq!(v["ran"].as_array().unwrap().len(), 1);
    assert_eq!(v["ran"][0]["schedule"], "autofix");
    // A week on: the scan again; its finding already waits, so it is not
    // queued twice.
    let v = tick("2026-11-30T03:10:00Z");
    let scan = v["ran"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["schedule"] == "scan")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(scan["due"], "2026-11-30T03:00:00Z");
    assert_eq!(scan["detail"]["already_waiting"], 1, "{scan}");
    assert_eq!(scan["detail"]["queued"], json!([]));
    assert_eq!(t.count("SELECT COUNT(*) FROM scans"), 2);
    // graft schedule shows the last and next runs.
    let s = t.graft(&["schedule", "--json"]).json();
    assert_eq!(s[0]["schedule"], "scan");
    assert_eq!(s[0]["every"], "weekly");
    assert_eq!(s[0]["next"], "2026-12-07T03:00:00Z");
    // So does graft status, with the last scan.
    let status = t.graft(&["status", "--json"]).json();
    assert_eq!(status["scans"]["next"], "2026-12-07T03:00:00Z");
    assert_eq!(status["scans"]["last"]["suggestions"], 1, "{status}");
    t.graft(&["status"])
        .success()
        .stdout_has("scans last ")
        .stdout_has("next 2026-12-07T03:00:00Z");
}

/// A function of `branches` `if … and …` lines: cyclomatic complexity
/// 2 × branches + 1 (16: 33, priority 7; 9: 19, priority 5).
fn branching_py(name: &str, branches: usize) -> String {
    let mut s = format!("def {name}(kind, n):\n");
    for i in 0..branches {
        s.push_str(&format!("    if kind == {i} and n > {i}:\n        return {i}\n"));
    }
    s.push_str("    return -1\n\n\n");
    s
}

/// `graft schedule tick --now NOW --json`, each run's detail by schedule.
fn tick(t: &Target, now: &str) -> std::collections::BTreeMap<String, Value> {
    let run = t.graft(&["schedule", "tick", "--now", now, "--json"]);
    run.success();
    run.json()["ran"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["schedule"].as_str().unwrap().to_string(), r["detail"].clone()))
        .collect()
}

/// The titles of the upgrades a scheduled scan queued.
fn queued_titles(t: &Target, detail: &Value) -> Vec<String> {
    let mut titles: Vec<String> = detail["queued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            t.ledger()
                .query_row(
                    "SELECT title FROM upgrades WHERE id = ?1",
                    [q["id"].as_str().unwrap()],
                    |r| r.get(0),
                )
                .unwrap()
        })
        .collect();
    titles.sort();
    titles
}

#[test]
fn a_scheduled_scan_queues_only_suggestions_at_or_above_min_priority() {
    let t = Target::python_with_config(&format!(
        "{CONFIG}\n[schedule]\nscan = \"daily\"\nmin_priority = 6\n\n[policy]\napproval_timeout = \"30d\"\n"
    ));
    t.write(
        "router.py",
        &format!("{}{}", branching_py("route", 16), branching_py("small", 9)),
    );
    t.commit("router");
    assert!(tick(&t, "2031-03-02T12:00:00Z").is_empty(), "the baseline");
    let ran = tick(&t, "2031-03-03T04:00:00Z");
    let scan = &ran["scan"];
    // `route` is priority 7, `small` 5 (and so is the duplicated code).
    let titles = queued_titles(&t, scan);
    assert_eq!(titles.len(), 1, "{scan}");
    assert!(titles[0].starts_with("Simplify `route`"), "{titles:?}");
    assert_eq!(scan["below_min_priority"], 2, "{scan}");
    assert_eq!(scan["suggestions"], 3, "{scan}");
    assert_eq!(t.count("SELECT COUNT(*) FROM upgrades"), 1);
}

#[test]
fn schedules_create_at_most_max_upgrades_per_day_scans_and_autofixes_alike() {
    // A scan twice a day, an autofix once; dates years from the real one:
    // the day is counted by the schedules' clock (`--now`), not by when
    // the rows were written.
    let t = Target::python_with_config(&format!(
        "{CONFIG}\n[schedule]\nscan = \"0 3,15 * * *\"\nautofix = \"daily\"\nmax_upgrades_per_day = 2\nmin_priority = 1\n\n[policy]\napproval_timeout = \"30d\"\n"
    ));
    let code: String = ["route", "dispatch", "resolve"]
        .iter()
        .map(|name| branching_py(name, 16 + name.len()))
        .collect();
    t.write("router.py", &code);
    t.commit("router");
    assert!(tick(&t, "2031-03-02T12:00:00Z").is_empty(), "the baseline");
    let autofixes = || t.count("SELECT COUNT(*) FROM upgrades WHERE kind = 'autofix'");
    let bound = "`[schedule] max_upgrades_per_day` (2)";
    // Day one, 04:00: the scan takes the day's two; the autofix waits.
    let ran = tick(&t, "2031-03-03T04:00:00Z");
    let scan = &ran["scan"];
    // Three complex functions, and the code they repeat.
    assert_eq!(scan["suggestions"], 4, "{scan}");
    assert_eq!(scan["queued"].as_array().unwrap().len(), 2, "{scan}");
    assert!(
        ids(&scan["queued"])
            .iter()
            .all(|id| id.starts_with("upg_20310303_040000_")),
        "{scan}"
    );
    assert_eq!(scan["left_for_later"], 2, "{scan}");
    assert!(
        scan["note"].as_str().unwrap_or_default().contains(bound),
        "{scan}"
    );
    let autofix = &ran["autofix"];
    assert_eq!(autofix["queued"], json!([]), "{autofix}");
    assert_eq!(autofix["left_for_later"], 1, "{autofix}");
    let note = autofix["note"].as_str().unwrap_or_default();
    assert!(note.contains(bound) && note.contains("not queued"), "{autofix}");
    // 16:00, the same day by that clock: the second scan queues nothing.
    let ran = tick(&t, "2031-03-03T16:00:00Z");
    let scan = &ran["scan"];
    assert_eq!(scan["queued"], json!([]), "{scan}");
    assert_eq!(
        (&scan["already_waiting"], &scan["left_for_later"]),
        (&json!(2), &json!(2)),
        "{scan}"
    );
    assert!(
        scan["note"].as_str().unwrap_or_default().contains(bound),
        "{scan}"
    );
    // Day two, 04:30: the first two are past 24 hours; two more.
    let ran = tick(&t, "2031-03-04T04:30:00Z");
    assert_eq!(ran["scan"]["queued"].as_array().unwrap().len(), 2, "{ran:?}");
    assert_eq!(ran["autofix"]["left_for_later"], 1, "{ran:?}");
    assert_eq!(autofixes(), 0);
    // Day three: every finding waits already, so the autofix has the day.
    let ran = tick(&t, "2031-03-05T05:00:00Z");
    assert_eq!(ran["scan"]["queued"], json!([]), "{ran:?}");
    assert_eq!(ran["autofix"]["queued"].as_array().unwrap().len(), 1, "{ran:?}");
    assert_eq!(autofixes(), 1);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM upgrades WHERE source = 'schedule'"),
        5,
        "2 + 2 + 1, never more than two in 24 hours"
    );
}

/// The Python target with an LLM provider at `server`, one round per
/// upgrade (no repair rounds), and `policy` under `[policy]`.
fn llm_target(server: &LlmServer, policy: &str) -> Target {
    Target::python_with_config(&format!(
        "{CONFIG}\n[policy]\n{policy}\n\n[provider]\ndefault = \"test\"\nmax_retries = 1\n\n[provider.llm.test]\napi = \"openai\"\nmodel = \"gpt-4o-mini\"\nbase_url = \"{}\"\napi_key_env = \"GRAFT_TEST_KEY\"\ntimeout = \"20s\"\n",
        server.base_url()
    ))
}

/// A reply changing `add` to return `expr`.
fn add_reply(expr: &str) -> String {
    format!(
        "app.py\n```python\n<<<<<<< SEARCH\n    return a + b\n=======\n    return {expr}\n>>>>>>> REPLACE\n```\n"
    )
}

fn attempts(t: &Target) -> Vec<(String, String, i64, Option<String>)> {
    let conn = t.ledger();
    let mut stmt = conn
        .prepare("SELECT id, state, attempt, retry_of FROM upgrades ORDER BY created_at, attempt")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn retries_carry_the_failure_and_stop_at_the_limit_or_when_stuck() {
    // Three different failures: the first try and two retries, no more.
    let server = LlmServer::start(Api::Openai);
    let t = llm_target(&server, "max_upgrade_retries = 2");
    for expr in ["a - b", "a.b", "undefined_name"] {
        server.reply(&add_reply(expr));
    }
    let run = t.graft_env(
        &["upgrade", "make add faster", "--json"],
        &[("GRAFT_TEST_KEY", "k")],
    );
    run.code(4);
    let rows = attempts(&t);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 == "failed"), "{rows:?}");
    assert_eq!(rows.iter().map(|r| r.2).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(rows[1].3.as_deref(), Some(rows[0].0.as_str()));
    assert_eq!(rows[2].3.as_deref(), Some(rows[0].0.as_str()));
    // Each retry told the provider what failed before.
    let sent = server.requests();
    assert_eq!(sent.len(), 3);
    let second = sent[1].messages().last().unwrap().1.clone();
    assert!(
        second.contains("-1 != 5"),
        "the first failure is context: {second}"
    );
    let third = sent[2].messages().last().unwrap().1.clone();
    assert!(third.contains("has no attribute 'b'"), "{third}");
    assert_eq!(t.read("app.py"), APP_PY, "nothing landed");

    // The same failure twice: stuck, stopped before the limit.
    let server = LlmServer::start(Api::Openai);
    let t = llm_target(&server, "max_upgrade_retries = 5");
    for _ in 0..2 {
        server.reply(&add_reply("a - b"));
    }
    let run = t.graft_env(&["upgrade", "make add faster"], &[("GRAFT_TEST_KEY", "k")]);
    run.code(4);
    let rows = attempts(&t);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(server.requests().len(), 2, "no third call");
    // The stop is recorded as such (and counted as its own cause).
    assert_eq!(t.upgrade_row(&rows[1].0).1.as_deref(), Some("stuck"));
    assert_eq!(t.upgrade_row(&rows[0].0).1.as_deref(), Some("gate_failed:test"));
}

/// Storage code with its own tests, and patches that break them.
const STORE_PY: &str =
    "def put(db, k, v):\n    db[k] = v\n    return db\n\n\ndef get(db, k):\n    return db.get(k)\n";
const STORE_TEST_PY: &str = "import unittest\n\nfrom storage import store\n\n\nclass StoreTest(unittest.TestCase):\n    def test_put_get(self):\n        self.assertEqual(store.get(store.put({}, 'a', 1), 'a'), 1)\n\n\nif __name__ == \"__main__\":\n    unittest.main()\n";

fn store_patch(line: &str) -> String {
    format!(
        "--- a/storage/store.py\n+++ b/storage/store.py\n@@ -1,3 +1,3 @@\n def put(db, k, v):\n-    db[k] = v\n+    {line}\n     return db\n"
    )
}

#[test]
fn failures_in_one_module_raise_its_risk_and_bring_a_recommendation() {
    let t = Target::python();
    t.write("storage/__init__.py", "");
    t.write("storage/store.py", STORE_PY);
    t.write("test_store.py", STORE_TEST_PY);
    t.commit("storage");
    // Before any outcome: a one-line change there is low risk.
    let queued = t.upgrade_patch(&store_patch("db[k] = v + 0"), &["--queue", "--json"]);
    queued.success();
    let v = queued.json();
    assert_eq!(v["risk"], "low", "{v}");
    t.graft(&["cancel", v["id"].as_str().unwrap()]).success();
    // Three edits there break its tests.
    for bad in ["db[k] = None", "db[k] = -v", "db[k] = [v]"] {
        let edits = json!([{ "op": "modify", "path": "storage/store.py", "search": "    db[k] = v\n", "replace": format!("    {bad}\n") }]);
        t.upgrade_edits(&edits.to_string(), &[]).code(4);
    }
    // The next upgrade there is rated a level higher, and says why.
    let before = t.snapshot();
    let run = t.upgrade_patch(&store_patch("db[k] = v"), &["--json"]);
    run.code(11);
    let v = run.json();
    assert_eq!(v["risk"], "medium", "{v}");
    let reasons = v["risk_reasons"].to_string();
    assert!(
        reasons.contains("medium: similar upgrades failed often (changes to storage/ 3 of 3)"),
        "{reasons}"
    );
    t.snapshot().assert_same(&before, "held for approval");
    // Elsewhere nothing changed: a patch to app.py is still low risk.
    let other = t.upgrade_patch(&good_patch(), &["--json"]);
    other.success();
    assert_eq!(other.json()["risk"], "low");
    // graft ledger shows the statistics and the recommendation.
    let ledger = t.graft(&["ledger"]);
    ledger.success();
    ledger.stdout_has("success by module");
    ledger.stdout_has(
        "tests fail after changes to storage/: add coverage before auto-approving there (failed 3 of 3; upgrades there are now rated a level riskier)",
    );
    let v = t.graft(&["ledger", "--json"]).json();
    let storage = row(&v["learning"]["by_module"], "storage");
    assert_eq!(
        (storage["total"].as_u64(), storage["failed"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(storage["top_cause"][0], "gate test failed");
}

/// The steps `land` began for an upgrade (twice would mean it ran twice).
fn lands(t: &Target, id: &str) -> i64 {
    t.count(&format!(
        "SELECT COUNT(*) FROM steps WHERE upgrade_id = '{id}' AND step = 'land' AND phase = 'begin'"
    ))
}

#[test]
fn graft_run_works_the_queue_announces_approvals_and_a_restart_loses_nothing() {
    use crate::support::agent::*;
    use crate::support::api::*;
    let receiver = Receiver::start();
    let (t, port) = crate::support::api::api_target(&format!(
        "[[webhooks]]\nname = \"ops\"\nurl = \"{}\"\nformat = \"json\"\nevents = [\"needs_approval\", \"promoted\"]\nmax_backoff = \"1s\"\n",
        receiver.url("/ops")
    ));
    // Queued while graft run is down: it works them in priority order.
    let docs = queue_edits(&t, &crate::support::api::docs_edit("# agent, documented\n"), "2");
    let v2 = queue_edits(&t, &version_edits("v2"), "9");
    // A build file: held for approval, announced.
    let manifest = json!([{ "op": "modify", "path": "Cargo.toml", "search": "[package]\n", "replace": "[package]\n# the example agent\n" }]);
    let run = t.upgrade_edits(&manifest.to_string(), &["--json"]);
    run.code(11);
    let held = run.json()["id"].as_str().unwrap().to_string();

    let d = crate::support::api::start(&t);
    let api = Api::of(&d);
    assert_eq!(api.wait_ended(&v2)["upgrade"]["state"], "promoted");
    assert_eq!(api.wait_ended(&docs)["upgrade"]["state"], "promoted");
    assert_eq!(hello(port), "hello from v2\n");
    let finished = |id: &str| -> String {
        t.ledger()
            .query_row("SELECT finished_at FROM upgrades WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert!(
        finished(&v2) < finished(&docs),
        "priority 9 ran before priority 2"
    );
    assert_eq!(
        api.get(&format!("/v1/upgrades/{held}")).json()["upgrade"]["state"],
        "awaiting_approval"
    );
    let announced = receiver.wait_at("/ops", 1, 30);
    assert_eq!(announced[0].event, "needs_approval");
    assert_eq!(announced[0].body["upgrade"]["id"], held.as_str());

    // Approved over the API: the daemon's runner takes it.
    let r = api.signed("POST", &format!("/v1/upgrades/{held}/approve"), "");
    r.expect(200);
    assert_eq!(r.json()["approved_by"], "api");
    assert_eq!(api.wait_ended(&held)["upgrade"]["state"], "promoted");
    assert!(t.read("Cargo.toml").contains("# the example agent"));

    // Two more: the daemon dies while the first is live in its watch
    // window. After a restart nothing is lost and nothing runs twice.
    let first = api.signed(
        "POST",
        "/v1/upgrades",
        &edits_request(&version_edits("v3"), r#""priority":9"#),
    );
    first.expect(202);
    let first = first.json()["id"].as_str().unwrap().to_string();
    let second = api.signed(
        "POST",
        "/v1/upgrades",
        &edits_request(&version_edits("v4"), r#""priority":1"#),
    );
    second.expect(202);
    let second = second.json()["id"].as_str().unwrap().to_string();
    eventually(60, "the first upgrade is in its watch window", || {
        state(&t, &first) == "watching"
    });
    let mut d = d;
    d.kill9();
    // Its window may have closed between the wait and the kill: what the
    // ledger held at the kill says how the restart must resolve it.
    let at_kill = state(&t, &first);
    assert_eq!(state(&t, &second), "queued", "it had not started");
    let d = crate::support::api::start(&t);
    let api = Api::of(&d);
    let first_end = api.wait_ended(&first)["upgrade"]["state"]
        .as_str()
        .unwrap()
        .to_string();
    let expected = if at_kill == "watching" {
        "rolled_back"
    } else {
        "promoted"
    };
    assert_eq!(
        first_end, expected,
        "the interrupted upgrade was resolved (it was {at_kill} at the kill)"
    );
    assert_eq!(api.wait_ended(&second)["upgrade"]["state"], "promoted");
    assert_eq!(hello(port), "hello from v4\n");
    for id in [&docs, &v2, &held, &first, &second] {
        assert!(lands(&t, id) <= 1, "{id} landed once at most");
    }
    assert_eq!(lands(&t, &second), 1);
    assert_eq!(t.count("SELECT COUNT(*) FROM upgrades WHERE state = 'queued'"), 0);
}

#[test]
fn what_a_provider_wrote_is_judged_after_the_gates_and_held_when_risky() {
    let server = LlmServer::start(Api::Openai);
    let t = llm_target(&server, "");
    // Asked for one thing, the model also drops a test: the gates pass
    // (fewer tests!), but the staged diff weakens them.
    server.reply(
        "test_app.py\n```python\n<<<<<<< SEARCH\n    def test_greet(self):\n        self.assertTrue(app.greet(\"Ada\").endswith(\"Ada\"))\n\n=======\n>>>>>>> REPLACE\n```\n",
    );
    let head = t.head();
    let run = t.graft_env(
        &["upgrade", "tidy the tests", "--json"],
        &[("GRAFT_TEST_KEY", "k")],
    );
    run.code(11);
    let report = run.json();
    assert_eq!(report["state"], "awaiting_approval", "{report}");
    assert_eq!(report["risk"], "high");
    assert!(
        report["risk_reasons"]
            .to_string()
            .contains("removes 1 test function(s) (test_greet)"),
        "{report}"
    );
    let id = report["id"].as_str().unwrap().to_string();
    assert!(
        report["gates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["status"] == "passed")
    );
    assert_eq!(t.head(), head, "held before landing");
    assert!(t.read("test_app.py").contains("test_greet"));
    // Someone commits meanwhile; approval replays the reviewed change on
    // top and gates it again, without asking the model again.
    t.write("NOTES.md", "notes\n");
    t.commit("notes");
    let approved = t.graft_env(&["approve", &id, "--json"], &[("GRAFT_TEST_KEY", "k")]);
    approved.success();
    assert_eq!(approved.json()["state"], "promoted", "{}", approved.stdout);
    assert!(!t.read("test_app.py").contains("test_greet"));
    assert!(t.path("NOTES.md").exists());
    assert_eq!(server.requests().len(), 1, "the reviewed change, not a new one");
    let gate_runs = t.count(&format!(
        "SELECT COUNT(*) FROM steps WHERE upgrade_id = '{id}' AND step = 'gate:test' AND phase = 'begin'"
    ));
    assert_eq!(
        gate_runs, 2,
        "gated before the hold and again on the moved branch"
    );
}

#[test]
fn every_upgrade_records_the_figures_of_its_files_before_and_after() {
    let t = Target::python();
    // A third branch in `add`: one more point of complexity, one more line.
    let patch = "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,4 @@\n def add(a, b):\n+    if a is None:\n+        return b\n     return a + b\n";
    let run = t.upgrade_patch(patch, &["--json"]);
    run.success();
    let id = run.json()["id"].as_str().unwrap().to_string();
    let figures = |phase: &str| -> (i64, i64, i64) {
        t.ledger()
            .query_row(
                "SELECT functions, complexity, loc FROM file_metrics WHERE upgrade_id = ?1 AND path = 'app.py' AND phase = ?2",
                [&id, phase],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    };
    assert_eq!(figures("before"), (2, 2, 4));
    assert_eq!(figures("after"), (2, 3, 6));
    let v = t.graft(&["ledger", "--json"]).json();
    let total = row(&v["learning"]["improvement"], "total");
    assert_eq!(total["upgrades"], 1);
    assert_eq!(
        (
            total["before"]["complexity"].as_i64(),
            total["after"]["complexity"].as_i64()
        ),
        (Some(2), Some(3))
    );
    t.graft(&["ledger"])
        .success()
        .stdout_has("total          1 upgrade(s)  complexity 2 → 3  lines 4 → 6");
}

#[test]
fn a_crash_while_an_approved_upgrade_resumes_recovers_with_nothing_landed() {
    for point in ["checkpoint:after", "restage:after", "land:before"] {
        let server = LlmServer::start(Api::Openai);
        let t = llm_target(&server, "");
        server.reply(
            "test_app.py\n```python\n<<<<<<< SEARCH\n        self.assertEqual(app.add(2, 3), 5)\n=======\n        pass\n>>>>>>> REPLACE\n```\n",
        );
        let run = t.graft_env(&["upgrade", "simplify", "--json"], &[("GRAFT_TEST_KEY", "k")]);
        run.code(11);
        let id = run.json()["id"].as_str().unwrap().to_string();
        let before = t.snapshot();
        t.graft_env(&["approve", &id], &[("GRAFT_TEST_KILL_AT", point)])
            .killed();
        t.assert_recovered_interrupted(&id, &before, point);
        assert_eq!(t.git(&["status", "--porcelain"]), "", "{point}: working tree");
        // And the repo works again.
        t.upgrade_patch(&good_patch(), &[]).success();
    }
}

#[test]
fn an_unknown_id_exits_6_through_graft_run_as_without_it() {
    let (t, _port) = Target::agent();
    let unknown = "upg_20200101_000000_abcdef";
    let by_hand = |args: &[&str]| {
        let run = t.graft(args);
        run.code(6);
        run
    };
    // Without graft run first, then through it: the same exit code.
    by_hand(&["approve", unknown]);
    by_hand(&["reject", unknown]);
    let _d = t.run_daemon();
    for command in ["approve", "reject", "rollback", "cancel"] {
        let run = by_hand(&[command, unknown, "--json"]);
        assert_eq!(run.json()["error"]["code"], "not_found", "{command}");
        by_hand(&[command, unknown]).stderr_has(&format!("no upgrade `{unknown}`"));
    }
}

#[test]
fn status_lists_what_waits_newest_first_whether_queued_or_held() {
    let t = Target::python();
    let low = queue_edits(&t, &create("notes/low.txt", "low\n"), "3");
    // A build file is held for approval.
    let run = t.upgrade_edits(
        &create("pyproject.toml", "[project]\nname = \"app\"\n"),
        &["--json"],
    );
    run.code(11);
    let held = run.json()["id"].as_str().unwrap().to_string();
    let high = queue_edits(&t, &create("notes/high.txt", "high\n"), "9");
    let status = t.graft(&["status", "--json"]).json();
    assert_eq!(
        ids(&status["pending"]),
        vec![high.clone(), held.clone(), low.clone()]
    );
    assert_eq!(ids(&status["queued"]), vec![high, low]);
    assert_eq!(ids(&status["awaiting_approval"]), vec![held]);
    assert_eq!(ids(&status["in_progress"]), Vec::<String>::new());
}
