//! Crash recovery: on every start, bring any upgrade a dead process left
//! mid-step to one consistent state.
//!
//! The pipeline lock is a `flock`, released by the kernel when its holder
//! dies; so whoever takes it and finds an upgrade in a working state, or a
//! journal step that began and never ended, knows that upgrade is orphaned.
//!
//! What "consistent" means (design invariant 2):
//! - If the target branch does not contain the staged commit, nothing
//!   landed: the main checkout's files the change touched are put back to
//!   HEAD (a `git merge` may have stopped half-way), the staging worktree is
//!   reset, the `graft/<id>` branch is kept only if the ledger recorded it,
//!   and the upgrade is `failed` with reason `interrupted`.
//! - If it does, the landing is completed (tag, branch dropped). A
//!   rollback whose revert commit already landed is completed too (data
//!   files, ledger). A landed upgrade that had not finished its deploy and
//!   watch is promoted when the deploy backend makes a landed commit live by
//!   itself (record-only), and rolled back otherwise.
//!
//! Every open journal step gets its end row (`failed`, `interrupted`), and
//! gate process groups recorded in the journal are killed.

use graft_ledger::{StepOutcome, Upgrade, UpgradeId, UpgradeState, UpgradeUpdate};
use serde::Serialize;
use serde_json::json;

use crate::deploy::Deploy;
use crate::error::{Failure, PipelineError};
use crate::events::{Event, NullObserver, Observer};
use crate::land::{self, Target};
use crate::rollback::{self, Why};
use crate::workspace::{PipelineLock, Workspace};
use crate::{process, staging};

/// What recovery did to one upgrade.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    pub id: String,
    /// The step the process died in, if any.
    pub interrupted_at: Option<String>,
    pub action: String,
}

/// Recover unless another process holds the pipeline lock (then it is
/// working, not crashed).
pub fn recover(ws: &Workspace, deploy: &dyn Deploy) -> Result<Vec<Recovered>, PipelineError> {
    match ws.lock(false)? {
        Some(_lock) => recover_locked(ws, deploy),
        None => Ok(Vec::new()),
    }
}

/// Tell `observer` how each recovered upgrade ended, as its own run would
/// have (`StateChanged` to its final state), so that webhooks announce a
/// rollback or failure that recovery brought about.
pub fn announce(ws: &Workspace, recovered: &[Recovered], observer: &dyn Observer) {
    for r in recovered {
        if let Ok(Some(u)) = ws.ledger.upgrade(&r.id)
            && u.state.is_terminal()
        {
            observer.on_event(&Event::StateChanged {
                id: r.id.clone(),
                state: u.state.as_str().to_string(),
            });
        }
    }
}

/// Take the pipeline lock (waiting for a running upgrade when `wait`),
/// then recover, announcing to `observer` how each recovered upgrade
/// ended: what every operation that changes the repo starts with. None
/// when not waiting and the lock is taken.
pub fn exclusive(
    ws: &Workspace,
    deploy: &dyn Deploy,
    wait: bool,
    observer: &dyn Observer,
) -> Result<Option<PipelineLock>, PipelineError> {
    let Some(lock) = ws.lock(wait)? else {
        return Ok(None);
    };
    let recovered = recover_locked(ws, deploy)?;
    announce(ws, &recovered, observer);
    Ok(Some(lock))
}

/// Recover; the caller holds the pipeline lock.
pub fn recover_locked(ws: &Workspace, deploy: &dyn Deploy) -> Result<Vec<Recovered>, PipelineError> {
    let mut out = Vec::new();
    for u in ws.ledger.unfinished_upgrades()? {
        out.push(recover_one(ws, deploy, &u)?);
    }
    Ok(out)
}

