//! The control plane's records: the webhook outbox, approvals, the rate
//! limit's window, and the figures `/metrics` reports.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use crate::{Ledger, LedgerError, Result, UpgradeId, UpgradeState, now};

/// One notification in the webhook outbox.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub webhook: String,
    pub upgrade_id: Option<String>,
    pub event: String,
    pub body: String,
    pub created_at: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    pub dropped_at: Option<String>,
}

/// How many notifications are waiting, were sent, or were given up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    pub delivered: i64,
    pub dropped: i64,
}

/// The durations of one gate's runs, bucketed for a histogram.
#[derive(Debug, Clone, Serialize)]
pub struct GateDurations {
    pub gate: String,
    /// Runs that took at most each bound (cumulative, as Prometheus wants).
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_ms: u64,
}

/// A limit on new upgrades: fewer than `limit` created at or after
/// `since` (RFC 3339), dry runs apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub since: String,
    pub limit: u64,
}

/// What a window holds: how many upgrades, and when the oldest of them was
/// created (it frees a slot when it leaves the window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowUsage {
    pub used: u64,
    pub oldest: Option<String>,
}

const OUTBOX_COLUMNS: &str = "id, webhook, upgrade_id, event, body, created_at, attempts, next_attempt_at, last_error, delivered_at, dropped_at";

fn read_outbox(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        webhook: r.get(1)?,
        upgrade_id: r.get(2)?,
        event: r.get(3)?,
        body: r.get(4)?,
        created_at: r.get(5)?,
        attempts: r.get(6)?,
        next_attempt_at: r.get(7)?,
        last_error: r.get(8)?,
        delivered_at: r.get(9)?,
        dropped_at: r.get(10)?,
    })
}

impl Ledger {
    // ---- webhook outbox -----------------------------------------------

