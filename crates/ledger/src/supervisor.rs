//! The supervisor's records: releases, the processes started for them,
//! which commit is live, and the agent's task and history.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::{Ledger, Result, now};

/// A kept release.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseRow {
    pub tree_id: String,
    pub commit_id: String,
    pub path: String,
    pub created_at: String,
    pub size_bytes: u64,
    pub state: String,
}

/// A process started for a release.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceRow {
    pub id: i64,
    pub commit_id: String,
    pub tree_id: String,
    pub pid: Option<i64>,
    pub start_ticks: Option<i64>,
    pub started_at: String,
    pub ready_at: Option<String>,
    pub stopped_at: Option<String>,
    pub exit_status: Option<String>,
    pub log_path: Option<String>,
}

/// A change of the live commit.
#[derive(Debug, Clone, Serialize)]
pub struct LiveRow {
    pub id: i64,
    pub commit_id: String,
    pub instance_id: Option<i64>,
    pub since: String,
    pub cause: String,
}

/// The agent's current task.
#[derive(Debug, Clone, Serialize)]
pub struct AgentTask {
    pub content: String,
    pub version: i64,
    pub updated_at: String,
}

/// One entry of the agent's conversation history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub id: i64,
    pub at: String,
    pub role: String,
    pub content: String,
    pub meta: serde_json::Value,
}

/// A history entry to append, checked the one way every way in (the
/// agent's own API, the HTTP API, MCP) checks it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewHistory {
    role: String,
    content: String,
    meta: serde_json::Value,
}

/// Why a history entry was refused; the message is the one callers show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadHistory {
    #[error("`role` must be 1 to 64 characters")]
    Role,
    #[error("`meta` must be a JSON object")]
    Meta,
}

impl NewHistory {
    /// `role`: 1 to 64 characters, not all blank; `meta`: a JSON object,
    /// or null for none (stored as `{}`).
    pub fn new(
        role: String,
        content: String,
        meta: serde_json::Value,
    ) -> std::result::Result<NewHistory, BadHistory> {
        if role.trim().is_empty() || role.chars().count() > 64 {
            return Err(BadHistory::Role);
        }
        let meta = match meta {
            serde_json::Value::Null => serde_json::json!({}),
            m @ serde_json::Value::Object(_) => m,
            _ => return Err(BadHistory::Meta),
        };
        Ok(NewHistory { role, content, meta })
    }
}

