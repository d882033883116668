//! Schedules: when Graft scans, or runs the autofixers, by itself.
//!
//! Each schedule is a cron pattern (UTC). The ledger keeps the due time of
//! its last run; a tick at `now` runs it once if an occurrence fell between
//! that and `now` (however many were missed: it catches up once, not once
//! per missed occurrence). The first tick only records a baseline, so
//! turning a schedule on never fires a backlog. Recording the run before
//! doing it, keyed by its due time, means a run is never done twice, even
//! when two processes tick at once or one crashes half-way.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use graft_config::Every;

/// The occurrence of `every` due at `now`, given the last one recorded.
/// `None`: nothing is due (or the schedule is manual).
pub fn due(every: &Every, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let Every::Cron(pattern) = every else {
        return None;
    };
    let cron = croner::Cron::from_str(pattern).ok()?;
    let last = last?;
    let next = cron.find_next_occurrence(&last, false).ok()?;
    if next > now {
        return None;
    }
    // The latest occurrence not after now: catch up once.
    cron.find_previous_occurrence(&now, true)
        .ok()
        .filter(|p| *p > last)
        .or(Some(next))
}

/// The next occurrence after `after`, for display.
pub fn next(every: &Every, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let Every::Cron(pattern) = every else {
        return None;
    };
    croner::Cron::from_str(pattern)
        .ok()?
        .find_next_occurrence(&after, false)
        .ok()
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    #[test]
    fn weekly_fires_once_a_week_and_catches_up_once() {
        let weekly = Every::try_from("weekly".to_string()).unwrap();
        // Baseline on Thursday 2026-11-19; the next Monday 03:00 is the 23rd.
        let base = t("2026-11-19T12:00:00Z");
        assert_eq!(due(&weekly, Some(base), t("2026-11-22T12:00:00Z")), None);
        assert_eq!(
            due(&weekly, Some(base), t("2026-11-23T03:00:00Z")),
            Some(t("2026-11-23T03:00:00Z"))
        );
        // Three weeks missed: one run, for the latest occurrence.
        assert_eq!(
            due(&weekly, Some(base), t("2026-12-10T00:00:00Z")),
            Some(t("2026-12-07T03:00:00Z"))
        );
        assert_eq!(next(&weekly, base), Some(t("2026-11-23T03:00:00Z")));
        assert_eq!(due(&Every::Manual, Some(base), t("2027-01-01T00:00:00Z")), None);
        assert_eq!(due(&weekly, None, t("2027-01-01T00:00:00Z")), None);
    }
}