fn recover_one(ws: &Workspace, deploy: &dyn Deploy, u: &Upgrade) -> Result<Recovered, PipelineError> {
    let id = &u.id;
    let open = open_steps_with_detail(ws, id)?;
    for (step, detail) in &open {
        if step.ends_with(":process")
            && let Some(pgid) = detail.get("pgid").and_then(|v| v.as_i64())
        {
            process::kill_group(pgid as i32);
        }
    }
    let interrupted_at = open
        .iter()
        .rev()
        .map(|(s, _)| s.clone())
        .find(|s| !s.ends_with(":process"));
    let target = Target::of(ws)?;
    let tip = target.tip(&ws.git).ok();
    let landed = match (&u.landed_commit, &u.staged_commit, &tip) {
        (Some(c), _, _) => Some(c.clone()),
        (None, Some(staged), Some(tip)) if ws.git.is_ancestor(staged, tip)? => Some(staged.clone()),
        _ => None,
    };
    let action = match landed {
        None => recover_unlanded(ws, u, &target, &open)?,
        Some(commit) => recover_landed(ws, deploy, u, &target, &commit, &open)?,
    };
    close_open_steps(ws, id, &open)?;
    Ok(Recovered {
        id: id.to_string(),
        interrupted_at,
        action,
    })
}

fn recover_unlanded(
    ws: &Workspace,
    u: &Upgrade,
    target: &Target,
    open: &[(String, serde_json::Value)],
) -> Result<String, PipelineError> {
    let id = &u.id;
    if target.checked_out && open.iter().any(|(s, _)| s == "land" || s == "rollback:land") {
        restore_touched_paths(ws, id)?;
    }
    if let Some(base) = &u.base_commit
        && ws.staging_dir().exists()
    {
        let _ = staging::reset(&crate::git::Git::new(&ws.staging_dir()), base);
    }
    // Keep the branch only when the ledger says it was made and policy keeps
    // failed branches; a branch git has but the ledger never recorded was
    // made in the instant before the crash and goes.
    let keep = u.branch.is_some() && ws.config.staging.keep_failed_branches && !u.dry_run;
    if !keep {
        land::delete_branch(ws, id)?;
    }
    let _ = std::fs::remove_dir_all(ws.backups_dir(id));
    let step = open
        .iter()
        .rev()
        .map(|(s, _)| s.as_str())
        .find(|s| !s.ends_with(":process"))
        .unwrap_or(u.state.as_str())
        .to_string();
    if u.state.is_active() {
        ws.ledger.update_upgrade(
            id,
            &UpgradeUpdate {
                state: Some(UpgradeState::Failed),
                reason: Some(Some("interrupted".into())),
                error: Some(Some(format!(
                    "graft stopped during step `{step}` (killed or crashed); nothing landed: the branch, the working tree and the data files are as before. Run the upgrade again"
                ))),
                branch: Some(keep.then(|| id.branch())),
                ..Default::default()
            },
        )?;
        Ok(format!(
            "marked failed (interrupted during {step}); nothing had landed"
        ))
    } else {
        Ok(format!("closed the journal of step {step}; nothing had landed"))
    }
}

