//! Figures over time for the dashboard's charts: outcomes per day, per
//! kind, gate durations, rollbacks with their causes, cost per upgrade.
//!
//! Dry runs are left out, as in [`crate::stats`]: they are not outcomes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Ledger, Result};

/// Outcomes of the upgrades created on one day (UTC).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DayOutcomes {
    /// `2026-11-21`.
    pub day: String,
    pub promoted: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub cancelled: u64,
}

/// Outcomes of one request kind, every state counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindOutcomes {
    pub kind: String,
    pub by_state: BTreeMap<String, u64>,
}

/// One gate's runs: how long each took, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct GateSeries {
    pub name: String,
    pub runs: Vec<GatePoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GatePoint {
    pub upgrade_id: String,
    pub status: String,
    pub duration_ms: u64,
    pub started_at: String,
}

/// One rollback.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackPoint {
    pub upgrade_id: String,
    pub at: String,
    pub cause: String,
    pub requested_by: String,
}

/// What an upgrade cost to generate.
#[derive(Debug, Clone, Serialize)]
pub struct CostPoint {
    pub upgrade_id: String,
    pub created_at: String,
    pub cost_usd: f64,
    pub cost_known: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub by_day: Vec<DayOutcomes>,
    pub by_kind: Vec<KindOutcomes>,
    pub gates: Vec<GateSeries>,
    pub rollbacks: Vec<RollbackPoint>,
    pub cost: Vec<CostPoint>,
}

