use super::*;

fn ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    (dir, l)
}

fn new_upgrade(l: &Ledger, kind: RequestKind, dry_run: bool) -> UpgradeId {
    let id = UpgradeId::generate(chrono::Utc::now());
    l.insert_upgrade(&NewUpgrade {
        id: id.clone(),
        kind,
        title: "t".into(),
        request: serde_json::json!({"patch": "x"}),
        requested_by: "test".into(),
        priority: 5,
        dry_run,
        state: UpgradeState::Staging,
    })
    .unwrap();
    id
}

#[test]
fn opens_in_wal_mode_at_the_latest_schema() {
    let (dir, l) = ledger();
    let mode: String = l
        .connection()
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(l.schema_version().unwrap(), schema::MIGRATIONS.len() as i64);
    drop(l);
    // Reopening does not re-run migrations.
    let l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    assert_eq!(l.schema_version().unwrap(), schema::MIGRATIONS.len() as i64);
}

#[test]
fn refuses_a_newer_schema() {
    let (dir, l) = ledger();
    l.connection().pragma_update(None, "user_version", 999).unwrap();
    drop(l);
    let e = Ledger::open(&dir.path().join("ledger.db"))
        .err()
        .expect("too new");
    assert!(
        e.to_string().contains("written by a newer Graft (schema 999"),
        "{e}"
    );
}

#[test]
fn upgrade_ids_have_the_documented_shape() {
    let id = UpgradeId::generate(
        chrono::DateTime::parse_from_rfc3339("2026-11-21T10:30:01Z")
            .unwrap()
            .into(),
    );
    assert!(id.as_str().starts_with("upg_20261121_103001_"), "{id}");
    assert_eq!(id.as_str().parse::<UpgradeId>().unwrap(), id);
    assert_eq!(id.branch(), format!("graft/{id}"));
    for bad in [
        "",
        "upg_",
        "upg_20261121_103001_A1B2C3",
        "upg_2026112x_103001_a1b2c3",
        "../../etc",
        "upg_20261121_103001_a1b2c3x",
    ] {
        assert!(bad.parse::<UpgradeId>().is_err(), "{bad}");
    }
}

