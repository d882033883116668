//! Orchestration's records: the stored requests of queued upgrades, the
//! queue order, approvals, what was learnt from outcomes, schedule runs,
//! and code metrics before and after each upgrade.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::{Ledger, NewUpgrade, Result, Upgrade, UpgradeId, UpgradeUpdate, Window, WindowUsage, now};

/// What a queued upgrade will run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRequest {
    pub upgrade_id: String,
    /// The input's name (a file name, `<stdin>`, `request`).
    pub name: String,
    /// The patch, the edits, or the instruction; empty for an autofix.
    pub body: Vec<u8>,
    /// Everything else about the request, as the orchestrator wrote it.
    pub spec: serde_json::Value,
}

/// An outcome, along one dimension (kind, module, provider).
#[derive(Debug, Clone, Serialize)]
pub struct LearningRow {
    pub key: String,
    pub total: u64,
    pub promoted: u64,
    pub failed: u64,
    /// The most frequent cause of failure, with its count.
    pub top_cause: Option<(String, u64)>,
}

/// The analyzer's figures of one file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileMetrics {
    pub loc: i64,
    pub functions: i64,
    /// Sum of cyclomatic complexity over its functions.
    pub complexity: i64,
    pub max_complexity: i64,
    /// Clone groups the file takes part in.
    pub duplicates: i64,
    /// Import cycles the file takes part in.
    pub cycles: i64,
}

/// Totals of before and after, over some upgrades.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MetricsDelta {
    pub key: String,
    pub upgrades: u64,
    pub before: FileMetrics,
    pub after: FileMetrics,
}

