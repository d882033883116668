//! Generation rounds: what each round of generate → stage → gates cost and
//! produced, and each upgrade's token and cost totals.
//!
//! A round row is written once the round's outcome is known; the totals on
//! the upgrade row are updated in the same transaction, so they always
//! equal the sum of the rounds.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::{Ledger, Result, UpgradeId};

/// One round of an upgrade made by a provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationRound {
    pub upgrade_id: String,
    pub round: u32,
    pub provider: String,
    pub model: Option<String>,
    pub prompt_chars: u64,
    pub reply_chars: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// False when the model has no known price (then `cost_usd` is 0).
    pub cost_known: bool,
    pub edits: u64,
    /// passed | gate_failed | refused | error | stuck
    pub outcome: String,
    pub reason: Option<String>,
    /// What was sent back to the provider for the next round.
    pub feedback: Option<String>,
    /// `[{"name", "status"}]` of the gates run in this round.
    pub gates: serde_json::Value,
    pub output_tail: String,
    pub started_at: String,
    pub duration_ms: u64,
}

/// What one upgrade's generation cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpgradeUsage {
    pub id: String,
    pub title: String,
    pub state: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub rounds: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub cost_known: bool,
}

/// Generation cost over the whole ledger (dry runs included: they spend
/// tokens too).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageTotals {
    pub upgrades: u64,
    pub rounds: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Upgrades that used a model without a known price.
    pub unpriced_upgrades: u64,
    /// The most recent upgrades made by a provider, newest first.
    pub recent: Vec<UpgradeUsage>,
}