impl Ledger {
    pub fn upsert_release(&self, r: &ReleaseRow) -> Result<()> {
        self.connection()
            .execute(
                "INSERT INTO releases (tree_id, commit_id, path, created_at, size_bytes, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(tree_id) DO UPDATE SET path = excluded.path, size_bytes = excluded.size_bytes, state = excluded.state",
                params![r.tree_id, r.commit_id, r.path, r.created_at, r.size_bytes as i64, r.state],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn release(&self, tree_id: &str) -> Result<Option<ReleaseRow>> {
        self.connection()
            .query_row(
                "SELECT tree_id, commit_id, path, created_at, size_bytes, state FROM releases WHERE tree_id = ?1",
                [tree_id],
                read_release,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Kept releases, newest first.
    pub fn releases(&self) -> Result<Vec<ReleaseRow>> {
        let mut stmt = self
            .connection()
            .prepare(
                "SELECT tree_id, commit_id, path, created_at, size_bytes, state FROM releases
                 WHERE state = 'ready' ORDER BY created_at DESC, rowid DESC",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([], read_release)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    pub fn set_release_state(&self, tree_id: &str, state: &str) -> Result<()> {
        self.connection()
            .execute(
                "UPDATE releases SET state = ?2 WHERE tree_id = ?1",
                [tree_id, state],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn insert_instance(&self, commit: &str, tree: &str, log_path: &str) -> Result<i64> {
        self.connection()
            .execute(
                "INSERT INTO instances (commit_id, tree_id, started_at, log_path) VALUES (?1, ?2, ?3, ?4)",
                params![commit, tree, now(), log_path],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.connection().last_insert_rowid())
    }

    /// The process of instance `id` runs: its pid, its kernel start time
    /// (to recognise it later) and its log file.
    pub fn instance_started(
        &self,
        id: i64,
        pid: i64,
        start_ticks: Option<i64>,
        log_path: &str,
    ) -> Result<()> {
        self.connection()
            .execute(
                "UPDATE instances SET pid = ?2, start_ticks = ?3, log_path = ?4 WHERE id = ?1",
                params![id, pid, start_ticks, log_path],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn instance_ready(&self, id: i64) -> Result<()> {
        self.connection()
            .execute(
                "UPDATE instances SET ready_at = ?2 WHERE id = ?1",
                params![id, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn instance_stopped(&self, id: i64, exit_status: &str) -> Result<()> {
        self.connection()
            .execute(
                "UPDATE instances SET stopped_at = ?2, exit_status = ?3 WHERE id = ?1 AND stopped_at IS NULL",
                params![id, now(), exit_status],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Instances with no recorded end: after a crash of graft, orphans.
    pub fn running_instances(&self) -> Result<Vec<InstanceRow>> {
        self.instances_where("stopped_at IS NULL", 1000)
    }

    /// The newest instances, newest first.
    pub fn recent_instances(&self, limit: usize) -> Result<Vec<InstanceRow>> {
        self.instances_where("1", limit)
    }

    pub fn instance(&self, id: i64) -> Result<Option<InstanceRow>> {
        Ok(self.instances_where(&format!("id = {id}"), 1)?.into_iter().next())
    }

    fn instances_where(&self, cond: &str, limit: usize) -> Result<Vec<InstanceRow>> {
        let mut stmt = self
            .connection()
            .prepare(&format!(
                "SELECT id, commit_id, tree_id, pid, start_ticks, started_at, ready_at, stopped_at, exit_status, log_path
                 FROM instances WHERE {cond} ORDER BY id DESC LIMIT {limit}"
            ))
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| {
            Ok(InstanceRow {
                id: r.get(0)?,
                commit_id: r.get(1)?,
                tree_id: r.get(2)?,
                pid: r.get(3)?,
                start_ticks: r.get(4)?,
                started_at: r.get(5)?,
                ready_at: r.get(6)?,
                stopped_at: r.get(7)?,
                exit_status: r.get(8)?,
                log_path: r.get(9)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    pub fn set_live(&self, commit: &str, instance: Option<i64>, cause: &str) -> Result<()> {
        self.connection()
            .execute(
                "INSERT INTO live (commit_id, instance_id, since, cause) VALUES (?1, ?2, ?3, ?4)",
                params![commit, instance, now(), cause],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The live commit, as last recorded.
    pub fn live(&self) -> Result<Option<LiveRow>> {
        Ok(self.live_history(1)?.into_iter().next())
    }

    pub fn live_history(&self, limit: usize) -> Result<Vec<LiveRow>> {
        let mut stmt = self
            .connection()
            .prepare("SELECT id, commit_id, instance_id, since, cause FROM live ORDER BY id DESC LIMIT ?1")
            .map_err(|e| self.err(e))?;
        stmt.query_map([limit as i64], |r| {
            Ok(LiveRow {
                id: r.get(0)?,
                commit_id: r.get(1)?,
                instance_id: r.get(2)?,
                since: r.get(3)?,
                cause: r.get(4)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    // ---- agent state: durable before it is acknowledged ---------------

    pub fn agent_task(&self) -> Result<Option<AgentTask>> {
        self.connection()
            .query_row(
                "SELECT content, version, updated_at FROM agent_task WHERE id = 1",
                [],
                |r| {
                    Ok(AgentTask {
                        content: r.get(0)?,
                        version: r.get(1)?,
                        updated_at: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Replace the task; returns its new version.
    pub fn put_agent_task(&self, content: &str) -> Result<i64> {
        self.durable(|l| {
            l.connection()
                .execute(
                    "INSERT INTO agent_task (id, content, version, updated_at) VALUES (1, ?1, 1, ?2)
                     ON CONFLICT(id) DO UPDATE SET content = excluded.content, version = version + 1, updated_at = excluded.updated_at",
                    params![content, now()],
                )
                .map_err(|e| l.err(e))?;
            l.connection()
                .query_row("SELECT version FROM agent_task WHERE id = 1", [], |r| r.get(0))
                .map_err(|e| l.err(e))
        })
    }

    /// Append to the history; returns the entry's id.
    pub fn append_history(&self, entry: &NewHistory) -> Result<i64> {
        self.durable(|l| {
            l.connection()
                .execute(
                    "INSERT INTO agent_history (at, role, content, meta) VALUES (?1, ?2, ?3, ?4)",
                    params![now(), entry.role, entry.content, entry.meta.to_string()],
                )
                .map_err(|e| l.err(e))?;
            Ok(l.connection().last_insert_rowid())
        })
    }

    /// History entries after `after_id`, oldest first.
    pub fn history(&self, after_id: i64, limit: usize) -> Result<Vec<HistoryEntry>> {
        let mut stmt = self
            .connection()
            .prepare(
                "SELECT id, at, role, content, meta FROM agent_history WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map(params![after_id, limit as i64], |r| {
            Ok(HistoryEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                role: r.get(2)?,
                content: r.get(3)?,
                meta: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    /// Run `f` with `synchronous = FULL`: what the agent is told is saved
    /// must survive a power cut, not only a crash.
    fn durable<T>(&self, f: impl FnOnce(&Ledger) -> Result<T>) -> Result<T> {
        let conn = self.connection();
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| self.err(e))?;
        let out = f(self);
        let _ = conn.pragma_update(None, "synchronous", "NORMAL");
        out
    }
}

fn read_release(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReleaseRow> {
    Ok(ReleaseRow {
        tree_id: r.get(0)?,
        commit_id: r.get(1)?,
        path: r.get(2)?,
        created_at: r.get(3)?,
        size_bytes: r.get::<_, i64>(4)? as u64,
        state: r.get(5)?,
    })
}
