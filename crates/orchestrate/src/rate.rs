//! The upgrade rate limit: at most `[api] upgrades_per_window` upgrades in
//! any `window` (default 5 an hour), dry runs apart.
//!
//! The window is counted from the ledger (the upgrades created in it, a
//! queued one included: every request is a row from the moment it is
//! accepted), not kept in memory: a restarted `graft run` (or one in a
//! crash loop) must not grant a fresh allowance, and every way in that
//! shares the ledger (HTTP, MCP, the dashboard, schedules) shares one
//! count.

use std::time::Duration;

use chrono::{DateTime, Utc};
use graft_ledger::Ledger;

/// The limit was reached: come back after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: u64,
    pub used: usize,
}

/// Whether one more upgrade fits in the window ending `now`.
pub fn check(
    ledger: &Ledger,
    per_window: u64,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<(), LimitedOr> {
    let span = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::hours(1));
    let since = (now - span).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let created = ledger.upgrades_created_since(&since).map_err(LimitedOr::Ledger)?;
    let used = created.len();
    if (used as u64) < per_window {
        return Ok(());
    }
    // The window frees a slot when its oldest upgrade leaves it.
    let retry_after = created
        .first()
        .and_then(|(_, t)| DateTime::parse_from_rfc3339(t).ok())
        .map(|oldest| {
            let frees = oldest.with_timezone(&Utc) + span;
            let ms = (frees - now).num_milliseconds().max(0) as u64;
            ms.div_ceil(1000)
        })
        .unwrap_or(window.as_secs())
        .max(1);
    Err(LimitedOr::Limited(Limited { retry_after, used }))
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

#[derive(Debug)]
pub enum LimitedOr {
    Limited(Limited),
    Ledger(graft_ledger::LedgerError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use graft_ledger::{NewUpgrade, RequestKind, UpgradeId, UpgradeState};

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
        let Err(LimitedOr::Limited(lim)) = check(&l, 5, hour, Utc::now()) else {
            panic!("limited")
        };
        assert_eq!(lim.used, 5);
        assert!((3590..=3600).contains(&lim.retry_after), "{lim:?}");
        // Half an hour later, the same upgrades free a slot in about 30 minutes.
        let later = Utc::now() + chrono::Duration::minutes(30);
        let Err(LimitedOr::Limited(lim)) = check(&l, 5, hour, later) else {
            panic!("limited")
        };
        assert!((1790..=1800).contains(&lim.retry_after), "{lim:?}");
        // Past the hour they have all left.
        assert!(check(&l, 5, hour, Utc::now() + chrono::Duration::minutes(61)).is_ok());
    }
}
