//! The deploy step: after a change lands, make it live, then watch it.
//!
//! API boundary: the pipeline knows only this trait. [`RecordOnly`] treats
//! a landed commit as live at once (a target with nothing running, or
//! `graft upgrade` without a supervisor); the supervisor implements it with
//! blue/green processes on shared sockets; a cluster backend could hand the
//! release to Kubernetes. None of them touches git: reverting the commit
//! and restoring data files stay in the pipeline, so every backend gets
//! the same rollback.

use std::path::Path;

use graft_ledger::UpgradeId;
use serde_json::Value;

use crate::error::{Failure, FailureClass};

/// What a backend is told about the release to make live.
pub struct DeployContext<'a> {
    pub id: &'a UpgradeId,
    /// The commit to make live.
    pub commit: &'a str,
    /// The commit live before (what a rollback returns to).
    pub previous: &'a str,
    /// Paths the upgrade changed (a backend may skip a restart for docs).
    pub changed_paths: &'a [String],
    /// The staging worktree, holding `commit` checked out and built by the
    /// gates: the source of a release's artifacts.
    pub staging: &'a Path,
}

/// How a deploy, watch or revert went. `detail` is journaled with the
/// step (figures such as how long a switch took).
#[derive(Debug, Clone)]
pub enum DeployResult {
    Ok {
        detail: Value,
    },
    Failed {
        cause: String,
        message: String,
        detail: Value,
    },
}

impl DeployResult {
    pub fn ok() -> DeployResult {
        DeployResult::Ok {
            detail: Value::Object(Default::default()),
        }
    }

    pub fn failed(cause: impl Into<String>, message: impl Into<String>) -> DeployResult {
        DeployResult::Failed {
            cause: cause.into(),
            message: message.into(),
            detail: Value::Null,
        }
    }

    /// As the result of a journal step: a failure becomes a `Failure` of
    /// `class` with reason `<prefix>:<cause>`.
    pub(crate) fn into_step(self, prefix: &str, class: FailureClass) -> Result<((), Value), Failure> {
        match self {
            DeployResult::Ok { detail } => Ok(((), detail)),
            DeployResult::Failed {
                cause,
                message,
                detail,
            } => Err(Failure::new(class, format!("{prefix}:{cause}"), message).with_detail(detail)),
        }
    }
}

pub trait Deploy: Send + Sync {
    /// A short name for the journal (`record-only`, `supervisor`).
    fn name(&self) -> &'static str;

    /// Get `ctx.commit` ready to run (build it, keep its release), before
    /// it lands: a failure here leaves nothing to undo. `ctx.staging` has
    /// the commit checked out, gated.
    fn prepare(&self, _ctx: &DeployContext<'_>) -> DeployResult {
        DeployResult::ok()
    }

    /// Make `ctx.commit` live. On failure the old release must still be
    /// live (the backend keeps it serving).
    fn deploy(&self, ctx: &DeployContext<'_>) -> DeployResult;

    /// Watch the new release through its watch window.
    fn watch(&self, ctx: &DeployContext<'_>) -> DeployResult;

    /// Leave `ctx.previous` behind and make the revert commit `ctx.commit`
    /// live (rollback after the watch failed, or by hand). When the
    /// rolled-back upgrade was the tip, `ctx.commit` has the same tree as
    /// the release that was live before it, so no rebuild is needed.
    fn revert(&self, ctx: &DeployContext<'_>) -> DeployResult;

    /// After a crash between landing and the end of the watch window: is
    /// the landed commit live and trusted (true), or must recovery roll it
    /// back (false, the default: it never passed its watch window)?
    fn keeps_interrupted_landing(&self) -> bool {
        false
    }
}

/// A landed commit is live as soon as it lands; nothing runs.
pub struct RecordOnly;

impl Deploy for RecordOnly {
    fn name(&self) -> &'static str {
        "record-only"
    }

    fn deploy(&self, _: &DeployContext<'_>) -> DeployResult {
        DeployResult::ok()
    }

    fn watch(&self, _: &DeployContext<'_>) -> DeployResult {
        DeployResult::ok()
    }

    fn revert(&self, _: &DeployContext<'_>) -> DeployResult {
        DeployResult::ok()
    }

    /// Nothing runs, so a landed commit is all there is to being live.
    fn keeps_interrupted_landing(&self) -> bool {
        true
    }
}

/// For a supervised target (`[run]`) while `graft run` is not running: a
/// change lands now and goes live when `graft run` next starts (it starts
/// the branch tip). An upgrade interrupted before its watch window ended
/// never proved itself, so recovery rolls it back.
pub struct LandOnly;

impl Deploy for LandOnly {
    fn name(&self) -> &'static str {
        "land-only"
    }

    fn deploy(&self, _: &DeployContext<'_>) -> DeployResult {
        DeployResult::ok()
    }

    fn watch(&self, _: &DeployContext<'_>) -> DeployResult {
        DeployResult::ok()
    }

    fn revert(&self, _: &DeployContext<'_>) -> DeployResult {
        DeployResult::ok()
    }
}
