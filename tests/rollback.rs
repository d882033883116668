//! Rolling back: a revert commit (history kept), the previous tree, the
//! data files as they were before the upgrade.

use crate::support::*;

#[test]
fn rollback_restores_the_previous_tree_and_data_files() {
    let t = Target::python();
    let base = t.head();
    let base_files = t.snapshot().files;
    let run = t.upgrade_patch(&good_patch(), &["--json"]);
    run.success();
    let id = run.json()["id"].as_str().unwrap().to_string();
    let landed = t.head();
    t.write("data/state.json", "{\"visits\": 1000}\n");

    t.graft(&["rollback", &id])
        .success()
        .stdout_has("rolled back")
        .stdout_has("data/state.json");

    // A new commit that reverts; history is not rewritten.
    assert_eq!(t.git(&["rev-parse", "HEAD~1"]), landed);
    assert_eq!(t.git(&["rev-parse", "HEAD~2"]), base);
    assert!(
        t.git(&["log", "-1", "--format=%B"])
            .contains(&format!("Graft-Rollback: {id}"))
    );
    assert_eq!(
        t.git(&["rev-parse", "HEAD^{tree}"]),
        t.git(&["rev-parse", &format!("{base}^{{tree}}")])
    );
    assert_eq!(
        t.snapshot().files,
        base_files,
        "the files are as before the upgrade"
    );
    assert_eq!(t.git(&["status", "--porcelain"]), "");

    let (state, reason, _) = t.upgrade_row(&id);
    assert_eq!(
        (state.as_str(), reason.as_deref()),
        ("rolled_back", Some("manual_rollback"))
    );
    let (cause, revert, restored): (String, String, bool) = t
        .ledger()
        .query_row(
            "SELECT cause, revert_commit, data_restored FROM rollbacks WHERE upgrade_id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((cause.as_str(), revert, restored), ("manual", t.head(), true));

    // Twice is refused, clearly.
    t.graft(&["rollback", &id])
        .code(5)
        .stderr_has("already rolled back");
}

#[test]
fn rollback_restores_a_sqlite_data_file() {
    let t = Target::python_with_config("[target]\nbranch = \"main\"\ndata = [\"data/app.db\"]\n");
    let db = t.path("data/app.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('before');",
        )
        .unwrap();
    }
    let run = t.upgrade_patch(&good_patch(), &["--json"]);
    run.success();
    let id = run.json()["id"].as_str().unwrap().to_string();
    // The live program keeps the database open and writes to it.
    let live = rusqlite::Connection::open(&db).unwrap();
    live.execute("INSERT INTO notes VALUES ('after')", []).unwrap();

    t.graft(&["rollback", &id]).success();
    let notes: Vec<String> = {
        let mut stmt = live.prepare("SELECT t FROM notes ORDER BY rowid").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(
        notes,
        ["before"],
        "the open connection sees the restored database"
    );
}

#[test]
fn rollback_of_an_older_upgrade_is_gated() {
    let t = Target::python();
    let first = t.upgrade_patch(&good_patch(), &["--json"]);
    first.success();
    let first_id = first.json()["id"].as_str().unwrap().to_string();
    // A later upgrade that depends on the first: its test needs the new greeting.
    let patch = "--- a/test_app.py\n+++ b/test_app.py\n@@ -9,7 +9,7 @@ class AppTest(unittest.TestCase):\n         self.assertEqual(app.add(2, 3), 5)\n \n     def test_greet(self):\n-        self.assertTrue(app.greet(\"Ada\").endswith(\"Ada\"))\n+        self.assertEqual(app.greet(\"Ada\"), \"Welcome, Ada\")\n \n \n if __name__ == \"__main__\":\n";
    t.upgrade_patch(patch, &[]).success();
    let before = t.snapshot();
    // Reverting the first alone would break the second's test: refused.
    t.graft(&["rollback", &first_id])
        .code(4)
        .stderr_has("rolling back")
        .stderr_has("breaks the gates");
    t.snapshot().assert_same(&before, "after a refused rollback");
    assert_eq!(t.upgrade_row(&first_id).0, "promoted");
}

#[test]
fn rollback_of_an_unlanded_upgrade_discards_its_branch() {
    let t = Target::python();
    t.upgrade_patch(&failing_patch(), &[]).code(4);
    let id = t.last_upgrade();
    assert!(!t.git(&["branch", "--list", &format!("graft/{id}")]).is_empty());
    let before = t.snapshot();
    t.graft(&["rollback", &id]).success().stdout_has("never landed");
    assert_eq!(t.git(&["branch", "--list", "graft/*"]), "");
    t.snapshot().assert_same(&before, "after discarding");
    assert_eq!(t.upgrade_row(&id).0, "failed", "a discarded upgrade stays failed");
}

#[test]
fn rollback_refuses_a_dirty_tree() {
    let t = Target::python();
    let run = t.upgrade_patch(&good_patch(), &["--json"]);
    let id = run.json()["id"].as_str().unwrap().to_string();
    t.write("test_app.py", "# local edit\n");
    let before = t.snapshot();
    t.graft(&["rollback", &id])
        .code(5)
        .stderr_has("uncommitted changes");
    t.snapshot()
        .assert_same(&before, "after refusing to roll back on a dirty tree");
}

#[test]
fn cancel_stops_a_running_upgrade() {
    let t = Target::python_with_config(
        "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"slow\"\nkind = \"test\"\ncommand = \"touch ../gate-started; sleep 60\"\n",
    );
    let before = t.snapshot();
    let p = t.input("change.diff", good_patch().as_bytes());
    let child = t
        .graft_command(&["upgrade", "--patch", p.to_str().unwrap()], &[])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let marker = t.path(".graft/gate-started");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !marker.exists() {
        assert!(std::time::Instant::now() < deadline, "the gate never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let id = t.last_upgrade();
    let started = std::time::Instant::now();
    t.graft(&["cancel", &id]).success().stdout_has("cancelled");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(8), "the cancelled upgrade exits 8");
    assert_eq!(t.upgrade_row(&id).0, "cancelled");
    t.snapshot().assert_same(&before, "after cancel");
}
