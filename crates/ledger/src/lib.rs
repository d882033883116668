//! The ledger: Graft's audit store, one SQLite file under `.graft/`.
//!
//! Every upgrade, every pipeline step (a journal row before and after it
//! runs), every gate run, file change, data backup and rollback is recorded
//! here. Crash recovery reads the journal to find an upgrade left mid-step.
//!
//! API boundary: callers speak in records ([`Upgrade`], [`GateRun`], ...),
//! never in SQL, so the store can later move to PostgreSQL behind the same
//! methods. This crate knows nothing of git, gates or processes.
//!
//! Durability: WAL mode with `synchronous = NORMAL`. A committed row
//! survives the process being killed at any instant (the case Graft's crash
//! tests prove): nothing is lost then. The WAL is synced to disk only when
//! it is checkpointed, and closing does not checkpoint
//! (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`): only the automatic checkpoint
//! every 1,000 pages does. So a power loss or an OS crash can drop every
//! commit since the last one, which may be the work of several commands,
//! not only the latest. The agent's task and history are the exception:
//! they are written with `synchronous = FULL`, synced before the call
//! returns. The `-wal` file stays beside `ledger.db` (copy both, or open
//! and `VACUUM INTO`, to take a copy).
//!
//! A WAL is reused from its start only by a writer that sees it fully
//! checkpointed, and a process that opens the ledger first rebuilds the
//! WAL's index with nothing marked checkpointed: so a row of short
//! commands, each committing once, would grow the WAL without end (and
//! each open reads all of it). Opening a ledger whose WAL is over
//! [`WAL_LIMIT`] therefore checkpoints it and truncates it, without
//! waiting for a reader that holds it (then the next open tries again).

mod control;
mod generation;
mod model;
mod orchestration;
mod record;
mod schema;
mod series;
mod stats;
mod supervisor;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};

pub use control::{GateDurations, OutboxCounts, OutboxRow, Window, WindowUsage};
pub use generation::{GenerationRound, UpgradeUsage, UsageTotals};
pub use model::*;
pub use orchestration::{FileMetrics, LearningRow, MetricsDelta, StoredRequest};
pub use record::{ASKED_MAX, Approval, UpgradeRecord};
pub use series::{CostPoint, DayOutcomes, GatePoint, GateSeries, KindOutcomes, RollbackPoint, Series};
pub use stats::{CauseCount, KindStats, LedgerStats};
pub use supervisor::{AgentTask, BadHistory, HistoryEntry, InstanceRow, LiveRow, NewHistory, ReleaseRow};

/// A ledger error: the database could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "ledger {path} was written by a newer Graft (schema {found}, this build knows {known}); upgrade graft"
    )]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("no upgrade `{0}` in the ledger (`graft status` lists them)")]
    UnknownUpgrade(String),
}

pub type Result<T> = std::result::Result<T, LedgerError>;

/// The current time as the ledger writes it (RFC 3339, UTC, milliseconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An open ledger. Not `Sync`: share it behind a mutex or open one per
/// thread (SQLite serialises writers across connections and processes).
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

/// How long a statement waits for another process's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The WAL size past which opening the ledger truncates it (about 1,000
/// pages: the automatic checkpoint has copied them into the file by then).
pub const WAL_LIMIT: u64 = 4 << 20;

impl Ledger {
    /// Open (creating if needed) the ledger at `path` and bring its schema
    /// up to date.
    pub fn open(path: &Path) -> Result<Ledger> {
        let wrap = |source| LedgerError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(wrap)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(wrap)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(wrap)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(wrap)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(wrap)?;
        // Most graft commands are short processes: a checkpoint when each
        // closes cost two fsyncs (tens of ms) every time. The WAL stays
        // beside the file and is checkpointed as it grows (every 1,000
        // pages, by whichever connection commits then); what that costs a
        // power cut is in the module's first lines.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(wrap)?;
        let mut ledger = Ledger {
            conn,
            path: path.to_path_buf(),
        };
        ledger.migrate()?;
        ledger.bound_wal();
        Ok(ledger)
    }

