//! The staging worktree: where a change is applied, committed and gated,
//! away from the main checkout.
//!
//! One persistent worktree at `.graft/staging`, reset between upgrades
//! (`checkout --detach --force` + `clean -fd`) instead of created anew.
//! Why: a reset rewrites only the files that differ, so their mtimes are
//! the only ones that change, and ignored build output (`target/`,
//! `node_modules/`, `__pycache__/`) survives — a second upgrade rebuilds
//! incrementally, as a developer's own checkout would. HEAD is always
//! detached there, so `graft/<id>` branches are never checked out and can
//! be deleted freely.

use std::path::{Path, PathBuf};

use graft_change::Resolved;

use crate::error::PipelineError;
use crate::git::Git;
use crate::workspace::Workspace;

/// Bring the staging worktree to a clean checkout of `base` and return it.
pub fn prepare(ws: &Workspace, base: &str) -> Result<Git, PipelineError> {
    let dir = ws.staging_dir();
    if !is_worktree(&dir) {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| {
                PipelineError::io(
                    format!("cannot remove the broken staging worktree {}", dir.display()),
                    e,
                )
            })?;
        }
        ws.git.run(&["worktree", "prune"])?;
        let path = dir.to_string_lossy().into_owned();
        ws.git
            .run(&["worktree", "add", "--detach", "--force", &path, base])?;
    }
    let staging = Git::new(&dir).with_identity_fallback();
    reset(&staging, base)?;
    Ok(staging)
}

/// Discard everything in staging that is not `base` (ignored files stay).
/// `checkout --force` already throws away changes to tracked files and the
/// index, so no `reset --hard` is needed (each costs a scan of the tree).
pub fn reset(staging: &Git, base: &str) -> Result<(), PipelineError> {
    staging.run(&["checkout", "--quiet", "--detach", "--force", base])?;
    staging.run(&["clean", "-fdq"])?;
    Ok(())
}

/// Whether `dir` is a working git worktree whose top is `dir` itself.
fn is_worktree(dir: &Path) -> bool {
    if !dir.join(".git").is_file() {
        return false;
    }
    let Ok(out) = Git::new(dir).output(&["rev-parse", "--show-toplevel"]) else {
        return false;
    };
    let top = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    out.status.success() && top.canonicalize().ok() == dir.canonicalize().ok()
}

/// Write `resolved` into staging and commit it on a detached HEAD. Returns
/// the commit id.
pub fn commit(staging: &Git, resolved: &Resolved, message: &str) -> Result<String, PipelineError> {
    resolved.write_to(staging.dir()).map_err(|e| {
        PipelineError::io(
            format!("cannot write the change into {}", staging.dir().display()),
            std::io::Error::other(e.to_string()),
        )
    })?;
    let mut args: Vec<String> = vec!["add".into(), "-A".into(), "--".into()];
    for f in &resolved.files {
        args.push(f.path.as_str().to_string());
        if let Some(from) = &f.from {
            args.push(from.as_str().to_string());
        }
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    staging.run(&refs)?;
    commit_staged(staging, message)?;
    staging.head()
}

/// `git commit` of what is staged, with `message` (through a file: git's
/// stdin is closed, and a message can be long).
pub fn commit_staged(git: &Git, message: &str) -> Result<(), PipelineError> {
    let file =
        tempfile::NamedTempFile::new().map_err(|e| PipelineError::io("cannot create a temp file", e))?;
    std::fs::write(file.path(), message)
        .map_err(|e| PipelineError::io("cannot write the commit message", e))?;
    let path = file.path().to_string_lossy().into_owned();
    git.run(&[
        "commit",
        "--quiet",
        "--no-verify",
        "--allow-empty-message",
        "-F",
        &path,
    ])?;
    Ok(())
}

/// Tracked files a gate changed in staging (gates must not edit the tree
/// they judge, or the tree that lands is not the tree that passed).
pub fn modified_by_gate(staging: &Git) -> Result<Vec<String>, PipelineError> {
    staging.tracked_changes()
}
