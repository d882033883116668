//! Rolling an upgrade back.
//!
//! A landed upgrade is undone by a revert commit (history is never
//! rewritten), made in the staging worktree and landed like any change:
//! fast-forward from the current tip, so the main checkout follows and a
//! commit made meanwhile is never lost. When the upgrade is the tip, the
//! reverted tree is exactly the one that was live before it, already
//! gated, so no gate runs; when later commits sit on top, the reverted
//! tree is new, and it must pass the gates like any other change
//! (invariant 1). Declared data files that changed since the upgrade's
//! backup are put back.
//!
//! An upgrade that never landed has nothing in main: rolling it back only
//! discards its `graft/<id>` branch.

use graft_ledger::{Rollback, UpgradeId, UpgradeState, UpgradeUpdate, now};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::deploy::{Deploy, DeployContext};
use crate::error::{Failure, FailureClass, PipelineError};
use crate::events::Observer;
use crate::journal::Journal;
use crate::land::{self, Target};
use crate::workspace::{PipelineLock, Workspace};
use crate::{data, gates, staging};

/// Why a rollback happens.
pub struct Why<'a> {
    /// Machine cause: `manual`, `deploy_failed:…`, `watch_failed:…`.
    pub cause: &'a str,
    pub message: &'a str,
    pub requested_by: &'a str,
    /// The upgrade's release went live: the deploy backend must switch
    /// back. False when its deploy failed and the old release still serves.
    pub switch_back: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackReport {
    pub id: UpgradeId,
    /// `reverted` (a revert commit landed) or `discarded` (branch dropped).
    pub action: String,
    pub revert_commit: Option<String>,
    /// Data files put back to their pre-upgrade copy.
    pub data_restored: Vec<String>,
    pub gates: Vec<graft_ledger::GateRun>,
}

/// `graft rollback ID`. The caller holds the pipeline lock (see
/// `recover::exclusive`), so no upgrade runs meanwhile.
pub fn rollback(
    ws: &Workspace,
    deploy: &dyn Deploy,
    _held: &PipelineLock,
    id: &UpgradeId,
    requested_by: &str,
    observer: &dyn Observer,
) -> Result<RollbackReport, Failure> {
    let u = ws.ledger.get_upgrade(id.as_str()).map_err(not_found)?;
    match u.state {
        UpgradeState::RolledBack => Err(Failure::new(
            FailureClass::Precondition,
            "already_rolled_back",
            format!(
                "upgrade {id} was already rolled back (revert commit {})",
                u.revert_commit.as_deref().map(land::short).unwrap_or("none")
            ),
        )),
        s if s.is_active() => Err(Failure::new(
            FailureClass::Precondition,
            "running",
            format!("upgrade {id} is still running ({s}); stop it with `graft cancel {id}`"),
        )),
        UpgradeState::Queued | UpgradeState::AwaitingApproval => Err(Failure::new(
            FailureClass::Precondition,
            "not_started",
            format!("upgrade {id} has not started; remove it with `graft cancel {id}`"),
        )),
        _ if u.landed_commit.is_some() => roll_back_landed(
            ws,
            deploy,
            id,
            &Why {
                cause: "manual",
                message: "rolled back on request",
                requested_by,
                switch_back: true,
            },
            observer,
        ),
        _ => discard(ws, id, requested_by),
    }
}

fn not_found(e: graft_ledger::LedgerError) -> Failure {
    Failure::new(FailureClass::Precondition, "not_found", e.to_string())
}