fn recover_landed(
    ws: &Workspace,
    deploy: &dyn Deploy,
    u: &Upgrade,
    target: &Target,
    commit: &str,
    open: &[(String, serde_json::Value)],
) -> Result<String, PipelineError> {
    let id = &u.id;
    if u.landed_commit.is_none() {
        ws.ledger.update_upgrade(
            id,
            &UpgradeUpdate {
                landed_commit: Some(commit.to_string()),
                ..Default::default()
            },
        )?;
    }
    if u.revert_commit.is_none() && u.state != UpgradeState::RolledBack {
        land::finish(ws, id, commit)?;
        ws.ledger.update_upgrade(
            id,
            &UpgradeUpdate {
                branch: Some(None),
                ..Default::default()
            },
        )?;
    }
    let rollback_open = open.iter().any(|(s, _)| s.starts_with("rollback:"));
    if let Some(revert) = find_revert(ws, target, id, commit)? {
        if u.state == UpgradeState::RolledBack {
            return Ok("rollback already complete".into());
        }
        // The revert landed before the crash: finish the rollback.
        let restored = rollback::restore_changed_data(ws, id).map_err(failure_to_error)?;
        let cause = if u.state.is_active() {
            "interrupted"
        } else {
            "manual"
        };
        rollback::complete(
            ws,
            id,
            &revert,
            &Why {
                cause,
                message: "rollback completed by recovery after an interruption",
                requested_by: "graft",
                switch_back: false,
            },
            &restored,
        )
        .map_err(failure_to_error)?;
        return Ok("completed the interrupted rollback".into());
    }
    if rollback_open {
        // A rollback stopped before its revert landed.
        if target.checked_out && open.iter().any(|(s, _)| s == "rollback:land") {
            restore_touched_paths(ws, id)?;
        }
        if let Some(tip) = target.tip(&ws.git).ok()
            && ws.staging_dir().exists()
        {
            let _ = staging::reset(&crate::git::Git::new(&ws.staging_dir()), &tip);
        }
    }
    if !u.state.is_active() {
        return Ok(if rollback_open {
            "the interrupted rollback had not landed; the upgrade stays as it was: run `graft rollback` again"
                .into()
        } else {
            "closed the journal".into()
        });
    }
    if deploy.keeps_interrupted_landing() {
        ws.ledger.update_upgrade(
            id,
            &UpgradeUpdate {
                state: Some(UpgradeState::Promoted),
                ..Default::default()
            },
        )?;
        return Ok("it had landed before the interruption: completed and marked promoted".into());
    }
    rollback::roll_back_landed(
        ws,
        deploy,
        id,
        &Why {
            cause: "interrupted",
            message: "graft stopped before the new release passed its watch window; rolled back to the last known good release",
            requested_by: "graft",
            switch_back: true,
        },
        &NullObserver,
    )
    .map_err(failure_to_error)?;
    Ok("it had landed but not passed its watch window: rolled back".into())
}

fn failure_to_error(f: Failure) -> PipelineError {
    PipelineError::Environment(f.message)
}

/// The revert commit of a rollback of `id`, if one is on the target branch.
fn find_revert(
    ws: &Workspace,
    target: &Target,
    id: &UpgradeId,
    landed: &str,
) -> Result<Option<String>, PipelineError> {
    let range = format!("{landed}..refs/heads/{}", target.branch);
    let grep = format!("--grep=^Graft-Rollback: {id}$");
    let out = ws.git.run(&["log", "--format=%H", &grep, &range])?;
    Ok(out.lines().next().map(str::to_string))
}

/// Put the main checkout's copies of the files an upgrade touched back to
/// HEAD (see `land::restore_paths_to_head`).
fn restore_touched_paths(ws: &Workspace, id: &UpgradeId) -> Result<(), PipelineError> {
    let mut paths: Vec<String> = Vec::new();
    for f in ws.ledger.file_changes(id.as_str())? {
        paths.extend(f.old_path);
        paths.push(f.path);
    }
    let changed: std::collections::HashSet<String> = ws
        .git
        .run(&["status", "--porcelain=v1", "-z", "--untracked-files=all"])?
        .split('\0')
        .filter_map(|l| l.get(3..).map(str::to_string))
        .collect();
    paths.retain(|p| changed.contains(p));
    if !paths.is_empty() {
        land::restore_paths_to_head(ws, &paths)?;
    }
    Ok(())
}

fn open_steps_with_detail(
    ws: &Workspace,
    id: &UpgradeId,
) -> Result<Vec<(String, serde_json::Value)>, PipelineError> {
    let mut open: Vec<(String, serde_json::Value)> = Vec::new();
    for row in ws.ledger.steps(id.as_str())? {
        if row.phase == "begin" {
            open.push((row.step, row.detail));
        } else if let Some(pos) = open.iter().rposition(|(s, _)| *s == row.step) {
            open.remove(pos);
        }
    }
    Ok(open)
}

fn close_open_steps(
    ws: &Workspace,
    id: &UpgradeId,
    open: &[(String, serde_json::Value)],
) -> Result<(), PipelineError> {
    for (step, _) in open.iter().rev() {
        ws.ledger.step_end(
            id,
            step,
            StepOutcome::Failed,
            &json!({ "reason": "interrupted", "recovered_at": graft_ledger::now() }),
        )?;
    }
    Ok(())
}
