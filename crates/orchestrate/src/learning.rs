//! Learning from outcomes.
//!
//! The `learning` table is rebuilt from the upgrades themselves (their
//! final state, their cause, their files, their provider) whenever it is
//! read, so an outcome that changes later (promoted, then rolled back by
//! hand) is always counted as it ended. From it come the statistics of
//! `graft ledger`, recommendations, the track record that moves risk, and
//! the priorities of queued suggestions.

use std::collections::BTreeSet;

use graft_ledger::{LearningRow, Ledger, MetricsDelta, UpgradeState};
use serde::Serialize;

use crate::risk::Record;

/// The module a path belongs to: its first directory, or the first two
/// under a conventional source root (`src/storage`), or `.` at the root.
pub fn module_of(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.len() {
        0 | 1 => ".".into(),
        2 => parts[0].into(),
        _ if ["src", "lib", "app", "pkg", "crates", "internal", "packages"].contains(&parts[0]) => {
            format!("{}/{}", parts[0], parts[1])
        }
        _ => parts[0].into(),
    }
}

pub fn modules_of<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    paths
        .into_iter()
        .map(module_of)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A failure's cause, as a person would group it.
pub fn cause_of(reason: &str) -> String {
    let (head, tail) = reason.split_once(':').unwrap_or((reason, ""));
    match head {
        "gate_failed" if tail == "parse" => "syntax error".into(),
        "gate_failed" => format!("gate {tail} failed"),
        "gate_setup" => "gate set-up problem".into(),
        "gate_modified_tree" => format!("gate {tail} edited the tree"),
        "deploy_failed" => "readiness failed".into(),
        "watch_failed" if tail == "crashed" => "crashed in the watch window".into(),
        "watch_failed" => format!("unhealthy in the watch window ({tail})"),
        "manual_rollback" => "rolled back by hand".into(),
        "crash_loop" => "crash loop after promotion".into(),
        "release_failed" => "release build failed".into(),
        "interrupted" => "interrupted".into(),
        "stuck" => "provider stuck on the same error".into(),
        "dirty_tree" | "base_moved" | "land_refused" | "no_target_branch" => "repository not ready".into(),
        h if h.contains("provider") || h.contains("api_key") || h == "over_budget" || h == "unreachable" => {
            "provider failed".into()
        }
        "cancelled" | "rejected" | "expired" | "dry_run" => head.into(),
        _ => "change refused".into(),
    }
}

/// Rebuild the `learning` table from the upgrades.
pub fn refresh(ledger: &Ledger) -> graft_ledger::Result<()> {
    let done = ledger.upgrades(
        &[
            UpgradeState::Promoted,
            UpgradeState::Failed,
            UpgradeState::RolledBack,
        ],
        100_000,
    )?;
    let conn = ledger.connection();
    ledger.clear_learning()?;
    for u in done.iter().filter(|u| !u.dry_run) {
        let outcome = u.state.as_str();
        let cause = (u.state != UpgradeState::Promoted).then(|| cause_of(u.reason.as_deref().unwrap_or("")));
        // Only changes that were judged say something about risk: an input
        // refused at the door, a repo not ready, a gate that could not
        // run as set up, an interruption, or a person's own rollback (of a
        // change that passed everything) do not.
        if cause.as_deref().is_some_and(|c| {
            matches!(
                c,
                "change refused"
                    | "repository not ready"
                    | "gate set-up problem"
                    | "interrupted"
                    | "rolled back by hand"
            )
        }) {
            continue;
        }
        let cause = cause.as_deref();
        ledger.record_learning(&u.id, "kind", u.kind.as_str(), outcome, cause)?;
        let files = ledger.file_changes(u.id.as_str())?;
        for m in modules_of(files.iter().map(|f| f.path.as_str())) {
            ledger.record_learning(&u.id, "module", &m, outcome, cause)?;
        }
        let provider: Option<String> = conn
            .query_row(
                "SELECT provider FROM upgrades WHERE id = ?1",
                [u.id.as_str()],
                |r| r.get(0),
            )
            .ok()
            .flatten();
        if let Some(p) = provider {
            ledger.record_learning(&u.id, "provider", &p, outcome, cause)?;
        }
    }
    Ok(())
}

/// How similar upgrades fared: the same kind, the same modules, the same
/// provider.
pub fn record_for(ledger: &Ledger, kind: &str, modules: &[String], provider: Option<&str>) -> Record {
    let mut similar = Vec::new();
    let mut add = |dimension: &str, key: &str, label: String| {
        if let Ok(rows) = ledger.learning(dimension)
            && let Some(r) = rows.into_iter().find(|r| r.key == key)
        {
            similar.push((label, r.total, r.failed));
        }
    };
    add("kind", kind, format!("{kind} upgrades"));
    for m in modules {
        let label = if m == "." {
            "changes at the top level".to_string()
        } else {
            format!("changes to {m}/")
        };
        add("module", m, label);
    }
    if let Some(p) = provider {
        add("provider", p, format!("provider {p}"));
    }
    Record { similar }
}