impl Ledger {
    /// The dashboard's chart figures over the newest `limit` upgrades (and
    /// the gate runs and rollbacks that belong to them).
    pub fn series(&self, limit: usize) -> Result<Series> {
        let conn = self.connection();
        let wrap = |e| self.err(e);
        let newest = "SELECT id FROM upgrades WHERE dry_run = 0 ORDER BY created_at DESC, id DESC LIMIT ?1";

        let mut by_day: BTreeMap<String, DayOutcomes> = BTreeMap::new();
        let mut by_kind: BTreeMap<String, KindOutcomes> = BTreeMap::new();
        let mut cost = Vec::new();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT id, kind, state, created_at, cost_usd, cost_known, input_tokens, output_tokens
                 FROM upgrades WHERE id IN ({newest}) ORDER BY created_at, id"
            ))
            .map_err(wrap)?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, f64>(4)?,
                    r.get::<_, i64>(5)? != 0,
                    r.get::<_, i64>(6)?.max(0) as u64,
                    r.get::<_, i64>(7)?.max(0) as u64,
                ))
            })
            .map_err(wrap)?;
        for row in rows {
            let (id, kind, state, created_at, cost_usd, cost_known, input_tokens, output_tokens) =
                row.map_err(wrap)?;
            let day = created_at.get(..10).unwrap_or(&created_at).to_string();
            let d = by_day.entry(day.clone()).or_insert_with(|| DayOutcomes {
                day,
                ..DayOutcomes::default()
            });
            match state.as_str() {
                "promoted" => d.promoted += 1,
                "failed" => d.failed += 1,
                "rolled_back" => d.rolled_back += 1,
                "cancelled" => d.cancelled += 1,
                _ => {}
            }
            let k = by_kind.entry(kind.clone()).or_insert_with(|| KindOutcomes {
                kind,
                by_state: BTreeMap::new(),
            });
            *k.by_state.entry(state).or_insert(0) += 1;
            if input_tokens + output_tokens > 0 || cost_usd > 0.0 {
                cost.push(CostPoint {
                    upgrade_id: id,
                    created_at,
                    cost_usd,
                    cost_known,
                    input_tokens,
                    output_tokens,
                });
            }
        }

        let mut gates: BTreeMap<String, GateSeries> = BTreeMap::new();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT name, upgrade_id, status, duration_ms, started_at FROM gate_runs
                 WHERE upgrade_id IN ({newest}) ORDER BY started_at, id"
            ))
            .map_err(wrap)?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    GatePoint {
                        upgrade_id: r.get(1)?,
                        status: r.get(2)?,
                        duration_ms: r.get::<_, i64>(3)?.max(0) as u64,
                        started_at: r.get(4)?,
                    },
                ))
            })
            .map_err(wrap)?;
        for row in rows {
            let (name, point) = row.map_err(wrap)?;
            gates
                .entry(name.clone())
                .or_insert_with(|| GateSeries {
                    name,
                    runs: Vec::new(),
                })
                .runs
                .push(point);
        }

        let mut stmt = conn
            .prepare(&format!(
                "SELECT upgrade_id, at, cause, requested_by FROM rollbacks
                 WHERE upgrade_id IN ({newest}) ORDER BY at, id"
            ))
            .map_err(wrap)?;
        let rollbacks = stmt
            .query_map([limit as i64], |r| {
                Ok(RollbackPoint {
                    upgrade_id: r.get(0)?,
                    at: r.get(1)?,
                    cause: r.get(2)?,
                    requested_by: r.get(3)?,
                })
            })
            .map_err(wrap)?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(wrap)?;

        Ok(Series {
            by_day: by_day.into_values().collect(),
            by_kind: by_kind.into_values().collect(),
            gates: gates.into_values().collect(),
            rollbacks,
            cost,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn series_count_outcomes_by_day_and_kind_and_leave_dry_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        let rows = [
            (
                "upg_20261120_100000_aaaaaa",
                "patch",
                "promoted",
                "2026-11-20T10:00:00.000Z",
                0,
                0.0,
            ),
            (
                "upg_20261120_110000_bbbbbb",
                "patch",
                "rolled_back",
                "2026-11-20T11:00:00.000Z",
                0,
                0.0,
            ),
            (
                "upg_20261121_100000_cccccc",
                "instruction",
                "failed",
                "2026-11-21T10:00:00.000Z",
                0,
                0.25,
            ),
            (
                "upg_20261121_110000_dddddd",
                "instruction",
                "promoted",
                "2026-11-21T11:00:00.000Z",
                1,
                0.5,
            ),
        ];
        for (id, kind, state, at, dry, cost) in rows {
            l.connection()
                .execute(
                    "INSERT INTO upgrades (id, kind, title, request, requested_by, state, created_at, updated_at, dry_run, cost_usd, input_tokens)
                     VALUES (?1, ?2, 't', '{}', 'test', ?3, ?4, ?4, ?5, ?6, 10)",
                    rusqlite::params![id, kind, state, at, dry, cost],
                )
                .unwrap();
        }
        l.connection()
            .execute_batch(
                "INSERT INTO gate_runs (upgrade_id, name, kind, required, status, duration_ms, started_at)
                   VALUES ('upg_20261120_100000_aaaaaa', 'test', 'test', 1, 'passed', 1200, '2026-11-20T10:00:01.000Z'),
                          ('upg_20261121_110000_dddddd', 'test', 'test', 1, 'passed', 9, '2026-11-21T11:00:01.000Z');
                 INSERT INTO rollbacks (upgrade_id, at, cause, requested_by)
                   VALUES ('upg_20261120_110000_bbbbbb', '2026-11-20T11:05:00.000Z', 'unhealthy', 'watch');",
            )
            .unwrap();
        let s = l.series(100).unwrap();
        assert_eq!(
            s.by_day,
            vec![
                DayOutcomes {
                    day: "2026-11-20".into(),
                    promoted: 1,
                    rolled_back: 1,
                    ..Default::default()
                },
                DayOutcomes {
                    day: "2026-11-21".into(),
                    failed: 1,
                    ..Default::default()
                },
            ]
        );
        let kinds: Vec<(&str, u64)> = s
            .by_kind
            .iter()
            .map(|k| (k.kind.as_str(), k.by_state.values().sum()))
            .collect();
        assert_eq!(kinds, [("instruction", 1), ("patch", 2)]);
        assert_eq!(s.gates.len(), 1);
        assert_eq!(s.gates[0].runs.len(), 1, "the dry run's gate run is left out");
        assert_eq!(s.gates[0].runs[0].duration_ms, 1200);
        assert_eq!(s.rollbacks[0].cause, "unhealthy");
        assert_eq!(s.cost.len(), 3);
        assert_eq!(s.cost[2].cost_usd, 0.25);
        // The limit keeps the newest.
        assert_eq!(l.series(1).unwrap().by_day[0].day, "2026-11-21");
    }
}
