//! The upgrade rate limit: at most `[api] upgrades_per_window` upgrades in
//! any `window` (default 5 an hour), dry runs apart.
//!
//! The window is counted from the ledger (the upgrades created in it, a
//! queued one included: every request is a row from the moment it is
//! accepted), not kept in memory: a restarted `graft run` (or one in a
//! crash loop) must not grant a fresh allowance, and every way in that
//! shares the ledger (HTTP, MCP, the dashboard, schedules, other
//! processes) shares one count. `Orchestrator::submit` counts and queues
//! in one ledger transaction ([`Ledger::insert_submission`]), so two
//! requests at once cannot both take the last slot.

use std::time::Duration;

use chrono::{DateTime, Utc};
use graft_ledger::{Window, WindowUsage};

/// The limit was reached: come back after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: u64,
    pub used: usize,
}

/// The window ending `now`: at most `per_window` upgrades in `window`.
pub fn window(per_window: u64, window: Duration, now: DateTime<Utc>) -> Window {
    Window {
        since: (now - span(window)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        limit: per_window,
    }
}

fn span(window: Duration) -> chrono::Duration {
    chrono::Duration::from_std(window).unwrap_or(chrono::Duration::hours(1))
}

/// A full window, as the caller hears it: the window frees a slot when its
/// oldest upgrade leaves it.
pub fn limited(usage: &WindowUsage, window: Duration, now: DateTime<Utc>) -> Limited {
    let retry_after = usage
        .oldest
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|oldest| {
            let frees = oldest.with_timezone(&Utc) + span(window);
            let ms = (frees - now).num_milliseconds().max(0) as u64;
            ms.div_ceil(1000)
        })
        .unwrap_or(window.as_secs())
        .max(1);
    Limited {
        retry_after,
        used: usage.used as usize,
    }
}

/// A duration the way `graft.toml` writes it: `3d`, `1h`, `30m`, `90s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(86400) {
        format!("{}d", s / 86400)
    } else if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graft_ledger::{Ledger, NewUpgrade, RequestKind, UpgradeId, UpgradeState};

    /// Whether one more upgrade fits in the window ending `now`.
    fn check(l: &Ledger, per_window: u64, len: Duration, now: DateTime<Utc>) -> Result<(), Limited> {
        let w = window(per_window, len, now);
        let usage = l.window_usage(&w.since).unwrap();
        if usage.used < w.limit {
            Ok(())
        } else {
            Err(limited(&usage, len, now))
        }
    }

    fn add(l: &Ledger, dry_run: bool) {
        add_in(l, dry_run, UpgradeState::Promoted);
    }

    fn add_in(l: &Ledger, dry_run: bool, state: UpgradeState) {
        l.insert_upgrade(&NewUpgrade {
            id: UpgradeId::generate(Utc::now()),
            kind: RequestKind::Patch,
            title: "t".into(),
            request: serde_json::json!({}),
            requested_by: "test".into(),
            priority: 5,
            dry_run,
            state,
        })
        .unwrap();
    }

    #[test]
    fn the_sixth_in_an_hour_waits_for_the_oldest_to_leave() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.db")).unwrap();
        let hour = Duration::from_secs(3600);
        for _ in 0..4 {
            add(&l, false);
        }
        add(&l, true);
        assert!(check(&l, 5, hour, Utc::now()).is_ok(), "4 upgrades and a dry run");
        // One queued (not started) fills the window.
        add_in(&l, false, UpgradeState::Queued);
        let Err(lim) = check(&l, 5, hour, Utc::now()) else {
            panic!("limited")
        };
        assert_eq!(lim.used, 5);
        assert!((3590..=3600).contains(&lim.retry_after), "{lim:?}");
        // Half an hour later, the same upgrades free a slot in about 30 minutes.
        let later = Utc::now() + chrono::Duration::minutes(30);
        let Err(lim) = check(&l, 5, hour, later) else {
            panic!("limited")
        };
        assert!((1790..=1800).contains(&lim.retry_after), "{lim:?}");
        // Past the hour they have all left.
        assert!(check(&l, 5, hour, Utc::now() + chrono::Duration::minutes(61)).is_ok());
    }

    /// Two requests at once, each with its own connection (as two
    /// processes would have), when one slot is left: one is queued, the
    /// other is refused, every time.
    #[test]
    fn two_requests_at_once_cannot_both_take_the_last_slot() {
        use crate::{Generators, Orchestrator, Submission, SubmitError};
        use graft_pipeline::{Failure, FailureClass, Generator, NullObserver, RecordOnly, Workspace};

        struct NoProvider;
        impl Generators for NoProvider {
            fn generator(&self, _: &Workspace, _: &Submission) -> Result<Box<dyn Generator>, Failure> {
                Err(Failure::new(
                    FailureClass::Internal,
                    "no_provider",
                    "not in this test",
                ))
            }
        }
        for round in 0..8 {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            let init = std::process::Command::new("git")
                .args(["init", "-q"])
                .arg(root)
                .status()
                .unwrap();
            assert!(init.success());
            std::fs::write(root.join("graft.toml"), "[api]\nupgrades_per_window = 3\n").unwrap();
            {
                let ws = Workspace::open(root).unwrap();
                add(&ws.ledger, false);
                add(&ws.ledger, false);
            }
            let start = std::sync::Barrier::new(2);
            let outcomes: Vec<_> = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..2)
                    .map(|_| {
                        scope.spawn(|| {
                            let ws = Workspace::open(root).unwrap();
                            let o = Orchestrator {
                                ws: &ws,
                                deploy: &RecordOnly,
                                observer: &NullObserver,
                                generators: &NoProvider,
                                analyzer: None,
                            };
                            let s = Submission::new(
                                RequestKind::Edits,
                                "edits.json",
                                b"[]".to_vec(),
                                "test",
                                "api",
                            );
                            start.wait();
                            o.submit(s, Utc::now())
                        })
                    })
                    .collect();
                racers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            let accepted = outcomes.iter().filter(|o| o.is_ok()).count();
            let limited = outcomes
                .iter()
                .filter(|o| matches!(o, Err(SubmitError::Limited { .. })))
                .count();
            assert_eq!((accepted, limited), (1, 1), "round {round}: {outcomes:?}");
            let ws = Workspace::open(root).unwrap();
            let w = window(3, Duration::from_secs(3600), Utc::now());
            assert_eq!(ws.ledger.window_usage(&w.since).unwrap().used, 3, "round {round}");
        }
    }
}