impl Ledger {
    /// Record the provider (and model) that makes `id`.
    pub fn set_provider(&self, id: &UpgradeId, provider: &str, model: Option<&str>) -> Result<()> {
        self.connection()
            .execute(
                "UPDATE upgrades SET provider = ?2, model = ?3 WHERE id = ?1",
                params![id.as_str(), provider, model],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Add a round and its cost to the upgrade's totals, atomically.
    pub fn record_round(&self, r: &GenerationRound) -> Result<()> {
        let conn = self.connection();
        let tx = conn.unchecked_transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO generation_rounds (upgrade_id, round, provider, model, prompt_chars, reply_chars,
                 input_tokens, output_tokens, cost_usd, cost_known, edits, outcome, reason, feedback, gates,
                 output_tail, started_at, duration_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            params![
                r.upgrade_id,
                r.round,
                r.provider,
                r.model,
                r.prompt_chars as i64,
                r.reply_chars as i64,
                r.input_tokens as i64,
                r.output_tokens as i64,
                r.cost_usd,
                r.cost_known,
                r.edits as i64,
                r.outcome,
                r.reason,
                r.feedback,
                r.gates.to_string(),
                r.output_tail,
                r.started_at,
                r.duration_ms as i64,
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "UPDATE upgrades SET rounds = rounds + 1, input_tokens = input_tokens + ?2,
                 output_tokens = output_tokens + ?3, cost_usd = cost_usd + ?4,
                 cost_known = cost_known AND ?5 WHERE id = ?1",
            params![
                r.upgrade_id,
                r.input_tokens as i64,
                r.output_tokens as i64,
                r.cost_usd,
                r.cost_known
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Set what the next round was told, on the row of round `round`.
    pub fn set_round_feedback(&self, id: &UpgradeId, round: u32, feedback: &str) -> Result<()> {
        self.connection()
            .execute(
                "UPDATE generation_rounds SET feedback = ?3 WHERE upgrade_id = ?1 AND round = ?2",
                params![id.as_str(), round, feedback],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Mark the last round as the one where the loop stopped, stuck.
    pub fn mark_round_stuck(&self, id: &UpgradeId, round: u32) -> Result<()> {
        self.connection()
            .execute(
                "UPDATE generation_rounds SET outcome = 'stuck' WHERE upgrade_id = ?1 AND round = ?2",
                params![id.as_str(), round],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn rounds(&self, id: &str) -> Result<Vec<GenerationRound>> {
        let mut stmt = self
            .connection()
            .prepare(
                "SELECT upgrade_id, round, provider, model, prompt_chars, reply_chars, input_tokens,
                        output_tokens, cost_usd, cost_known, edits, outcome, reason, feedback, gates,
                        output_tail, started_at, duration_ms
                 FROM generation_rounds WHERE upgrade_id = ?1 ORDER BY round, id",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([id], |r| {
            Ok(GenerationRound {
                upgrade_id: r.get(0)?,
                round: r.get(1)?,
                provider: r.get(2)?,
                model: r.get(3)?,
                prompt_chars: r.get::<_, i64>(4)? as u64,
                reply_chars: r.get::<_, i64>(5)? as u64,
                input_tokens: r.get::<_, i64>(6)? as u64,
                output_tokens: r.get::<_, i64>(7)? as u64,
                cost_usd: r.get(8)?,
                cost_known: r.get(9)?,
                edits: r.get::<_, i64>(10)? as u64,
                outcome: r.get(11)?,
                reason: r.get(12)?,
                feedback: r.get(13)?,
                gates: serde_json::from_str(&r.get::<_, String>(14)?).unwrap_or_default(),
                output_tail: r.get(15)?,
                started_at: r.get(16)?,
                duration_ms: r.get::<_, i64>(17)? as u64,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    /// One upgrade's generation totals (None when no such upgrade).
    pub fn usage(&self, id: &str) -> Result<Option<UpgradeUsage>> {
        self.connection()
            .query_row(
                &format!("SELECT {USAGE_COLUMNS} FROM upgrades WHERE id = ?1"),
                [id],
                read_usage,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Totals over every upgrade a provider made, and the `recent` newest.
    pub fn usage_totals(&self, recent: usize) -> Result<UsageTotals> {
        let conn = self.connection();
        let (upgrades, rounds, input, output, cost, unpriced) = conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(rounds), 0), COALESCE(SUM(input_tokens), 0),
                        COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_usd), 0),
                        COALESCE(SUM(cost_known = 0), 0)
                 FROM upgrades WHERE rounds > 0",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, f64>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                },
            )
            .map_err(|e| self.err(e))?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {USAGE_COLUMNS} FROM upgrades WHERE rounds > 0 ORDER BY created_at DESC, rowid DESC LIMIT ?1"
            ))
            .map_err(|e| self.err(e))?;
        let recent = stmt
            .query_map([recent as i64], read_usage)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        Ok(UsageTotals {
            upgrades: upgrades as u64,
            rounds: rounds as u64,
            input_tokens: input as u64,
            output_tokens: output as u64,
            cost_usd: cost,
            unpriced_upgrades: unpriced as u64,
            recent,
        })
    }

    /// Forget the file changes recorded for `id` (a repair round replaces
    /// the staged change, and with it the list of files).
    pub fn clear_file_changes(&self, id: &UpgradeId) -> Result<()> {
        self.connection()
            .execute("DELETE FROM file_changes WHERE upgrade_id = ?1", [id.as_str()])
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

const USAGE_COLUMNS: &str =
    "id, title, state, provider, model, rounds, input_tokens, output_tokens, cost_usd, cost_known";

fn read_usage(r: &rusqlite::Row<'_>) -> rusqlite::Result<UpgradeUsage> {
    Ok(UpgradeUsage {
        id: r.get(0)?,
        title: r.get(1)?,
        state: r.get(2)?,
        provider: r.get(3)?,
        model: r.get(4)?,
        rounds: r.get::<_, i64>(5)? as u64,
        input_tokens: r.get::<_, i64>(6)? as u64,
        output_tokens: r.get::<_, i64>(7)? as u64,
        cost_usd: r.get(8)?,
        cost_known: r.get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewUpgrade, RequestKind, UpgradeState};

    fn upgrade(l: &Ledger) -> UpgradeId {
        let id = UpgradeId::generate(chrono::Utc::now());
        l.insert_upgrade(&NewUpgrade {
            id: id.clone(),
            kind: RequestKind::Instruction,
            title: "add /version".into(),
            request: serde_json::json!({}),
            requested_by: "test".into(),
            priority: 5,
            dry_run: false,
            state: UpgradeState::Generating,
        })
        .unwrap();
        id
    }

    fn round(id: &UpgradeId, n: u32, input: u64, cost: f64, known: bool) -> GenerationRound {
        GenerationRound {
            upgrade_id: id.to_string(),
            round: n,
            provider: "claude".into(),
            model: Some("claude-sonnet-4-5".into()),
            prompt_chars: 4000,
            reply_chars: 300,
            input_tokens: input,
            output_tokens: 100,
            cost_usd: cost,
            cost_known: known,
            edits: 1,
            outcome: "gate_failed".into(),
            gates: serde_json::json!([{"name": "test", "status": "failed"}]),
            started_at: crate::now(),
            ..Default::default()
        }
    }

    #[test]
    fn rounds_add_up_on_the_upgrade_and_in_totals() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.db")).unwrap();
        let a = upgrade(&l);
        l.set_provider(&a, "claude", Some("claude-sonnet-4-5")).unwrap();
        l.record_round(&round(&a, 1, 1000, 0.01, true)).unwrap();
        l.set_round_feedback(&a, 1, "gate `test` failed").unwrap();
        l.record_round(&round(&a, 2, 2000, 0.02, true)).unwrap();
        let b = upgrade(&l);
        l.record_round(&round(&b, 1, 500, 0.0, false)).unwrap();
        l.mark_round_stuck(&b, 1).unwrap();

        let u = l.usage(a.as_str()).unwrap().unwrap();
        assert_eq!((u.rounds, u.input_tokens, u.output_tokens), (2, 3000, 200));
        assert!((u.cost_usd - 0.03).abs() < 1e-9);
        assert!(u.cost_known);
        assert_eq!(u.provider.as_deref(), Some("claude"));
        let rounds = l.rounds(a.as_str()).unwrap();
        assert_eq!(rounds.len(), 2);
        assert_eq!(rounds[0].feedback.as_deref(), Some("gate `test` failed"));
        assert_eq!(
            rounds[1],
            round(&a, 2, 2000, 0.02, true).clone_with(&rounds[1].started_at)
        );
        assert_eq!(l.rounds(b.as_str()).unwrap()[0].outcome, "stuck");
        assert!(!l.usage(b.as_str()).unwrap().unwrap().cost_known);

        let t = l.usage_totals(10).unwrap();
        assert_eq!(
            (t.upgrades, t.rounds, t.input_tokens, t.unpriced_upgrades),
            (2, 3, 3500, 1)
        );
        assert!((t.cost_usd - 0.03).abs() < 1e-9);
        assert_eq!(t.recent[0].id, b.to_string());
    }

    impl GenerationRound {
        fn clone_with(&self, started_at: &str) -> GenerationRound {
            GenerationRound {
                started_at: started_at.to_string(),
                ..self.clone()
            }
        }
    }
}