#[test]
fn upgrade_round_trip_and_update() {
    let (_d, l) = ledger();
    let id = new_upgrade(&l, RequestKind::Patch, false);
    let u = l.get_upgrade(id.as_str()).unwrap();
    assert_eq!(u.state, UpgradeState::Staging);
    assert_eq!(u.request["patch"], "x");
    assert!(u.finished_at.is_none());
    l.update_upgrade(
        &id,
        &UpgradeUpdate {
            base_commit: Some("abc".into()),
            branch: Some(Some("graft/x".into())),
            ..Default::default()
        },
    )
    .unwrap();
    l.finish_with(&id, UpgradeState::Failed, "gate_failed", "gate `test` failed")
        .unwrap();
    let u = l.get_upgrade(id.as_str()).unwrap();
    assert_eq!(u.base_commit.as_deref(), Some("abc"));
    assert_eq!(u.branch.as_deref(), Some("graft/x"));
    assert_eq!(u.state, UpgradeState::Failed);
    assert_eq!(u.reason.as_deref(), Some("gate_failed"));
    assert!(u.finished_at.is_some());
    l.update_upgrade(
        &id,
        &UpgradeUpdate {
            branch: Some(None),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(l.get_upgrade(id.as_str()).unwrap().branch.is_none());
}

#[test]
fn unknown_upgrade_is_a_clear_error() {
    let (_d, l) = ledger();
    let e = l.get_upgrade("upg_20261121_103001_a1b2c3").unwrap_err();
    assert_eq!(
        e.to_string(),
        "no upgrade `upg_20261121_103001_a1b2c3` in the ledger (`graft status` lists them)"
    );
    let id: UpgradeId = "upg_20261121_103001_a1b2c3".parse().unwrap();
    assert!(l.set_state(&id, UpgradeState::Failed).is_err());
}

#[test]
fn journal_finds_open_steps() {
    let (_d, l) = ledger();
    let id = new_upgrade(&l, RequestKind::Patch, false);
    l.step_begin(&id, "checkpoint", &serde_json::json!({})).unwrap();
    l.step_end(
        &id,
        "checkpoint",
        StepOutcome::Ok,
        &serde_json::json!({"head": "abc"}),
    )
    .unwrap();
    l.step_begin(&id, "gates", &serde_json::json!({})).unwrap();
    l.step_begin(&id, "gate:test", &serde_json::json!({})).unwrap();
    assert_eq!(l.open_steps(id.as_str()).unwrap(), ["gates", "gate:test"]);
    assert!(l.step_done(id.as_str(), "checkpoint").unwrap());
    assert!(!l.step_done(id.as_str(), "gates").unwrap());
    let steps = l.steps(id.as_str()).unwrap();
    assert_eq!(steps.len(), 4);
    assert_eq!(steps[1].detail["head"], "abc");
    assert_eq!(steps[1].outcome, Some(StepOutcome::Ok));
}

#[test]
fn stats_leave_out_dry_runs_and_group_failures() {
    let (_d, l) = ledger();
    let a = new_upgrade(&l, RequestKind::Patch, false);
    l.update_upgrade(
        &a,
        &UpgradeUpdate {
            landed_commit: Some("c1".into()),
            state: Some(UpgradeState::Promoted),
            ..Default::default()
        },
    )
    .unwrap();
    l.record_file_changes(
        &a,
        &[FileChange {
            path: "src/a.py".into(),
            old_path: None,
            kind: "modify".into(),
            lines_added: 2,
            lines_removed: 1,
            blob_before: None,
            blob_after: None,
        }],
    )
    .unwrap();
    for _ in 0..2 {
        let b = new_upgrade(&l, RequestKind::Edits, false);
        l.finish_with(&b, UpgradeState::Failed, "gate_failed:test", "tests failed")
            .unwrap();
    }
    let d = new_upgrade(&l, RequestKind::Patch, true);
    l.finish_with(&d, UpgradeState::Failed, "gate_failed:test", "dry")
        .unwrap();
    let s = l.stats(10).unwrap();
    assert_eq!(s.total, 3);
    assert_eq!(s.success_rate, Some(1.0 / 3.0));
    assert_eq!(s.files_changed, 1);
    assert_eq!(s.top_files, [("src/a.py".to_string(), 1)]);
    assert_eq!(s.failures_by_cause.len(), 1);
    assert_eq!(s.failures_by_cause[0].count, 2);
    assert_eq!(s.failures_by_cause[0].example.as_deref(), Some("tests failed"));
    let patch = s.by_kind.iter().find(|k| k.kind == "patch").unwrap();
    assert_eq!((patch.total, patch.promoted), (1, 1));
    assert_eq!(s.recent.len(), 4);
}

#[test]
fn gate_runs_backups_rollbacks_and_baselines_round_trip() {
    let (_d, l) = ledger();
    let id = new_upgrade(&l, RequestKind::Patch, false);
    l.record_gate_run(&GateRun {
        upgrade_id: id.to_string(),
        round: 1,
        name: "test".into(),
        kind: "test".into(),
        required: true,
        status: GateStatus::Failed,
        exit_code: Some(1),
        duration_ms: 12,
        output_tail: "FAILED".into(),
        figure: None,
        baseline: None,
        started_at: now(),
        first_error: Some("E   assert 1 == 2".into()),
    })
    .unwrap();
    let runs = l.gate_runs(id.as_str()).unwrap();
    assert_eq!(runs[0].status, GateStatus::Failed);
    assert_eq!(runs[0].first_error.as_deref(), Some("E   assert 1 == 2"));
    // The whole upgrade reads back as one record, and an unknown id as none.
    let record = l.upgrade_record(id.as_str()).unwrap().unwrap();
    assert_eq!(record.upgrade.id, id);
    assert_eq!(record.gates.len(), 1);
    assert!(l.upgrade_record("upg_20000101_000000_abcdef").unwrap().is_none());
    l.record_data_backups(
        &id,
        &[DataBackup {
            path: "data/app.db".into(),
            existed: true,
            sha256: Some("s".into()),
            backup_path: Some("b".into()),
        }],
    )
    .unwrap();
    assert!(l.data_backups(id.as_str()).unwrap()[0].existed);
    l.record_rollback(&Rollback {
        upgrade_id: id.to_string(),
        at: now(),
        cause: "manual".into(),
        requested_by: "cli".into(),
        revert_commit: Some("r".into()),
        data_restored: true,
        detail: serde_json::json!({}),
    })
    .unwrap();
    assert_eq!(l.rollbacks(Some(id.as_str())).unwrap().len(), 1);
    assert_eq!(l.rollbacks(None).unwrap().len(), 1);
    assert_eq!(l.perf_baseline("bench", "c1").unwrap(), None);
    l.set_perf_baseline("bench", "c1", 100.0, Some(&id)).unwrap();
    assert_eq!(l.perf_baseline("bench", "c1").unwrap(), Some(100.0));
    l.record_file_versions(
        Some(&id),
        "c1",
        &[("a".into(), Some("h".into())), ("b".into(), None)],
    )
    .unwrap();
    assert_eq!(l.file_versions("b").unwrap()[0].sha256, None);
}

#[test]
fn two_connections_see_each_others_writes() {
    let (dir, l) = ledger();
    let other = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let id = new_upgrade(&l, RequestKind::Patch, false);
    assert!(other.upgrade(id.as_str()).unwrap().is_some());
}

/// A stored suggestion, to store again.
fn as_new(s: &Suggestion) -> NewSuggestion<'_> {
    NewSuggestion {
        id: &s.id,
        kind: &s.kind,
        title: &s.title,
        files: &s.files,
        risk: &s.risk,
        priority: s.priority,
        instruction: &s.instruction,
        detail: &s.detail,
    }
}

#[test]
fn scans_and_suggestions_round_trip() {
    let (_d, l) = ledger();
    let scan = Scan {
        id: "scan_20261121_103001_a1b2c3".into(),
        created_at: now(),
        root: "/repo".into(),
        scope: None,
        commit_id: Some("c1".into()),
        duration_ms: 12,
        summary: serde_json::json!({"modules": 42}),
        suggestions_pruned_at: None,
    };
    let sug = |n: i64, p: i64| Suggestion {
        id: format!("sug_20261121_103001_a1b2c3_{n:02}"),
        scan_id: scan.id.clone(),
        kind: "god_class".into(),
        title: format!("Split class {n}"),
        files: vec!["a.py".into()],
        risk: "medium".into(),
        priority: p,
        instruction: "Split it".into(),
        detail: serde_json::json!({"methods": 25}),
        upgrade_id: None,
    };
    l.insert_scan(&scan, [sug(1, 3), sug(2, 8)].iter().map(as_new), 20)
        .unwrap();
    assert_eq!(l.scans(10).unwrap()[0].summary["modules"], 42);
    let list = l.suggestions(&scan.id).unwrap();
    assert_eq!(list.iter().map(|s| s.priority).collect::<Vec<_>>(), [8, 3]);
    let id = new_upgrade(&l, RequestKind::Suggestion, false);
    l.link_suggestion(&list[0].id, &id).unwrap();
    let got = l.suggestion(&list[0].id).unwrap().unwrap();
    assert_eq!(got.upgrade_id.as_deref(), Some(id.as_str()));
    assert_eq!(got.files, ["a.py"]);
    assert!(l.suggestion("sug_nope").unwrap().is_none());

    // A second scan finding the same two and one new: the same text comes
    // back under the new ids, and only the new body is written.
    let again = Scan {
        id: "scan_20261121_103501_d4e5f6".into(),
        ..scan.clone()
    };
    let renumber = |mut s: Suggestion, n: i64| {
        s.id = format!("sug_20261121_103501_d4e5f6_{n:02}");
        s.scan_id = again.id.clone();
        s
    };
    let mut changed = renumber(sug(3, 5), 3);
    changed.detail = serde_json::json!({"methods": 26});
    let second = [renumber(sug(1, 3), 1), renumber(sug(2, 8), 2), changed];
    l.insert_scan(&again, second.iter().map(as_new), 20).unwrap();
    let bodies: i64 = l
        .connection()
        .query_row("SELECT count(*) FROM suggestion_bodies", [], |r| r.get(0))
        .unwrap();
    assert_eq!(bodies, 3);
    let list = l.suggestions(&again.id).unwrap();
    assert_eq!(list.iter().map(|s| s.priority).collect::<Vec<_>>(), [8, 5, 3]);
    assert_eq!(list[1].detail["methods"], 26);
    assert!(
        list.iter()
            .all(|s| s.upgrade_id.is_none() && s.scan_id == again.id)
    );
    // The first scan's link and text are untouched.
    let first = l.suggestions(&scan.id).unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].upgrade_id.as_deref(), Some(id.as_str()));
    assert_eq!(first[0].title, "Split class 2");
}