impl Ledger {
    pub fn insert_request(&self, r: &StoredRequest) -> Result<()> {
        self.connection()
            .execute(
                "INSERT OR REPLACE INTO requests (upgrade_id, name, body, spec) VALUES (?1, ?2, ?3, ?4)",
                params![r.upgrade_id, r.name, r.body, r.spec.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Queue a new upgrade whole: its row (in `u.state`), its stored
    /// request and its first `settings`, in one transaction. With a
    /// `window`, the upgrades already in it are counted in the same
    /// transaction, which takes the database's write lock before it reads
    /// (`BEGIN IMMEDIATE`), so two processes cannot both take its last
    /// slot; `Ok(Err(usage))` when it is full, and nothing is written.
    pub fn insert_submission(
        &self,
        u: &NewUpgrade,
        request: &StoredRequest,
        settings: &UpgradeUpdate,
        window: Option<&Window>,
    ) -> Result<std::result::Result<(), WindowUsage>> {
        let tx = rusqlite::Transaction::new_unchecked(self.connection(), TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        if let Some(w) = window {
            let usage = self.window_usage(&w.since)?;
            if usage.used >= w.limit {
                return Ok(Err(usage));
            }
        }
        self.insert_upgrade(u)?;
        self.insert_request(request)?;
        self.update_upgrade(&u.id, settings)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Ok(()))
    }

    pub fn request(&self, id: &str) -> Result<Option<StoredRequest>> {
        self.connection()
            .query_row(
                "SELECT upgrade_id, name, body, spec FROM requests WHERE upgrade_id = ?1",
                [id],
                |r| {
                    Ok(StoredRequest {
                        upgrade_id: r.get(0)?,
                        name: r.get(1)?,
                        body: r.get(2)?,
                        spec: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The queue, in the order it runs: priority first (10 before 1), then
    /// age, then id (a stable order for equal times).
    pub fn queued(&self, limit: usize) -> Result<Vec<Upgrade>> {
        self.upgrades_where(
            "state = 'queued' ORDER BY priority DESC, created_at ASC, id ASC",
            limit,
        )
    }

    /// Re-rank a queued upgrade.
    pub fn set_priority(&self, id: &UpgradeId, priority: i64) -> Result<()> {
        self.connection()
            .execute(
                "UPDATE upgrades SET priority = ?2 WHERE id = ?1",
                params![id.as_str(), priority.clamp(1, 10)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Upgrades awaiting approval since before `before` (RFC 3339).
    pub fn awaiting_since_before(&self, before: &str) -> Result<Vec<Upgrade>> {
        let before = before.replace('\'', "");
        self.upgrades_where(
            &format!(
                "state = 'awaiting_approval' AND approval_requested_at IS NOT NULL AND approval_requested_at < '{before}' ORDER BY created_at"
            ),
            10_000,
        )
    }

    /// Upgrades asked for from `since` to `until` (both included, to the
    /// second), dry runs apart, by source. Asked for: by the clock of
    /// whoever asked, which an id holds ([`UpgradeId::generate`]) and
    /// `created_at` does not (it is the ledger's); they differ only for
    /// `graft schedule tick --now`.
    pub fn count_asked_between(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
        source: Option<&str>,
    ) -> Result<u64> {
        let n: i64 = self
            .connection()
            .query_row(
                "SELECT COUNT(*) FROM upgrades WHERE id >= ?1 AND id < ?2 AND (?3 IS NULL OR source = ?3) AND dry_run = 0",
                params![
                    UpgradeId::time_prefix(since),
                    UpgradeId::time_prefix(until + chrono::Duration::seconds(1)),
                    source
                ],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    /// The attempts of one request, oldest first: the first upgrade and
    /// every retry of it.
    pub fn attempts(&self, first: &str) -> Result<Vec<Upgrade>> {
        let first = first.replace('\'', "");
        self.upgrades_where(
            &format!("id = '{first}' OR retry_of = '{first}' ORDER BY attempt, created_at"),
            1000,
        )
    }

    // ---- learning ----------------------------------------------------------

    /// Forget what was learnt (before it is rebuilt from the upgrades).
    pub fn clear_learning(&self) -> Result<()> {
        self.connection()
            .execute("DELETE FROM learning", [])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Record an upgrade's outcome along one dimension (replacing a
    /// previous record of the same upgrade and dimension).
    pub fn record_learning(
        &self,
        id: &UpgradeId,
        dimension: &str,
        key: &str,
        outcome: &str,
        cause: Option<&str>,
    ) -> Result<()> {
        let conn = self.connection();
        conn.execute(
            "DELETE FROM learning WHERE upgrade_id = ?1 AND dimension = ?2 AND key = ?3",
            params![id.as_str(), dimension, key],
        )
        .map_err(|e| self.err(e))?;
        conn.execute(
            "INSERT INTO learning (upgrade_id, dimension, key, outcome, cause, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id.as_str(), dimension, key, outcome, cause, now()],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Outcomes by key along `dimension`, most frequent first.
    pub fn learning(&self, dimension: &str) -> Result<Vec<LearningRow>> {
        let conn = self.connection();
        let mut stmt = conn
            .prepare(
                "SELECT key, COUNT(*), SUM(outcome = 'promoted'), SUM(outcome <> 'promoted') FROM learning
                 WHERE dimension = ?1 GROUP BY key ORDER BY COUNT(*) DESC, key",
            )
            .map_err(|e| self.err(e))?;
        let rows: Vec<(String, i64, i64, i64)> = stmt
            .query_map([dimension], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for (key, total, promoted, failed) in rows {
            let top_cause = conn
                .query_row(
                    "SELECT cause, COUNT(*) AS n FROM learning WHERE dimension = ?1 AND key = ?2 AND cause IS NOT NULL
                     GROUP BY cause ORDER BY n DESC, cause LIMIT 1",
                    [dimension, &key],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            out.push(LearningRow {
                key,
                total: total as u64,
                promoted: promoted as u64,
                failed: failed as u64,
                top_cause,
            });
        }
        Ok(out)
    }

    // ---- schedules ---------------------------------------------------------

    /// The due time of the last run of schedule `name`.
    pub fn last_schedule_run(&self, name: &str) -> Result<Option<String>> {
        self.connection()
            .query_row(
                "SELECT MAX(due_at) FROM schedule_runs WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Record that the run of `name` due at `due_at` happened. Returns
    /// false when it was recorded already (so it never runs twice).
    pub fn record_schedule_run(
        &self,
        name: &str,
        due_at: &str,
        outcome: &str,
        detail: &serde_json::Value,
    ) -> Result<bool> {
        let n = self
            .connection()
            .execute(
                "INSERT OR IGNORE INTO schedule_runs (name, due_at, ran_at, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, due_at, now(), outcome, detail.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    pub fn update_schedule_run(
        &self,
        name: &str,
        due_at: &str,
        outcome: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        self.connection()
            .execute(
                "UPDATE schedule_runs SET outcome = ?3, detail = ?4 WHERE name = ?1 AND due_at = ?2",
                params![name, due_at, outcome, detail.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    // ---- metrics -----------------------------------------------------------

    pub fn record_file_metrics(
        &self,
        id: &UpgradeId,
        path: &str,
        phase: &str,
        m: &FileMetrics,
    ) -> Result<()> {
        self.connection()
            .execute(
                "INSERT OR REPLACE INTO file_metrics (upgrade_id, path, phase, loc, functions, complexity, max_complexity, duplicates, cycles)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    id.as_str(),
                    path,
                    phase,
                    m.loc,
                    m.functions,
                    m.complexity,
                    m.max_complexity,
                    m.duplicates,
                    m.cycles
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Metrics before and after of promoted upgrades, by kind and in total
    /// (the last row, key `total`).
    pub fn metrics_deltas(&self) -> Result<Vec<MetricsDelta>> {
        let conn = self.connection();
        let sum = |kind: Option<&str>, phase: &str| -> rusqlite::Result<(u64, FileMetrics)> {
            conn.query_row(
                "SELECT COUNT(DISTINCT m.upgrade_id), COALESCE(SUM(m.loc),0), COALESCE(SUM(m.functions),0), COALESCE(SUM(m.complexity),0),
                        COALESCE(MAX(m.max_complexity),0), COALESCE(SUM(m.duplicates),0), COALESCE(SUM(m.cycles),0)
                 FROM file_metrics m JOIN upgrades u ON u.id = m.upgrade_id
                 WHERE u.state = 'promoted' AND m.phase = ?2 AND (?1 IS NULL OR u.kind = ?1)",
                params![kind, phase],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        FileMetrics {
                            loc: r.get(1)?,
                            functions: r.get(2)?,
                            complexity: r.get(3)?,
                            max_complexity: r.get(4)?,
                            duplicates: r.get(5)?,
                            cycles: r.get(6)?,
                        },
                    ))
                },
            )
        };
        let mut stmt = conn
            .prepare(
                "SELECT DISTINCT u.kind FROM file_metrics m JOIN upgrades u ON u.id = m.upgrade_id
                 WHERE u.state = 'promoted' ORDER BY u.kind",
            )
            .map_err(|e| self.err(e))?;
        let kinds: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for kind in kinds.iter().map(|k| Some(k.as_str())).chain([None]) {
            let (n, before) = sum(kind, "before").map_err(|e| self.err(e))?;
            let (_, after) = sum(kind, "after").map_err(|e| self.err(e))?;
            if n == 0 {
                continue;
            }
            out.push(MetricsDelta {
                key: kind.unwrap_or("total").to_string(),
                upgrades: n,
                before,
                after,
            });
        }
        Ok(out)
    }

    pub(crate) fn upgrades_where(&self, cond: &str, limit: usize) -> Result<Vec<Upgrade>> {
        let sql = format!(
            "SELECT {} FROM upgrades WHERE {cond} LIMIT {limit}",
            crate::UPGRADE_COLUMNS
        );
        let mut stmt = self.connection().prepare(&sql).map_err(|e| self.err(e))?;
        stmt.query_map([], crate::read_upgrade)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }
}