    /// Checkpoint and truncate a WAL over [`WAL_LIMIT`] (see the module
    /// notes); a busy ledger is left for the next open.
    fn bound_wal(&self) {
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        if std::fs::metadata(&wal).map_or(true, |m| m.len() <= WAL_LIMIT) {
            return;
        }
        let _ = self.conn.busy_timeout(Duration::ZERO);
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<()> {
        let known = schema::MIGRATIONS.len() as i64;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| LedgerError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| LedgerError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
        if version > known {
            return Err(LedgerError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)
                .and_then(|_| tx.pragma_update(None, "user_version", (i + 1) as i64))
                .map_err(|e| LedgerError::Sqlite {
                    path: self.path.clone(),
                    source: e,
                })?;
        }
        tx.commit().map_err(|e| LedgerError::Sqlite {
            path: self.path.clone(),
            source: e,
        })
    }

    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Direct access for the crates that own a table (the analyzer's scans,
    /// say) and for tests. Pipeline code uses the typed methods.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    // ---- upgrades ------------------------------------------------------

    pub fn insert_upgrade(&self, u: &NewUpgrade) -> Result<()> {
        let now = now();
        self.conn
            .execute(
                "INSERT INTO upgrades (id, kind, title, request, requested_by, priority, state, dry_run, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                params![
                    u.id.as_str(),
                    u.kind.as_str(),
                    u.title,
                    u.request.to_string(),
                    u.requested_by,
                    u.priority,
                    u.state.as_str(),
                    u.dry_run,
                    now
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn upgrade(&self, id: &str) -> Result<Option<Upgrade>> {
        self.conn
            .query_row(
                &format!("SELECT {UPGRADE_COLUMNS} FROM upgrades WHERE id = ?1"),
                [id],
                read_upgrade,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Like [`Ledger::upgrade`], but a missing id is an error.
    pub fn get_upgrade(&self, id: &str) -> Result<Upgrade> {
        self.upgrade(id)?
            .ok_or_else(|| LedgerError::UnknownUpgrade(id.to_string()))
    }

    /// Upgrades, newest first; `states` empty means all.
    pub fn upgrades(&self, states: &[UpgradeState], limit: usize) -> Result<Vec<Upgrade>> {
        let mut sql = format!("SELECT {UPGRADE_COLUMNS} FROM upgrades");
        if !states.is_empty() {
            let list: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
            sql.push_str(&format!(" WHERE state IN ({})", list.join(",")));
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?1");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit as i64], read_upgrade)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Apply `update` to upgrade `id`. Entering a terminal state sets
    /// `finished_at`.
    pub fn update_upgrade(&self, id: &UpgradeId, update: &UpgradeUpdate) -> Result<()> {
        let mut sets: Vec<&str> = vec!["updated_at = :now"];
        let now = now();
        let mut values: Vec<(&str, rusqlite::types::Value)> = vec![(":now", now.clone().into())];
        let text = |v: &Option<String>| -> rusqlite::types::Value {
            v.clone().map_or(rusqlite::types::Value::Null, Into::into)
        };
        if let Some(s) = update.state {
            sets.push("state = :state");
            values.push((":state", s.as_str().to_string().into()));
            if s.is_terminal() {
                sets.push("finished_at = :now");
            }
        }
        macro_rules! opt {
            ($field:ident, $col:literal) => {
                if let Some(v) = &update.$field {
                    sets.push(concat!($col, " = :", $col));
                    values.push((concat!(":", $col), text(v)));
                }
            };
        }
        macro_rules! val {
            ($field:ident, $col:literal) => {
                if let Some(v) = &update.$field {
                    sets.push(concat!($col, " = :", $col));
                    values.push((concat!(":", $col), v.clone().into()));
                }
            };
        }
        opt!(reason, "reason");
        opt!(error, "error");
        opt!(branch, "branch");
        opt!(approval, "approval");
        opt!(approved_level, "approved_level");
        opt!(approval_requested_at, "approval_requested_at");
        opt!(approved_by, "approved_by");
        val!(source, "source");
        val!(retry_of, "retry_of");
        val!(target_branch, "target_branch");
        val!(base_commit, "base_commit");
        val!(staged_commit, "staged_commit");
        val!(landed_commit, "landed_commit");
        val!(revert_commit, "revert_commit");
        val!(risk, "risk");
        if let Some(a) = update.attempt {
            sets.push("attempt = :attempt");
            values.push((":attempt", a.into()));
        }
        if let Some(r) = &update.risk_reasons {
            sets.push("risk_reasons = :risk_reasons");
            values.push((
                ":risk_reasons",
                serde_json::to_string(r).unwrap_or_default().into(),
            ));
        }
        let sql = format!("UPDATE upgrades SET {} WHERE id = :id", sets.join(", "));
        values.push((":id", id.as_str().to_string().into()));
        let params: Vec<(&str, &dyn rusqlite::ToSql)> = values
            .iter()
            .map(|(k, v)| (*k, v as &dyn rusqlite::ToSql))
            .collect();
        let n = self
            .conn
            .execute(&sql, params.as_slice())
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(LedgerError::UnknownUpgrade(id.to_string()));
        }
        Ok(())
    }

    /// Shorthand: move to `state`.
    pub fn set_state(&self, id: &UpgradeId, state: UpgradeState) -> Result<()> {
        self.update_upgrade(
            id,
            &UpgradeUpdate {
                state: Some(state),
                ..Default::default()
            },
        )
    }

    /// Shorthand: end in `state` with a machine `reason` and a human `error`.
    pub fn finish_with(&self, id: &UpgradeId, state: UpgradeState, reason: &str, error: &str) -> Result<()> {
        self.update_upgrade(
            id,
            &UpgradeUpdate {
                state: Some(state),
                reason: Some(Some(reason.to_string())),
                error: Some(Some(error.to_string())),
                ..Default::default()
            },
        )
    }

    /// Store the staged change as a unified diff (kept even when git has
    /// forgotten an unlanded commit).
    pub fn set_diff(&self, id: &UpgradeId, diff: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE upgrades SET diff = ?2 WHERE id = ?1",
                params![id.as_str(), diff],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn diff(&self, id: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT diff FROM upgrades WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }

    /// Ask the process running upgrade `id` to stop at the next check.
    pub fn request_cancel(&self, id: &UpgradeId) -> Result<()> {
        self.conn
            .execute(
                "UPDATE upgrades SET cancel_requested = 1 WHERE id = ?1",
                [id.as_str()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn cancel_requested(&self, id: &UpgradeId) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT cancel_requested FROM upgrades WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map(|v| v.unwrap_or(false))
            .map_err(|e| self.err(e))
    }

    // ---- the journal ---------------------------------------------------

    /// Record that `step` is about to run.
    pub fn step_begin(&self, id: &UpgradeId, step: &str, detail: &serde_json::Value) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO steps (upgrade_id, step, phase, at, detail) VALUES (?1, ?2, 'begin', ?3, ?4)",
                params![id.as_str(), step, now(), detail.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Record that `step` has ended.
    pub fn step_end(
        &self,
        id: &UpgradeId,
        step: &str,
        outcome: StepOutcome,
        detail: &serde_json::Value,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO steps (upgrade_id, step, phase, outcome, at, detail) VALUES (?1, ?2, 'end', ?3, ?4, ?5)",
                params![id.as_str(), step, outcome.as_str(), now(), detail.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The journal of an upgrade, in order.
    pub fn steps(&self, id: &str) -> Result<Vec<StepRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, upgrade_id, step, phase, outcome, at, detail FROM steps WHERE upgrade_id = ?1 ORDER BY id")
            .map_err(|e| self.err(e))?;
        stmt.query_map([id], |r| {
            Ok(StepRow {
                id: r.get(0)?,
                upgrade_id: r.get(1)?,
                step: r.get(2)?,
                phase: r.get(3)?,
                outcome: r.get::<_, Option<String>>(4)?.and_then(|s| s.parse().ok()),
                at: r.get(5)?,
                detail: json(r.get::<_, String>(6)?),
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    /// Steps that began and never ended, in order (after a crash, the last
    /// one is where the process died).
    pub fn open_steps(&self, id: &str) -> Result<Vec<String>> {
        let mut open: Vec<String> = Vec::new();
        for row in self.steps(id)? {
            if row.phase == "begin" {
                open.push(row.step);
            } else if let Some(pos) = open.iter().rposition(|s| *s == row.step) {
                open.remove(pos);
            }
        }
        Ok(open)
    }

    /// Upgrades with a step that began and never ended, or in a state where
    /// a process works on them: after a crash, the ones to recover.
    pub fn unfinished_upgrades(&self) -> Result<Vec<Upgrade>> {
        let sql = format!(
            "SELECT {UPGRADE_COLUMNS} FROM upgrades u WHERE u.state IN ('generating','staging','validating','deploying','watching')
             OR EXISTS (SELECT 1 FROM steps b WHERE b.upgrade_id = u.id AND b.phase = 'begin'
                        AND NOT EXISTS (SELECT 1 FROM steps e WHERE e.upgrade_id = b.upgrade_id AND e.step = b.step
                                        AND e.phase = 'end' AND e.id > b.id))
             ORDER BY u.created_at, u.id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        stmt.query_map([], read_upgrade)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    /// Whether `step` has an `ok` end row.
    pub fn step_done(&self, id: &str, step: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM steps WHERE upgrade_id = ?1 AND step = ?2 AND phase = 'end' AND outcome = 'ok' LIMIT 1",
                [id, step],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.err(e))
    }

    // ---- gates, files, data, rollbacks --------------------------------

    pub fn record_gate_run(&self, g: &GateRun) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO gate_runs (upgrade_id, round, name, kind, required, status, exit_code, duration_ms, output_tail, figure, baseline, started_at, first_error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    g.upgrade_id,
                    g.round,
                    g.name,
                    g.kind,
                    g.required,
                    g.status.as_str(),
                    g.exit_code,
                    g.duration_ms as i64,
                    g.output_tail,
                    g.figure,
                    g.baseline,
                    g.started_at,
                    g.first_error
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn gate_runs(&self, id: &str) -> Result<Vec<GateRun>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT upgrade_id, round, name, kind, required, status, exit_code, duration_ms, output_tail, figure, baseline, started_at, first_error
                 FROM gate_runs WHERE upgrade_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([id], |r| {
            Ok(GateRun {
                upgrade_id: r.get(0)?,
                round: r.get(1)?,
                name: r.get(2)?,
                kind: r.get(3)?,
                required: r.get(4)?,
                status: r.get::<_, String>(5)?.parse().unwrap_or(GateStatus::Error),
                exit_code: r.get(6)?,
                duration_ms: r.get::<_, i64>(7)? as u64,
                output_tail: r.get(8)?,
                figure: r.get(9)?,
                baseline: r.get(10)?,
                started_at: r.get(11)?,
                first_error: r.get(12)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    /// Replace the recorded file changes of an upgrade.
    pub fn record_file_changes(&self, id: &UpgradeId, files: &[FileChange]) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM file_changes WHERE upgrade_id = ?1", [id.as_str()])
            .map_err(|e| self.err(e))?;
        for f in files {
            tx.execute(
                "INSERT INTO file_changes (upgrade_id, path, old_path, kind, lines_added, lines_removed, blob_before, blob_after)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id.as_str(),
                    f.path,
                    f.old_path,
                    f.kind,
                    f.lines_added as i64,
                    f.lines_removed as i64,
                    f.blob_before,
                    f.blob_after
                ],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    pub fn file_changes(&self, id: &str) -> Result<Vec<FileChange>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT path, old_path, kind, lines_added, lines_removed, blob_before, blob_after
                 FROM file_changes WHERE upgrade_id = ?1 ORDER BY path",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([id], |r| {
            Ok(FileChange {
                path: r.get(0)?,
                old_path: r.get(1)?,
                kind: r.get(2)?,
                lines_added: r.get::<_, i64>(3)? as u64,
                lines_removed: r.get::<_, i64>(4)? as u64,
                blob_before: r.get(5)?,
                blob_after: r.get(6)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    /// Record the content hash of each file at `commit` (None: deleted).
    pub fn record_file_versions(
        &self,
        id: Option<&UpgradeId>,
        commit: &str,
        files: &[(String, Option<String>)],
    ) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let now = now();
        for (path, sha) in files {
            tx.execute(
                "INSERT INTO file_versions (path, sha256, commit_id, upgrade_id, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![path, sha, commit, id.map(|i| i.as_str()), now],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// The recorded versions of `path`, newest first.
    pub fn file_versions(&self, path: &str) -> Result<Vec<FileVersion>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT sha256, commit_id, upgrade_id FROM file_versions WHERE path = ?1 ORDER BY id DESC",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([path], |r| {
            Ok(FileVersion {
                sha256: r.get(0)?,
                commit: r.get(1)?,
                upgrade_id: r.get(2)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    pub fn record_data_backups(&self, id: &UpgradeId, backups: &[DataBackup]) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        for b in backups {
            tx.execute(
                "INSERT OR REPLACE INTO data_backups (upgrade_id, path, existed, sha256, backup_path) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id.as_str(), b.path, b.existed, b.sha256, b.backup_path],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    pub fn data_backups(&self, id: &str) -> Result<Vec<DataBackup>> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, existed, sha256, backup_path FROM data_backups WHERE upgrade_id = ?1 ORDER BY path")
            .map_err(|e| self.err(e))?;
        stmt.query_map([id], |r| {
            Ok(DataBackup {
                path: r.get(0)?,
                existed: r.get(1)?,
                sha256: r.get(2)?,
                backup_path: r.get(3)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    pub fn record_rollback(&self, r: &Rollback) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO rollbacks (upgrade_id, at, cause, requested_by, revert_commit, data_restored, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    r.upgrade_id,
                    r.at,
                    r.cause,
                    r.requested_by,
                    r.revert_commit,
                    r.data_restored,
                    r.detail.to_string()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn rollbacks(&self, id: Option<&str>) -> Result<Vec<Rollback>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT upgrade_id, at, cause, requested_by, revert_commit, data_restored, detail FROM rollbacks
                 WHERE ?1 IS NULL OR upgrade_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([id], |r| {
            Ok(Rollback {
                upgrade_id: r.get(0)?,
                at: r.get(1)?,
                cause: r.get(2)?,
                requested_by: r.get(3)?,
                revert_commit: r.get(4)?,
                data_restored: r.get(5)?,
                detail: json(r.get::<_, String>(6)?),
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    // ---- scans and suggestions -----------------------------------------

    /// Store a scan and its suggestions, in one transaction, and drop the
    /// suggestions of the scans older than the newest `keep` (see
    /// `prune_suggestions`).
    pub fn insert_scan<'a>(
        &self,
        scan: &Scan,
        suggestions: impl IntoIterator<Item = NewSuggestion<'a>>,
        keep: u64,
    ) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO scans (id, created_at, root, scope, commit_id, duration_ms, summary) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                scan.id,
                scan.created_at,
                scan.root,
                scan.scope,
                scan.commit_id,
                scan.duration_ms as i64,
                scan.summary.to_string()
            ],
        )
        .map_err(|e| self.err(e))?;
        // One prepared statement each for every row: a scan may hold
        // thousands. A body already kept (the same suggestion found by an
        // earlier scan) is pointed at, not written again.
        let mut find_body = tx
            .prepare_cached("SELECT id FROM suggestion_bodies WHERE digest = ?1")
            .map_err(|e| self.err(e))?;
        let mut add_body = tx
            .prepare_cached(
                "INSERT INTO suggestion_bodies (digest, kind, title, files, risk, priority, instruction, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(|e| self.err(e))?;
        let mut add = tx
            .prepare_cached("INSERT INTO suggestions (id, scan_id, body_id) VALUES (?1, ?2, ?3)")
            .map_err(|e| self.err(e))?;
        let mut in_use = std::collections::HashSet::new();
        for s in suggestions {
            let digest = body_digest(&s);
            let known: Option<i64> = find_body
                .query_row([&digest[..]], |r| r.get(0))
                .optional()
                .map_err(|e| self.err(e))?;
            let body = match known {
                Some(id) => id,
                None => {
                    add_body
                        .execute(params![
                            &digest[..],
                            s.kind,
                            s.title,
                            serde_json::to_string(s.files).unwrap_or_default(),
                            s.risk,
                            s.priority,
                            s.instruction,
                            s.detail.to_string()
                        ])
                        .map_err(|e| self.err(e))?;
                    tx.last_insert_rowid()
                }
            };
            add.execute(params![s.id, scan.id, body])
                .map_err(|e| self.err(e))?;
            in_use.insert(body);
        }
        drop((find_body, add_body, add));
        self.prune_suggestions(&tx, keep, &in_use)?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Keep the suggestions of the newest `keep` scans (and any an upgrade
    /// was made from); drop the others' rows, and the bodies no row points
    /// at any more. A scan's summary is always kept (charts and history),
    /// marked with when its suggestions went. `in_use`: bodies the scan
    /// just stored points at, which stay (most of what the dropped scan
    /// found is found again). Returns how many rows went.
    fn prune_suggestions(
        &self,
        tx: &rusqlite::Transaction<'_>,
        keep: u64,
        in_use: &std::collections::HashSet<i64>,
    ) -> Result<usize> {
        // Scans past the newest `keep` whose suggestions are still here:
        // usually none or one, the scan that has just fallen out.
        let old: Vec<String> = tx
            .prepare_cached(
                "SELECT id FROM scans WHERE suggestions_pruned_at IS NULL AND id NOT IN
                   (SELECT id FROM scans ORDER BY created_at DESC, id DESC LIMIT ?1)",
            )
            .and_then(|mut s| s.query_map([keep as i64], |r| r.get(0))?.collect())
            .map_err(|e| self.err(e))?;
        if old.is_empty() {
            return Ok(0);
        }
        let now = crate::now();
        let mut bodies: Vec<i64> = Vec::new();
        let mut dropped = 0;
        {
            let mut drop_rows = tx
                .prepare_cached(
                    "DELETE FROM suggestions WHERE scan_id = ?1 AND upgrade_id IS NULL RETURNING body_id",
                )
                .map_err(|e| self.err(e))?;
            let mut mark = tx
                .prepare_cached("UPDATE scans SET suggestions_pruned_at = ?2 WHERE id = ?1")
                .map_err(|e| self.err(e))?;
            for id in &old {
                let gone: Vec<i64> = drop_rows
                    .query_map([id], |r| r.get(0))
                    .and_then(|rows| rows.collect())
                    .map_err(|e| self.err(e))?;
                dropped += gone.len();
                bodies.extend(gone);
                mark.execute(params![id, now]).map_err(|e| self.err(e))?;
            }
        }
        bodies.sort_unstable();
        bodies.dedup();
        bodies.retain(|b| !in_use.contains(b));
        if bodies.is_empty() {
            return Ok(dropped);
        }
        // What the kept rows name, in one pass (no index on body_id: see
        // migration 8); a body none names goes.
        let named: std::collections::HashSet<i64> = tx
            .prepare_cached("SELECT DISTINCT body_id FROM suggestions")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.err(e))?;
        let mut drop_body = tx
            .prepare_cached("DELETE FROM suggestion_bodies WHERE id = ?1")
            .map_err(|e| self.err(e))?;
        for b in bodies.into_iter().filter(|b| !named.contains(b)) {
            drop_body.execute([b]).map_err(|e| self.err(e))?;
        }
        Ok(dropped)
    }

    pub fn scan(&self, id: &str) -> Result<Option<Scan>> {
        self.conn
            .query_row(
                &format!("SELECT {SCAN_COLUMNS} FROM scans WHERE id = ?1"),
                [id],
                read_scan,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Scans, newest first.
    pub fn scans(&self, limit: usize) -> Result<Vec<Scan>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {SCAN_COLUMNS} FROM scans ORDER BY created_at DESC, id DESC LIMIT ?1"
            ))
            .map_err(|e| self.err(e))?;
        stmt.query_map([limit as i64], read_scan)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    /// The suggestions of a scan, highest priority first.
    pub fn suggestions(&self, scan_id: &str) -> Result<Vec<Suggestion>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {SUGGESTION_COLUMNS} FROM {SUGGESTION_FROM} WHERE s.scan_id = ?1 ORDER BY b.priority DESC, s.id"
            ))
            .map_err(|e| self.err(e))?;
        stmt.query_map([scan_id], read_suggestion)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    pub fn suggestion(&self, id: &str) -> Result<Option<Suggestion>> {
        self.conn
            .query_row(
                &format!("SELECT {SUGGESTION_COLUMNS} FROM {SUGGESTION_FROM} WHERE s.id = ?1"),
                [id],
                read_suggestion,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Record that `upgrade_id` was made from suggestion `id`.
    pub fn link_suggestion(&self, id: &str, upgrade_id: &UpgradeId) -> Result<()> {
        self.conn
            .execute(
                "UPDATE suggestions SET upgrade_id = ?2 WHERE id = ?1",
                params![id, upgrade_id.as_str()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    // ---- perf baselines ------------------------------------------------

    /// The figure `gate` measured for `commit`, if any.
    pub fn perf_baseline(&self, gate: &str, commit: &str) -> Result<Option<f64>> {
        self.conn
            .query_row(
                "SELECT figure FROM perf_baselines WHERE gate = ?1 AND commit_id = ?2",
                [gate, commit],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn set_perf_baseline(
        &self,
        gate: &str,
        commit: &str,
        figure: f64,
        upgrade: Option<&UpgradeId>,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO perf_baselines (gate, commit_id, figure, upgrade_id, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![gate, commit, figure, upgrade.map(|u| u.as_str()), now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

pub(crate) const UPGRADE_COLUMNS: &str = "id, kind, title, request, requested_by, priority, risk, risk_reasons, state, reason, error, dry_run, \
     target_branch, base_commit, staged_commit, branch, landed_commit, revert_commit, created_at, updated_at, finished_at, \
     source, approval, approved_level, approval_requested_at, approved_by, retry_of, attempt";

pub(crate) fn read_upgrade(r: &Row<'_>) -> rusqlite::Result<Upgrade> {
    let parse_err = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    Ok(Upgrade {
        id: r.get::<_, String>(0)?.parse().map_err(|e| parse_err(0, e))?,
        kind: r.get::<_, String>(1)?.parse().map_err(|e| parse_err(1, e))?,
        title: r.get(2)?,
        request: json(r.get::<_, String>(3)?),
        requested_by: r.get(4)?,
        priority: r.get(5)?,
        risk: r.get(6)?,
        risk_reasons: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
        state: r.get::<_, String>(8)?.parse().map_err(|e| parse_err(8, e))?,
        reason: r.get(9)?,
        error: r.get(10)?,
        dry_run: r.get(11)?,
        target_branch: r.get(12)?,
        base_commit: r.get(13)?,
        staged_commit: r.get(14)?,
        branch: r.get(15)?,
        landed_commit: r.get(16)?,
        revert_commit: r.get(17)?,
        created_at: r.get(18)?,
        updated_at: r.get(19)?,
        finished_at: r.get(20)?,
        source: r.get(21)?,
        approval: r.get(22)?,
        approved_level: r.get(23)?,
        approval_requested_at: r.get(24)?,
        approved_by: r.get(25)?,
        retry_of: r.get(26)?,
        attempt: r.get(27)?,
    })
}

const SCAN_COLUMNS: &str =
    "id, created_at, root, scope, commit_id, duration_ms, summary, suggestions_pruned_at";

fn read_scan(r: &Row<'_>) -> rusqlite::Result<Scan> {
    Ok(Scan {
        id: r.get(0)?,
        created_at: r.get(1)?,
        root: r.get(2)?,
        scope: r.get(3)?,
        commit_id: r.get(4)?,
        duration_ms: r.get::<_, i64>(5)? as u64,
        summary: json(r.get::<_, String>(6)?),
        suggestions_pruned_at: r.get(7)?,
    })
}

/// Columns of `suggestions s JOIN suggestion_bodies b`.
const SUGGESTION_COLUMNS: &str =
    "s.id, s.scan_id, b.kind, b.title, b.files, b.risk, b.priority, b.instruction, b.detail, s.upgrade_id";
const SUGGESTION_FROM: &str = "suggestions s JOIN suggestion_bodies b ON b.id = s.body_id";

/// What identifies a suggestion's body: every field but its id. Taken
/// from the values, not their JSON text: writing out the detail of a
/// thousand suggestions cost more than storing them once they are known.
fn body_digest(s: &NewSuggestion<'_>) -> [u8; 16] {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for field in [s.kind, s.title, s.risk, s.instruction] {
        digest_str(&mut h, field);
    }
    h.update(&s.priority.to_le_bytes());
    h.update(&(s.files.len() as u64).to_le_bytes());
    for f in s.files {
        digest_str(&mut h, f);
    }
    digest_json(&mut h, s.detail);
    h.digest128().to_le_bytes()
}

/// Length first, so that no two sequences of strings run together alike.
fn digest_str(h: &mut xxhash_rust::xxh3::Xxh3, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// A JSON value's content, each part tagged with its type.
fn digest_json(h: &mut xxhash_rust::xxh3::Xxh3, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Null => h.update(b"n"),
        Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                h.update(b"i");
                h.update(&i.to_le_bytes());
            } else if let Some(u) = n.as_u64() {
                h.update(b"u");
                h.update(&u.to_le_bytes());
            } else {
                h.update(b"d");
                h.update(&n.as_f64().unwrap_or(f64::NAN).to_bits().to_le_bytes());
            }
        }
        Value::String(s) => {
            h.update(b"s");
            digest_str(h, s);
        }
        Value::Array(items) => {
            h.update(b"a");
            h.update(&(items.len() as u64).to_le_bytes());
            for item in items {
                digest_json(h, item);
            }
        }
        Value::Object(map) => {
            h.update(b"o");
            h.update(&(map.len() as u64).to_le_bytes());
            for (k, item) in map {
                digest_str(h, k);
                digest_json(h, item);
            }
        }
    }
}

fn read_suggestion(r: &Row<'_>) -> rusqlite::Result<Suggestion> {
    Ok(Suggestion {
        id: r.get(0)?,
        scan_id: r.get(1)?,
        kind: r.get(2)?,
        title: r.get(3)?,
        files: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
        risk: r.get(5)?,
        priority: r.get(6)?,
        instruction: r.get(7)?,
        detail: json(r.get::<_, String>(8)?),
        upgrade_id: r.get(9)?,
    })
}

fn json(s: String) -> serde_json::Value {
    serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s))
}

#[cfg(test)]
mod tests;