/// Drop the branch of an upgrade that never landed.
pub fn discard(ws: &Workspace, id: &UpgradeId, requested_by: &str) -> Result<RollbackReport, Failure> {
    land::delete_branch(ws, id)?;
    ws.ledger
        .update_upgrade(
            id,
            &UpgradeUpdate {
                branch: Some(None),
                ..Default::default()
            },
        )
        .and_then(|_| {
            ws.ledger.record_rollback(&Rollback {
                upgrade_id: id.to_string(),
                at: now(),
                cause: "discard".into(),
                requested_by: requested_by.into(),
                revert_commit: None,
                data_restored: false,
                detail: json!({ "note": "never landed: branch discarded" }),
            })
        })
        .map_err(|e| Failure::internal(&e.into()))?;
    Ok(RollbackReport {
        id: id.clone(),
        action: "discarded".into(),
        revert_commit: None,
        data_restored: Vec::new(),
        gates: Vec::new(),
    })
}

/// Revert a landed upgrade (the caller holds the pipeline lock). One
/// that had ended is announced rolled back to `observer` here; one still
/// running (its deploy or watch failed) is announced by its run, which
/// ends with this.
pub fn roll_back_landed(
    ws: &Workspace,
    deploy: &dyn Deploy,
    id: &UpgradeId,
    why: &Why<'_>,
    observer: &dyn Observer,
) -> Result<RollbackReport, Failure> {
    let u = ws.ledger.get_upgrade(id.as_str()).map_err(not_found)?;
    let landed = u.landed_commit.clone().ok_or_else(|| {
        Failure::new(
            FailureClass::Precondition,
            "not_landed",
            format!("upgrade {id} never landed"),
        )
    })?;
    let j = Journal {
        ledger: &ws.ledger,
        id,
        observer,
    };
    let target = Target::of(ws).map_err(Failure::from)?;
    let tip = target.tip(&ws.git)?;
    if !ws.git.is_ancestor(&landed, &tip).map_err(Failure::from)? {
        return Err(Failure::new(
            FailureClass::Precondition,
            "not_on_branch",
            format!(
                "the commit of {id} ({}) is not on `{}` any more; nothing to revert",
                land::short(&landed),
                target.branch
            ),
        ));
    }
    land::check_clean(ws, &target)?;
    let is_tip = landed == tip;

    let (staging, revert) = j.step("rollback:revert", json!({ "landed": landed, "tip": tip, "cause": why.cause }), || {
        let staging = staging::prepare(ws, &tip)?;
        let out = staging.output(&["revert", "--no-commit", &landed]).map_err(Failure::from)?;
        if !out.status.success() {
            let _ = staging::reset(&staging, &tip);
            return Err(Failure::new(
                FailureClass::Precondition,
                "revert_conflict",
                format!(
                    "later commits changed the same lines as {id}, so it cannot be reverted alone: {}\nRoll back the later upgrades first, or revert by hand",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        let message = format!(
            "Roll back: {}\n\nThis reverts commit {landed}.\nCause: {}\n\nGraft-Rollback: {id}\n",
            u.title, why.cause
        );
        staging::commit_staged(&staging, &message)?;
        let revert = staging.head()?;
        Ok(((staging, revert.clone()), json!({ "commit": revert })))
    })?;

    let mut gate_runs = Vec::new();
    if !is_tip {
        // A tree nobody has gated yet.
        for gate in &ws.config.gates {
            let env = gates::GateEnv {
                staging: staging.dir(),
                repo_root: &ws.root,
                journal: &j,
                round: 1,
                live_commit: &tip,
                ledger: &ws.ledger,
            };
            let r = j.step(&format!("rollback:gate:{}", gate.name), json!({}), || {
                let r = gates::run_command_gate(gate, &env);
                let d = json!({ "status": r.status.as_str() });
                Ok((r, d))
            })?;
            ws.ledger
                .record_gate_run(&r)
                .map_err(|e| Failure::internal(&e.into()))?;
            let failed = r.status != graft_ledger::GateStatus::Passed && r.required;
            let summary = gates::summary(&r);
            gate_runs.push(r);
            if failed {
                let _ = staging::reset(&staging, &tip);
                return Err(Failure::new(
                    FailureClass::Gate,
                    format!("rollback_gate_failed:{}", gate.name),
                    format!(
                        "rolling back {id} alone breaks the gates, so nothing was changed:\n{summary}\nRoll back the later upgrades first"
                    ),
                ));
            }
        }
    }

    j.step("rollback:land", json!({ "from": tip, "to": revert }), || {
        land::land(ws, &target, &tip, &revert)?;
        Ok(((), json!({})))
    })?;
    ws.ledger
        .update_upgrade(
            id,
            &UpgradeUpdate {
                revert_commit: Some(revert.clone()),
                ..Default::default()
            },
        )
        .map_err(|e| Failure::internal(&e.into()))?;

    if why.switch_back {
        let changed: Vec<String> = ws
            .ledger
            .file_changes(id.as_str())
            .unwrap_or_default()
            .into_iter()
            .map(|f| f.path)
            .collect();
        let staging_dir = ws.staging_dir();
        let ctx = DeployContext {
            id,
            commit: &revert,
            previous: &landed,
            changed_paths: &changed,
            staging: &staging_dir,
        };
        j.step("rollback:switch", json!({ "backend": deploy.name() }), || {
            let r = if is_tip {
                deploy.revert(&ctx)
            } else {
                deploy.deploy(&ctx)
            };
            r.into_step("rollback_switch_failed", FailureClass::Internal)
                .map_err(|f| {
                    Failure::new(
                        f.class,
                        f.reason,
                        format!(
                            "the revert landed, but switching the running program back failed: {}",
                            f.message
                        ),
                    )
                })
        })?;
    }

    let restored = j.step("rollback:data", json!({}), || {
        let restored = restore_changed_data(ws, id)?;
        let d = json!({ "restored": restored });
        Ok((restored, d))
    })?;
    complete(ws, id, &revert, why, &restored)?;
    if !u.state.is_active() {
        observer.on_event(&crate::events::Event::StateChanged {
            id: id.to_string(),
            state: UpgradeState::RolledBack.to_string(),
        });
    }
    Ok(RollbackReport {
        id: id.clone(),
        action: "reverted".into(),
        revert_commit: Some(revert),
        data_restored: restored,
        gates: gate_runs,
    })
}

/// Put back the data files that differ from the upgrade's backup.
pub(crate) fn restore_changed_data(ws: &Workspace, id: &UpgradeId) -> Result<Vec<String>, Failure> {
    let backups = ws
        .ledger
        .data_backups(id.as_str())
        .map_err(|e| Failure::internal(&e.into()))?;
    let changed: Vec<_> = backups
        .into_iter()
        .filter(|b| {
            let live = ws.root.join(&b.path);
            match (&b.sha256, live.exists()) {
                (Some(sha), true) => data::sha256_file(&live).map(|s| &s != sha).unwrap_or(true),
                (Some(_), false) => true,
                (None, exists) => exists,
            }
        })
        .collect();
    data::restore(ws, &changed)?;
    Ok(changed.into_iter().map(|b| b.path).collect())
}

/// Record a finished rollback.
pub(crate) fn complete(
    ws: &Workspace,
    id: &UpgradeId,
    revert: &str,
    why: &Why<'_>,
    restored: &[String],
) -> Result<(), Failure> {
    ws.ledger
        .record_rollback(&Rollback {
            upgrade_id: id.to_string(),
            at: now(),
            cause: why.cause.into(),
            requested_by: why.requested_by.into(),
            revert_commit: Some(revert.to_string()),
            data_restored: !restored.is_empty(),
            detail: json!({ "message": why.message, "data_restored": restored }),
        })
        .and_then(|_| {
            let reason = if why.cause == "manual" {
                "manual_rollback"
            } else {
                why.cause
            };
            ws.ledger.update_upgrade(
                id,
                &UpgradeUpdate {
                    state: Some(UpgradeState::RolledBack),
                    revert_commit: Some(revert.to_string()),
                    reason: Some(Some(reason.to_string())),
                    error: Some(Some(why.message.to_string())),
                    ..Default::default()
                },
            )
        })
        .map_err(|e| Failure::internal(&PipelineError::from(e)))
}