/// What `graft ledger` shows of learning.
#[derive(Debug, Clone, Serialize)]
pub struct Learnt {
    pub by_kind: Vec<LearningRow>,
    pub by_module: Vec<LearningRow>,
    pub by_provider: Vec<LearningRow>,
    pub recommendations: Vec<String>,
    /// Code metrics before and after promoted upgrades, by kind and total.
    pub improvement: Vec<MetricsDelta>,
}

pub fn learnt(ledger: &Ledger, min_outcomes: u64) -> graft_ledger::Result<Learnt> {
    refresh(ledger)?;
    let by_kind = ledger.learning("kind")?;
    let by_module = ledger.learning("module")?;
    let by_provider = ledger.learning("provider")?;
    let mut recommendations = Vec::new();
    let poor = |r: &LearningRow| r.total >= min_outcomes && r.failed * 2 >= r.total;
    for r in by_module.iter().filter(|r| poor(r)) {
        let (cause, _) = r.top_cause.clone().unwrap_or_default();
        let m = &r.key;
        let text = if cause.starts_with("gate ") && cause.contains("test") {
            format!("tests fail after changes to {m}/: add coverage before auto-approving there")
        } else if cause == "syntax error" {
            format!("changes to {m}/ often do not parse: check what produces them")
        } else if cause == "readiness failed" {
            format!(
                "releases with changes to {m}/ do not start: check the start-up path and its readiness check"
            )
        } else if cause.contains("watch window") || cause.contains("crash loop") {
            format!("changes to {m}/ break once live: add tests for what the watch window caught")
        } else {
            format!(
                "upgrades touching {m}/ fail {} of {} times ({cause})",
                r.failed, r.total
            )
        };
        recommendations.push(format!(
            "{text} (failed {} of {}; upgrades there are now rated a level riskier)",
            r.failed, r.total
        ));
    }
    for r in by_kind.iter().filter(|r| poor(r)) {
        let (cause, _) = r.top_cause.clone().unwrap_or_default();
        recommendations.push(format!(
            "{} upgrades fail {} of {} times, mostly: {cause}; review them before approving",
            r.key, r.failed, r.total
        ));
    }
    for r in by_provider.iter().filter(|r| poor(r)) {
        let (cause, _) = r.top_cause.clone().unwrap_or_default();
        recommendations.push(format!(
            "provider {} fails {} of {} times (mostly {cause}): try another model, or give it more context",
            r.key, r.failed, r.total
        ));
    }
    Ok(Learnt {
        by_kind,
        by_module,
        by_provider,
        recommendations,
        improvement: ledger.metrics_deltas()?,
    })
}

/// The priority a queued suggestion gets from its base priority and the
/// track record of the modules it touches: one more where upgrades
/// succeed, one less where they fail (within 1 to 10).
pub fn adapted_priority(base: i64, record: &Record, min_outcomes: u64) -> (i64, Option<String>) {
    let poor = record
        .similar
        .iter()
        .find(|(_, t, f)| *t >= min_outcomes && f * 2 >= *t);
    let good = !record.similar.is_empty()
        && record
            .similar
            .iter()
            .all(|(_, t, f)| *t >= min_outcomes && f * 10 <= *t);
    match (poor, good) {
        (Some((what, t, f)), _) => ((base - 1).max(1), Some(format!("{what} failed {f} of {t} times"))),
        (None, true) => ((base + 1).min(10), Some("similar upgrades succeed".into())),
        _ => (base, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_and_causes() {
        assert_eq!(module_of("app.py"), ".");
        assert_eq!(module_of("storage/db.py"), "storage");
        assert_eq!(module_of("src/storage/db.rs"), "src/storage");
        assert_eq!(module_of("web/static/a/b.js"), "web");
        assert_eq!(cause_of("gate_failed:test"), "gate test failed");
        assert_eq!(cause_of("gate_failed:parse"), "syntax error");
        assert_eq!(cause_of("watch_failed:crashed"), "crashed in the watch window");
        assert_eq!(cause_of("deploy_failed:not_ready"), "readiness failed");
        assert_eq!(cause_of("manual_rollback"), "rolled back by hand");
        assert_eq!(cause_of("path_traversal"), "change refused");
    }

    #[test]
    fn priorities_follow_the_record() {
        let poor = Record {
            similar: vec![("changes to storage/".into(), 4, 3)],
        };
        assert_eq!(adapted_priority(7, &poor, 3).0, 6);
        let good = Record {
            similar: vec![("changes to web/".into(), 10, 0)],
        };
        assert_eq!(adapted_priority(10, &good, 3).0, 10);
        assert_eq!(adapted_priority(5, &good, 3).0, 6);
        assert_eq!(adapted_priority(5, &Record::default(), 3), (5, None));
    }
}