/// Drop the suggestions of all but the newest `keep` scans, as storing a
/// scan does; how many rows went.
fn prune(l: &Ledger, keep: u64) -> usize {
    let tx = l.conn.unchecked_transaction().unwrap();
    let n = l.prune_suggestions(&tx, keep, &Default::default()).unwrap();
    tx.commit().unwrap();
    n
}

/// Scan `n` of a series, a minute after scan `n - 1`.
fn scan_number(n: u32) -> Scan {
    Scan {
        id: format!("scan_{n:02}"),
        created_at: format!("2026-11-21T10:{n:02}:00.000Z"),
        root: "/repo".into(),
        scope: None,
        commit_id: None,
        duration_ms: 1,
        summary: serde_json::json!({"n": n}),
        suggestions_pruned_at: None,
    }
}

#[test]
fn only_the_newest_scans_keep_their_suggestions() {
    let (_d, l) = ledger();
    let scan = scan_number;
    // Every scan finds `shared`; scan n also finds `only n`.
    let found = |n: u32| {
        ["shared".to_string(), format!("only {n}")].map(|title| Suggestion {
            id: format!("sug_{n}_{}", if title == "shared" { 1 } else { 2 }),
            scan_id: format!("scan_{n:02}"),
            kind: "duplicate".into(),
            title,
            files: vec!["a.py".into()],
            risk: "low".into(),
            priority: 3,
            instruction: "Merge them".into(),
            detail: serde_json::json!({}),
            upgrade_id: None,
        })
    };
    let bodies = |l: &Ledger| -> Vec<String> {
        let mut st = l
            .connection()
            .prepare("SELECT title FROM suggestion_bodies ORDER BY title")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let pruned = |l: &Ledger| -> Vec<String> {
        let mut s: Vec<String> = l
            .scans(10)
            .unwrap()
            .into_iter()
            .filter(|s| s.suggestions_pruned_at.is_some())
            .map(|s| s.id)
            .collect();
        s.sort();
        s
    };
    for n in 1..=2 {
        l.insert_scan(&scan(n), found(n).iter().map(as_new), 2).unwrap();
    }
    // An upgrade made from scan 1's own finding keeps that one.
    let upgrade = new_upgrade(&l, RequestKind::Suggestion, false);
    l.link_suggestion("sug_1_2", &upgrade).unwrap();
    assert!(pruned(&l).is_empty());

    l.insert_scan(&scan(3), found(3).iter().map(as_new), 2).unwrap();
    assert_eq!(pruned(&l), ["scan_01"]);
    assert!(l.suggestion("sug_1_1").unwrap().is_none());
    let linked = l.suggestion("sug_1_2").unwrap().unwrap();
    assert_eq!(
        (linked.title.as_str(), linked.upgrade_id.as_deref()),
        ("only 1", Some(upgrade.as_str()))
    );
    assert_eq!(bodies(&l), ["only 1", "only 2", "only 3", "shared"]);

    l.insert_scan(&scan(4), found(4).iter().map(as_new), 2).unwrap();
    assert_eq!(pruned(&l), ["scan_01", "scan_02"]);
    assert!(l.suggestions("scan_02").unwrap().is_empty());
    // "only 2" has no row left; "shared" is still scan 3's and 4's.
    assert_eq!(bodies(&l), ["only 1", "only 3", "only 4", "shared"]);
    assert_eq!(l.suggestions("scan_04").unwrap().len(), 2);
    // Every scan's summary stays.
    let all = l.scans(10).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[3].summary["n"], 1);

    // Asked for directly, with a smaller history.
    assert_eq!(prune(&l, 1), 2);
    assert_eq!(pruned(&l), ["scan_01", "scan_02", "scan_03"]);
    assert_eq!(bodies(&l), ["only 1", "only 4", "shared"]);
    assert_eq!(prune(&l, 1), 0);
}