    /// Queue a notification for `webhook`; returns its id (the order of
    /// delivery).
    pub fn enqueue_notification(
        &self,
        webhook: &str,
        upgrade_id: Option<&str>,
        event: &str,
        body: &str,
    ) -> Result<i64> {
        let at = now();
        self.connection()
            .execute(
                "INSERT INTO webhook_outbox (webhook, upgrade_id, event, body, created_at, next_attempt_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![webhook, upgrade_id, event, body, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.connection().last_insert_rowid())
    }

    /// The webhooks that have notifications waiting.
    pub fn webhooks_with_pending(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .connection()
            .prepare(
                "SELECT DISTINCT webhook FROM webhook_outbox WHERE delivered_at IS NULL AND dropped_at IS NULL",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    /// The oldest notification `webhook` has not received yet.
    pub fn next_notification(&self, webhook: &str) -> Result<Option<OutboxRow>> {
        self.connection()
            .query_row(
                &format!(
                    "SELECT {OUTBOX_COLUMNS} FROM webhook_outbox
                     WHERE webhook = ?1 AND delivered_at IS NULL AND dropped_at IS NULL
                     ORDER BY id LIMIT 1"
                ),
                [webhook],
                read_outbox,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn notification_delivered(&self, id: i64) -> Result<()> {
        self.connection()
            .execute(
                "UPDATE webhook_outbox SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                params![id, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A failed attempt: try again at `next_attempt_at` (RFC 3339).
    pub fn notification_failed(&self, id: i64, error: &str, next_attempt_at: &str) -> Result<()> {
        self.connection()
            .execute(
                "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
                params![id, error, next_attempt_at],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Give a notification up, saying why.
    pub fn notification_dropped(&self, id: i64, why: &str) -> Result<()> {
        self.connection()
            .execute(
                "UPDATE webhook_outbox SET dropped_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id, now(), why],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The outbox, newest first (for one webhook, or all).
    pub fn outbox(&self, webhook: Option<&str>, limit: usize) -> Result<Vec<OutboxRow>> {
        let mut stmt = self
            .connection()
            .prepare(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM webhook_outbox WHERE ?1 IS NULL OR webhook = ?1 ORDER BY id DESC LIMIT ?2"
            ))
            .map_err(|e| self.err(e))?;
        stmt.query_map(params![webhook, limit as i64], read_outbox)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    pub fn outbox_counts(&self) -> Result<OutboxCounts> {
        self.connection()
            .query_row(
                "SELECT
                    COALESCE(SUM(delivered_at IS NULL AND dropped_at IS NULL), 0),
                    COALESCE(SUM(delivered_at IS NOT NULL), 0),
                    COALESCE(SUM(dropped_at IS NOT NULL), 0)
                 FROM webhook_outbox",
                [],
                |r| {
                    Ok(OutboxCounts {
                        pending: r.get(0)?,
                        delivered: r.get(1)?,
                        dropped: r.get(2)?,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }

    // ---- approvals ----------------------------------------------------

    /// Approve an upgrade that waits for approval: it is queued again,
    /// approved up to its current risk, with its audit row, in one
    /// transaction (the queue runner never sees it queued but not yet
    /// approved, and a crash leaves it either waiting or approved whole).
    /// `Ok(Err(state))` when it was not waiting (its state now).
    pub fn approve_upgrade(
        &self,
        id: &UpgradeId,
        approved_by: &str,
    ) -> Result<std::result::Result<(), UpgradeState>> {
        let tx = rusqlite::Transaction::new_unchecked(self.connection(), TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let at = now();
        // Compare and set: two approvers at once cannot both queue it.
        let changed = tx
            .execute(
                "UPDATE upgrades SET state = 'queued', approval = 'approved', approved_level = risk,
                        approved_by = ?3, updated_at = ?2
                 WHERE id = ?1 AND state = 'awaiting_approval'",
                params![id.as_str(), at, approved_by],
            )
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            return match self.upgrade(id.as_str())? {
                Some(u) => Ok(Err(u.state)),
                None => Err(LedgerError::UnknownUpgrade(id.to_string())),
            };
        }
        tx.execute(
            "INSERT INTO approvals (upgrade_id, at, approved_by) VALUES (?1, ?2, ?3)",
            params![id.as_str(), at, approved_by],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Ok(()))
    }

    /// Who approved an upgrade, and when.
    pub fn approvals(&self, id: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .connection()
            .prepare("SELECT at, approved_by FROM approvals WHERE upgrade_id = ?1 ORDER BY id")
            .map_err(|e| self.err(e))?;
        stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    // ---- rate limit ---------------------------------------------------

    /// How many upgrades were created at or after `since` (RFC 3339), dry
    /// runs apart, and when the oldest of them was.
    pub fn window_usage(&self, since: &str) -> Result<WindowUsage> {
        self.connection()
            .query_row(
                "SELECT COUNT(*), MIN(created_at) FROM upgrades WHERE created_at >= ?1 AND dry_run = 0",
                [since],
                |r| {
                    Ok(WindowUsage {
                        used: r.get::<_, i64>(0)? as u64,
                        oldest: r.get(1)?,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }

    // ---- metrics ------------------------------------------------------

    /// How many upgrades are in each state (dry runs apart).
    pub fn upgrade_counts(&self) -> Result<Vec<(String, bool, i64)>> {
        let mut stmt = self
            .connection()
            .prepare("SELECT state, dry_run, COUNT(*) FROM upgrades GROUP BY state, dry_run ORDER BY state, dry_run")
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    /// Gate run durations per gate, counted into buckets of at most each
    /// of `bounds_ms` (ascending).
    pub fn gate_durations(&self, bounds_ms: &[u64]) -> Result<Vec<GateDurations>> {
        let mut stmt = self
            .connection()
            .prepare("SELECT name, duration_ms FROM gate_runs ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        let mut out: Vec<GateDurations> = Vec::new();
        for (gate, ms) in rows {
            let ms = ms.max(0) as u64;
            if out.last().is_none_or(|g| g.gate != gate) {
                out.push(GateDurations {
                    gate,
                    buckets: vec![0; bounds_ms.len()],
                    count: 0,
                    sum_ms: 0,
                });
            }
            let g = out.last_mut().expect("pushed above");
            for (i, b) in bounds_ms.iter().enumerate() {
                if ms <= *b {
                    g.buckets[i] += 1;
                }
            }
            g.count += 1;
            g.sum_ms += ms;
        }
        Ok(out)
    }

    /// How often the live release changed, by cause (start, deploy,
    /// rollback, restart, no_restart).
    pub fn live_changes(&self) -> Result<Vec<(String, i64)>> {
        let mut stmt = self
            .connection()
            .prepare("SELECT cause, COUNT(*) FROM live GROUP BY cause ORDER BY cause")
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    /// Rollbacks by cause.
    pub fn rollback_counts(&self) -> Result<Vec<(String, i64)>> {
        let mut stmt = self
            .connection()
            .prepare("SELECT cause, COUNT(*) FROM rollbacks GROUP BY cause ORDER BY cause")
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewUpgrade, RequestKind};

    fn ledger() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        (dir, l)
    }

    fn upgrade(l: &Ledger, state: UpgradeState, dry_run: bool) -> UpgradeId {
        let id = UpgradeId::generate(chrono::Utc::now());
        l.insert_upgrade(&NewUpgrade {
            id: id.clone(),
            kind: RequestKind::Patch,
            title: "t".into(),
            request: serde_json::json!({}),
            requested_by: "test".into(),
            priority: 5,
            dry_run,
            state,
        })
        .unwrap();
        id
    }

    #[test]
    fn outbox_hands_out_the_oldest_undelivered_per_webhook() {
        let (_d, l) = ledger();
        let a1 = l
            .enqueue_notification("a", Some("upg_x"), "planned", "{\"n\":1}")
            .unwrap();
        let b1 = l.enqueue_notification("b", None, "planned", "{}").unwrap();
        let a2 = l
            .enqueue_notification("a", Some("upg_x"), "promoted", "{\"n\":2}")
            .unwrap();
        assert!(a1 < b1 && b1 < a2);
        let mut hooks = l.webhooks_with_pending().unwrap();
        hooks.sort();
        assert_eq!(hooks, ["a", "b"]);
        // A failure keeps the row at the head: order is kept.
        l.notification_failed(a1, "connection refused", "2000-01-01T00:00:00.000Z")
            .unwrap();
        let head = l.next_notification("a").unwrap().unwrap();
        assert_eq!((head.id, head.attempts), (a1, 1));
        assert_eq!(head.last_error.as_deref(), Some("connection refused"));
        l.notification_delivered(a1).unwrap();
        assert_eq!(l.next_notification("a").unwrap().unwrap().id, a2);
        l.notification_dropped(a2, "too old").unwrap();
        assert!(l.next_notification("a").unwrap().is_none());
        let c = l.outbox_counts().unwrap();
        assert_eq!((c.pending, c.delivered, c.dropped), (1, 1, 1));
        assert_eq!(l.webhooks_with_pending().unwrap(), ["b"]);
        let all = l.outbox(Some("a"), 10).unwrap();
        assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [a2, a1]);
    }

    #[test]
    fn only_an_upgrade_awaiting_approval_can_be_approved() {
        let (_d, l) = ledger();
        let waiting = upgrade(&l, UpgradeState::AwaitingApproval, false);
        assert_eq!(l.approve_upgrade(&waiting, "api:ada").unwrap(), Ok(()));
        assert_eq!(
            l.get_upgrade(waiting.as_str()).unwrap().state,
            UpgradeState::Queued
        );
        assert_eq!(l.approvals(waiting.as_str()).unwrap()[0].1, "api:ada");
        // Twice: it is queued now.
        assert_eq!(
            l.approve_upgrade(&waiting, "api:ada").unwrap(),
            Err(UpgradeState::Queued)
        );
        let running = upgrade(&l, UpgradeState::Staging, false);
        assert_eq!(
            l.approve_upgrade(&running, "x").unwrap(),
            Err(UpgradeState::Staging)
        );
        let unknown: UpgradeId = "upg_20000101_000000_abcdef".parse().unwrap();
        assert!(matches!(
            l.approve_upgrade(&unknown, "x"),
            Err(LedgerError::UnknownUpgrade(_))
        ));
    }

    #[test]
    fn one_approval_leaves_the_row_whole() {
        let (_d, l) = ledger();
        let id = upgrade(&l, UpgradeState::AwaitingApproval, false);
        l.update_upgrade(
            &id,
            &crate::UpgradeUpdate {
                risk: Some("medium".into()),
                approval: Some(Some("requested".into())),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(l.approve_upgrade(&id, "cli:ada").unwrap(), Ok(()));
        let u = l.get_upgrade(id.as_str()).unwrap();
        assert_eq!(u.state, UpgradeState::Queued);
        assert_eq!(u.approval.as_deref(), Some("approved"));
        assert_eq!(u.approved_level.as_deref(), Some("medium"));
        assert_eq!(u.approved_by.as_deref(), Some("cli:ada"));
        assert_eq!(l.approvals(id.as_str()).unwrap().len(), 1);
        // A refused approval changes nothing and leaves no audit row.
        assert_eq!(
            l.approve_upgrade(&id, "cli:bob").unwrap(),
            Err(UpgradeState::Queued)
        );
        let again = l.get_upgrade(id.as_str()).unwrap();
        assert_eq!(again.approved_by.as_deref(), Some("cli:ada"));
        assert_eq!(l.approvals(id.as_str()).unwrap().len(), 1);
    }

    #[test]
    fn the_window_counts_upgrades_but_not_dry_runs() {
        let (_d, l) = ledger();
        let before = now();
        upgrade(&l, UpgradeState::Staging, false);
        upgrade(&l, UpgradeState::Staging, true);
        upgrade(&l, UpgradeState::Failed, false);
        let usage = l.window_usage(&before).unwrap();
        assert_eq!(usage.used, 2);
        assert!(
            usage.oldest.as_deref().is_some_and(|t| t >= before.as_str()),
            "{usage:?}"
        );
        let future = l.window_usage("2999-01-01T00:00:00.000Z").unwrap();
        assert_eq!((future.used, future.oldest), (0, None));
        let counts = l.upgrade_counts().unwrap();
        assert!(counts.contains(&("staging".into(), false, 1)), "{counts:?}");
        assert!(counts.contains(&("staging".into(), true, 1)), "{counts:?}");
    }

    #[test]
    fn gate_durations_are_cumulative_buckets() {
        let (_d, l) = ledger();
        let id = upgrade(&l, UpgradeState::Staging, false);
        for (name, ms) in [("test", 50), ("test", 700), ("test", 20_000), ("build", 3)] {
            l.record_gate_run(&crate::GateRun {
                upgrade_id: id.to_string(),
                round: 1,
                name: name.into(),
                kind: "test".into(),
                required: true,
                status: crate::GateStatus::Passed,
                exit_code: Some(0),
                duration_ms: ms,
                output_tail: String::new(),
                figure: None,
                baseline: None,
                started_at: now(),
                first_error: None,
            })
            .unwrap();
        }
        let d = l.gate_durations(&[100, 1000, 10_000]).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].gate.as_str(), d[0].count, d[0].sum_ms), ("build", 1, 3));
        assert_eq!(d[1].buckets, [1, 2, 2]);
        assert_eq!((d[1].count, d[1].sum_ms), (3, 20_750));
    }
}
