//! Landing: a gated commit becomes the tip of the target branch.
//!
//! When the target branch is checked out in the main checkout, landing is
//! `git merge --ff-only`, which updates the working tree and index first
//! and moves the branch last, and refuses rather than overwrite local
//! edits. Otherwise it is a compare-and-swap `git update-ref`. Either way
//! the branch moves only from the commit the upgrade was staged on, so a
//! commit made meanwhile is never lost.
//!
//! [`finish`] (tag, drop the `graft/<id>` branch) is idempotent, so crash
//! recovery can complete a landing that stopped after the branch moved.

use graft_ledger::UpgradeId;

use crate::error::{Failure, FailureClass, PipelineError};
use crate::fault;
use crate::git::Git;
use crate::workspace::Workspace;

/// Where the target branch is and whether the main checkout shows it.
pub struct Target {
    pub branch: String,
    /// True when the main checkout has the branch checked out, so its
    /// files must follow.
    pub checked_out: bool,
}

impl Target {
    pub fn of(ws: &Workspace) -> Result<Target, PipelineError> {
        let branch = ws.target_branch()?;
        let checked_out = ws.git.current_branch()?.as_deref() == Some(branch.as_str());
        Ok(Target { branch, checked_out })
    }

    pub fn tip(&self, git: &Git) -> Result<String, Failure> {
        git.rev_parse(&format!("refs/heads/{}", self.branch))
            .map_err(|_| {
                Failure::new(
                    FailureClass::Precondition,
                    "no_target_branch",
                    format!(
                        "branch `{}` does not exist: create it, or set `[target] branch` in graft.toml",
                        self.branch
                    ),
                )
            })
    }
}

/// The main checkout must have no uncommitted changes to tracked files.
pub fn check_clean(ws: &Workspace, target: &Target) -> Result<(), Failure> {
    if !target.checked_out {
        return Ok(());
    }
    let changes = ws.git.tracked_changes().map_err(Failure::from)?;
    if changes.is_empty() {
        return Ok(());
    }
    let files: Vec<&str> = changes.iter().map(|l| l.get(3..).unwrap_or(l)).take(5).collect();
    let more = if changes.len() > 5 {
        format!(" and {} more", changes.len() - 5)
    } else {
        String::new()
    };
    Err(Failure::new(
        FailureClass::Precondition,
        "dirty_tree",
        format!(
            "the working tree of {} has uncommitted changes ({}{more}); Graft lands upgrades on a clean tree so nothing of yours is mixed in or lost: commit or stash them (`git stash`), then try again",
            ws.root.display(),
            files.join(", ")
        ),
    ))
}

/// Move the target branch from `base` to `commit`.
pub fn land(ws: &Workspace, target: &Target, base: &str, commit: &str) -> Result<(), Failure> {
    let tip = target.tip(&ws.git)?;
    if tip != base {
        return Err(Failure::new(
            FailureClass::Precondition,
            "base_moved",
            format!(
                "branch `{}` moved from {} to {} while the upgrade ran; nothing was landed: run the upgrade again on the new tip",
                target.branch,
                short(base),
                short(&tip)
            ),
        ));
    }
    if target.checked_out {
        check_clean(ws, target)?;
        let out = ws
            .git
            .output(&["merge", "--ff-only", "--quiet", commit])
            .map_err(Failure::from)?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(Failure::new(
                FailureClass::Precondition,
                "land_refused",
                format!(
                    "git refused to update the working tree of {}: {msg}\nNothing was landed; move those files away and try again",
                    ws.root.display()
                ),
            ));
        }
    } else {
        let refname = format!("refs/heads/{}", target.branch);
        ws.git
            .run(&["update-ref", "-m", "graft: land upgrade", &refname, commit, base])
            .map_err(Failure::from)?;
    }
    fault::point("land:merged");
    Ok(())
}

/// Tag the landed commit and drop the upgrade's branch (idempotent).
pub fn finish(ws: &Workspace, id: &UpgradeId, commit: &str) -> Result<(), PipelineError> {
    let tag = id.promoted_tag();
    match ws.git.try_rev_parse(&format!("refs/tags/{tag}"))? {
        Some(c) if c == commit => {}
        Some(_) => {
            ws.git.run(&["tag", "-f", &tag, commit])?;
        }
        None => {
            ws.git.run(&["tag", &tag, commit])?;
        }
    }
    delete_branch(ws, id)
}

pub fn delete_branch(ws: &Workspace, id: &UpgradeId) -> Result<(), PipelineError> {
    let branch = id.branch();
    if ws.git.ref_exists(&format!("refs/heads/{branch}"))? {
        ws.git.run(&["branch", "-D", "--quiet", &branch])?;
    }
    Ok(())
}

/// Undo what an interrupted `git merge --ff-only` did to the main checkout:
/// put `paths` back as they are at HEAD (= the base, since the branch did
/// not move). Only files the change touched are touched here.
pub fn restore_paths_to_head(ws: &Workspace, paths: &[String]) -> Result<(), PipelineError> {
    for path in paths {
        let abs = ws.root.join(path);
        if ws.git.blob_id("HEAD", path)?.is_some() {
            ws.git.run(&["checkout", "--quiet", "HEAD", "--", path])?;
        } else if abs.is_file() {
            // Created by the half-done merge; git does not know it at HEAD.
            let _ = ws
                .git
                .run(&["rm", "--cached", "--quiet", "--ignore-unmatch", "--", path]);
            std::fs::remove_file(&abs)
                .map_err(|e| PipelineError::io(format!("cannot remove {}", abs.display()), e))?;
        }
    }
    // The index may hold entries from the merge too.
    ws.git.run(&["reset", "--quiet"])?;
    Ok(())
}

pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}