#[test]
fn the_wal_stays_bounded_over_many_short_commands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let wal = dir.path().join("ledger.db-wal");
    let detail = serde_json::json!({ "text": "x".repeat(2000) });
    let mut largest = 0;
    // Forty commands, each opening the ledger, storing a scan of 300
    // suggestions never seen before (~0.8 MB of pages) and closing.
    for n in 0..40 {
        let l = Ledger::open(&path).unwrap();
        let scan = scan_number(n);
        let found: Vec<Suggestion> = (0..300)
            .map(|i| Suggestion {
                id: format!("sug_{n:02}_{i:03}"),
                scan_id: scan.id.clone(),
                kind: "duplicate".into(),
                title: format!("finding {n} {i}"),
                files: vec!["a.py".into()],
                risk: "low".into(),
                priority: 3,
                instruction: "Merge them".into(),
                detail: detail.clone(),
                upgrade_id: None,
            })
            .collect();
        l.insert_scan(&scan, found.iter().map(as_new), 2).unwrap();
        drop(l);
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    // At most the limit plus what one command wrote (it grew ~0.8 MB each
    // time, to over 30 MB, before opening bounded it).
    assert!(largest <= WAL_LIMIT + (2 << 20), "WAL reached {largest} bytes");
    let l = Ledger::open(&path).unwrap();
    assert_eq!(l.scans(100).unwrap().len(), 40);
    assert_eq!(l.suggestions("scan_39").unwrap().len(), 300);
}

