//! Totals over the ledger, for `graft ledger` and the API.
//!
//! Dry runs are left out: they change nothing, so they are not outcomes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Ledger, Result, Upgrade, UpgradeState};

/// Outcomes of one request kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindStats {
    pub kind: String,
    pub total: u64,
    pub promoted: u64,
    pub failed: u64,
    pub rolled_back: u64,
}

/// Failures that share a cause.
#[derive(Debug, Clone, Serialize)]
pub struct CauseCount {
    pub cause: String,
    pub count: u64,
    /// The newest failure's explanation, as an example.
    pub example: Option<String>,
    pub last_upgrade: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LedgerStats {
    pub total: u64,
    pub by_state: BTreeMap<String, u64>,
    /// promoted / (promoted + failed + rolled back); None before any outcome.
    pub success_rate: Option<f64>,
    pub by_kind: Vec<KindStats>,
    /// Distinct paths changed by promoted upgrades.
    pub files_changed: u64,
    /// The paths promoted upgrades changed most, with their counts.
    pub top_files: Vec<(String, u64)>,
    pub rollbacks: u64,
    pub failures_by_cause: Vec<CauseCount>,
    pub recent: Vec<Upgrade>,
}

impl Ledger {
    pub fn stats(&self, recent: usize) -> Result<LedgerStats> {
        let conn = self.connection();
        let wrap = |e| self.err(e);
        let mut by_state = BTreeMap::new();
        let mut stmt = conn
            .prepare("SELECT state, COUNT(*) FROM upgrades WHERE dry_run = 0 GROUP BY state")
            .map_err(wrap)?;
        for row in stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(wrap)?
        {
            let (s, n) = row.map_err(wrap)?;
            by_state.insert(s, n);
        }
        let count = |s: UpgradeState| by_state.get(s.as_str()).copied().unwrap_or(0);
        let (promoted, failed, rolled) = (
            count(UpgradeState::Promoted),
            count(UpgradeState::Failed),
            count(UpgradeState::RolledBack),
        );
        let outcomes = promoted + failed + rolled;
        let success_rate = (outcomes > 0).then(|| promoted as f64 / outcomes as f64);

        let mut by_kind: BTreeMap<String, KindStats> = BTreeMap::new();
        let mut stmt = conn
            .prepare("SELECT kind, state, COUNT(*) FROM upgrades WHERE dry_run = 0 GROUP BY kind, state")
            .map_err(wrap)?;
        for row in stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(wrap)?
        {
            let (kind, state, n) = row.map_err(wrap)?;
            let k = by_kind.entry(kind.clone()).or_insert_with(|| KindStats {
                kind,
                ..Default::default()
            });
            k.total += n;
            match state.as_str() {
                "promoted" => k.promoted += n,
                "failed" => k.failed += n,
                "rolled_back" => k.rolled_back += n,
                _ => {}
            }
        }

        let files_changed: i64 = conn
            .query_row(
                "SELECT COUNT(DISTINCT f.path) FROM file_changes f JOIN upgrades u ON u.id = f.upgrade_id
                 WHERE u.dry_run = 0 AND u.landed_commit IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .map_err(wrap)?;
        let mut stmt = conn
            .prepare(
                "SELECT f.path, COUNT(*) AS n FROM file_changes f JOIN upgrades u ON u.id = f.upgrade_id
                 WHERE u.dry_run = 0 AND u.landed_commit IS NOT NULL GROUP BY f.path ORDER BY n DESC, f.path LIMIT 5",
            )
            .map_err(wrap)?;
        let top_files = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(wrap)?;

        let rollbacks: i64 = conn
            .query_row("SELECT COUNT(*) FROM rollbacks", [], |r| r.get(0))
            .map_err(wrap)?;

        let mut stmt = conn
            .prepare(
                "SELECT reason, COUNT(*), MAX(created_at) FROM upgrades
                 WHERE dry_run = 0 AND state IN ('failed', 'rolled_back') AND reason IS NOT NULL
                 GROUP BY reason ORDER BY COUNT(*) DESC, reason",
            )
            .map_err(wrap)?;
        let causes = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(wrap)?;
        let mut failures_by_cause = Vec::new();
        for (cause, count) in causes {
            let (example, last_upgrade) = conn
                .query_row(
                    "SELECT error, id FROM upgrades WHERE reason = ?1 AND dry_run = 0 ORDER BY created_at DESC, id DESC LIMIT 1",
                    [&cause],
                    |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, String>(1)?)),
                )
                .map_err(wrap)?;
            failures_by_cause.push(CauseCount {
                cause,
                count,
                example,
                last_upgrade,
            });
        }

        Ok(LedgerStats {
            total: by_state.values().sum(),
            by_state,
            success_rate,
            by_kind: by_kind.into_values().collect(),
            files_changed: files_changed as u64,
            top_files,
            rollbacks: rollbacks as u64,
            failures_by_cause,
            recent: self.upgrades(&[], recent)?,
        })
    }
}