#[test]
fn suggestions_written_before_bodies_were_shared_survive_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    // A ledger at schema 6, holding a scan with two suggestions, one linked.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &schema::MIGRATIONS[..6] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 6).unwrap();
        conn.execute_batch(
            "INSERT INTO scans (id, created_at, root) VALUES ('scan_1', '2026-11-21T10:00:00Z', '/repo');
             INSERT INTO suggestions (id, scan_id, kind, title, files, risk, priority, instruction, detail, upgrade_id)
             VALUES ('sug_1_01', 'scan_1', 'duplicate', 'Merge copies', '[\"a.py\",\"b.py\"]', 'low', 4, 'Merge them', '{\"tokens\":80}', 'upg_x'),
                    ('sug_1_02', 'scan_1', 'god_class', 'Split C', '[\"c.py\"]', 'medium', 7, 'Split it', '{}', NULL);",
        )
        .unwrap();
    }
    let l = Ledger::open(&path).unwrap();
    assert_eq!(l.schema_version().unwrap(), schema::MIGRATIONS.len() as i64);
    let list = l.suggestions("scan_1").unwrap();
    assert_eq!(
        list.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["sug_1_02", "sug_1_01"]
    );
    let dup = l.suggestion("sug_1_01").unwrap().unwrap();
    assert_eq!(
        (
            dup.kind.as_str(),
            dup.title.as_str(),
            dup.risk.as_str(),
            dup.priority
        ),
        ("duplicate", "Merge copies", "low", 4)
    );
    assert_eq!(dup.files, ["a.py", "b.py"]);
    assert_eq!(dup.instruction, "Merge them");
    assert_eq!(dup.detail["tokens"], 80);
    assert_eq!(dup.upgrade_id.as_deref(), Some("upg_x"));
    assert_eq!(list[0].upgrade_id, None);
}

#[test]
fn agent_task_and_history_are_durable_and_ordered() {
    let (dir, l) = ledger();
    assert!(l.agent_task().unwrap().is_none());
    assert_eq!(l.put_agent_task("write the report").unwrap(), 1);
    assert_eq!(l.put_agent_task("write the summary").unwrap(), 2);
    let entry = |role: &str, content: &str, meta| NewHistory::new(role.into(), content.into(), meta).unwrap();
    let a = l
        .append_history(&entry("user", "hello", serde_json::json!({})))
        .unwrap();
    let b = l
        .append_history(&entry("assistant", "hi", serde_json::json!({"tokens": 3})))
        .unwrap();
    drop(l);
    let l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    assert_eq!(l.agent_task().unwrap().unwrap().content, "write the summary");
    let h = l.history(0, 10).unwrap();
    assert_eq!(h.iter().map(|e| e.id).collect::<Vec<_>>(), [a, b]);
    assert_eq!(h[1].meta["tokens"], 3);
    assert_eq!(l.history(a, 10).unwrap().len(), 1);
}

#[test]
fn a_history_entry_is_checked_the_same_way_everywhere() {
    let new = |role: &str, meta| NewHistory::new(role.into(), "x".into(), meta);
    assert_eq!(new("", serde_json::Value::Null), Err(BadHistory::Role));
    assert_eq!(new("  ", serde_json::Value::Null), Err(BadHistory::Role));
    // Characters, not bytes: 64 two-byte letters are a role, 65 are not.
    assert!(new(&"é".repeat(64), serde_json::Value::Null).is_ok());
    assert_eq!(
        new(&"é".repeat(65), serde_json::Value::Null),
        Err(BadHistory::Role)
    );
    assert_eq!(new("user", serde_json::json!([1])), Err(BadHistory::Meta));
    assert_eq!(new("user", serde_json::json!("note")), Err(BadHistory::Meta));
    assert_eq!(BadHistory::Role.to_string(), "`role` must be 1 to 64 characters");
    assert_eq!(BadHistory::Meta.to_string(), "`meta` must be a JSON object");
    // No meta is an empty object.
    let (_d, l) = ledger();
    l.append_history(&new("user", serde_json::Value::Null).unwrap())
        .unwrap();
    assert_eq!(l.history(0, 1).unwrap()[0].meta, serde_json::json!({}));
}

#[test]
fn instances_and_live_history() {
    let (_d, l) = ledger();
    let i = l.insert_instance("c1", "t1", "/log").unwrap();
    l.instance_started(i, 1234, Some(99), "logs/abc-1.log").unwrap();
    assert_eq!(l.running_instances().unwrap().len(), 1);
    l.set_live("c1", Some(i), "start").unwrap();
    l.instance_stopped(i, "exit 0").unwrap();
    assert!(l.running_instances().unwrap().is_empty());
    l.set_live("c2", None, "deploy").unwrap();
    assert_eq!(l.live().unwrap().unwrap().commit_id, "c2");
    assert_eq!(l.live_history(10).unwrap().len(), 2);
}

#[test]
fn a_body_digest_tells_apart_what_a_plain_concatenation_would_not() {
    let detail = serde_json::json!({"a": [1]});
    let base = NewSuggestion {
        id: "sug_1",
        kind: "duplicate",
        title: "ab",
        files: &[],
        risk: "low",
        priority: 3,
        instruction: "c",
        detail: &detail,
    };
    let digest = |s: &NewSuggestion<'_>| crate::body_digest(s);
    let same_but_id = NewSuggestion { id: "sug_2", ..base };
    assert_eq!(
        digest(&base),
        digest(&same_but_id),
        "the id is not part of the body"
    );
    let shifted = NewSuggestion {
        title: "a",
        instruction: "bc",
        ..base
    };
    assert_ne!(digest(&base), digest(&shifted));
    let flat = serde_json::json!({"a": 1});
    assert_ne!(
        digest(&base),
        digest(&NewSuggestion {
            detail: &flat,
            ..base
        })
    );
    let text = serde_json::json!({"a": ["1"]});
    assert_ne!(
        digest(&base),
        digest(&NewSuggestion {
            detail: &text,
            ..base
        })
    );
    let files = ["x.py".to_string(), "y.py".to_string()];
    let joined = ["x.pyy.py".to_string()];
    assert_ne!(
        digest(&NewSuggestion {
            files: &files,
            ..base
        }),
        digest(&NewSuggestion {
            files: &joined,
            ..base
        })
    );
    assert_ne!(digest(&base), digest(&NewSuggestion { priority: 4, ..base }));
}

#[test]
fn upgrades_are_counted_by_the_time_they_were_asked_for() {
    let (_d, l) = ledger();
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let ask = |when: &str, source: &str, dry_run: bool| {
        let id = UpgradeId::generate(at(when));
        l.insert_upgrade(&NewUpgrade {
            id: id.clone(),
            kind: RequestKind::Suggestion,
            title: "t".into(),
            request: serde_json::json!({}),
            requested_by: "schedule".into(),
            priority: 5,
            dry_run,
            state: UpgradeState::Queued,
        })
        .unwrap();
        let source = Some(source.to_string());
        l.update_upgrade(
            &id,
            &UpgradeUpdate {
                source,
                ..Default::default()
            },
        )
        .unwrap();
    };
    // Written now, asked for years from now (`graft schedule tick --now`).
    ask("2031-03-03T04:00:00Z", "schedule", false);
    ask("2031-03-03T16:00:59Z", "schedule", false);
    ask("2031-03-03T12:00:00Z", "schedule", true);
    ask("2031-03-03T12:00:00Z", "api", false);
    let count =
        |since: &str, until: &str, source| l.count_asked_between(at(since), at(until), source).unwrap();
    let day = ("2031-03-02T16:00:59Z", "2031-03-03T16:00:59Z");
    assert_eq!(
        count(day.0, day.1, Some("schedule")),
        2,
        "both ends in, dry runs out"
    );
    assert_eq!(count(day.0, day.1, None), 3);
    assert_eq!(
        count("2031-03-03T04:00:01Z", "2031-03-04T04:00:00Z", Some("schedule")),
        1
    );
    assert_eq!(
        count("2026-01-01T00:00:00Z", "2026-12-31T00:00:00Z", None),
        0,
        "not by when written"
    );
}
