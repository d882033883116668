//! The pipeline's deploy step, done by the supervisor.
//!
//! The pipeline is synchronous and runs on a blocking thread; the
//! supervisor is async. Each call here blocks that thread on the runtime
//! until the supervisor answers. The pipeline lock is held by the caller
//! throughout, so the staging worktree is ours to build releases in.

use std::sync::{Arc, Mutex};

use globset::GlobSet;
use graft_pipeline::git::Git;
use graft_pipeline::{Deploy, DeployContext, DeployResult};
use serde_json::json;

use crate::release::{Release, short};
use crate::supervisor::{Cause, Supervisor};

pub struct SupervisorDeploy {
    pub sup: Arc<Supervisor>,
    pub rt: tokio::runtime::Handle,
    /// `[target] no_restart`: changes touching only these need no restart.
    pub no_restart: GlobSet,
    /// The commit promoted without a restart, whose watch is a no-op.
    quiet: Mutex<Option<String>>,
}

impl SupervisorDeploy {
    pub fn new(sup: Arc<Supervisor>, rt: tokio::runtime::Handle, no_restart: GlobSet) -> SupervisorDeploy {
        SupervisorDeploy {
            sup,
            rt,
            no_restart,
            quiet: Mutex::new(None),
        }
    }

    /// The release of `ctx.commit`: kept already, or made from staging
    /// (which has that commit checked out whenever the pipeline calls us).
    fn release(&self, ctx: &DeployContext<'_>) -> Result<Release, String> {
        let staging = Git::new(ctx.staging);
        if let Some(r) = self
            .sup
            .releases
            .get(self.sup.git(), ctx.commit)
            .map_err(|e| e.to_string())?
        {
            return Ok(r);
        }
        let head = staging.head().map_err(|e| e.to_string())?;
        if head != ctx.commit {
            staging
                .run(&["checkout", "--quiet", "--detach", "--force", ctx.commit])
                .map_err(|e| e.to_string())?;
        }
        let ledger = self.sup.ledger.lock().expect("lock");
        self.sup
            .releases
            .make(&ledger, &staging, ctx.commit)
            .map_err(|e| e.to_string())
    }

    fn no_restart_needed(&self, ctx: &DeployContext<'_>) -> bool {
        !ctx.changed_paths.is_empty() && ctx.changed_paths.iter().all(|p| self.no_restart.is_match(p))
    }
}

impl Deploy for SupervisorDeploy {
    fn name(&self) -> &'static str {
        "supervisor"
    }

    fn prepare(&self, ctx: &DeployContext<'_>) -> DeployResult {
        match self.release(ctx) {
            Ok(r) => DeployResult::Ok {
                detail: json!({ "release": r.dir, "tree": r.tree }),
            },
            Err(message) => DeployResult::failed("release", message),
        }
    }

    fn deploy(&self, ctx: &DeployContext<'_>) -> DeployResult {
        if self.no_restart_needed(ctx) {
            let live = self.sup.live();
            self.sup
                .record_live(ctx.commit, live.as_ref().map(|i| i.id), "no_restart");
            *self.quiet.lock().expect("lock") = Some(ctx.commit.to_string());
            return DeployResult::Ok {
                detail: json!({ "restart": false, "why": "every changed file matches [target] no_restart" }),
            };
        }
        let release = match self.release(ctx) {
            Ok(r) => r,
            Err(message) => {
                return DeployResult::failed("release", message);
            }
        };
        match self.rt.block_on(
            self.sup
                .switch_to(&release, &Cause::new("deploy", Some(ctx.id.as_str()))),
        ) {
            Ok(s) => DeployResult::Ok {
                detail: serde_json::to_value(&s).unwrap_or_default(),
            },
            Err(n) => DeployResult::Failed {
                message: format!(
                    "{}; {} (decided {} ms after the failure){}",
                    n.message,
                    n.serving.as_deref().unwrap_or("nothing was serving"),
                    n.decided_ms,
                    if n.output.is_empty() {
                        String::new()
                    } else {
                        format!("\nits last output:\n{}", n.output)
                    }
                ),
                detail: json!({ "decided_ms": n.decided_ms }),
                cause: n.cause,
            },
        }
    }

    fn watch(&self, ctx: &DeployContext<'_>) -> DeployResult {
        if self.quiet.lock().expect("lock").take().as_deref() == Some(ctx.commit) {
            self.sup.set_last_good(ctx.commit);
            return DeployResult::ok();
        }
        match self
            .rt
            .block_on(self.sup.watch(ctx.commit, Some(ctx.id.as_str())))
        {
            Ok(()) => {
                let keep: Vec<String> = [self.sup.live().map(|i| i.tree.clone())]
                    .into_iter()
                    .flatten()
                    .collect();
                let refs: Vec<&str> = keep.iter().map(String::as_str).collect();
                let ledger = self.sup.ledger.lock().expect("lock");
                if let Err(e) = self.sup.releases.prune(&ledger, &refs) {
                    eprintln!("graft run: warning: old releases could not be pruned: {e}");
                }
                DeployResult::Ok {
                    detail: json!({ "window_ms": self.sup.settings.watch.window.0.as_millis() as u64 }),
                }
            }
            Err(f) => {
                let mut message = f.message.clone();
                match (&f.switched_back_to, f.switch_back_ms) {
                    (Some(c), Some(ms)) => message.push_str(&format!(
                        "\nswitched back to the last known good release {} in {ms} ms",
                        short(c)
                    )),
                    _ => message.push_str("\nthe last known good release could not be started"),
                }
                DeployResult::Failed {
                    cause: f.cause,
                    message,
                    detail: json!({ "switched_back_to": f.switched_back_to, "switch_back_ms": f.switch_back_ms }),
                }
            }
        }
    }

    fn revert(&self, ctx: &DeployContext<'_>) -> DeployResult {
        let revert_tree = match crate::release::tree_of(self.sup.git(), ctx.commit) {
            Ok(t) => t,
            Err(e) => {
                return DeployResult::failed("release", e.to_string());
            }
        };
        // After a failed watch window the supervisor has already switched
        // back; the revert commit has the same tree as what serves.
        if let Some(live) = self
            .sup
            .live()
            .filter(|l| l.tree == revert_tree && l.exited().is_none())
        {
            self.sup.record_live(ctx.commit, Some(live.id), "rollback");
            return DeployResult::Ok {
                detail: json!({ "already_serving": live.commit }),
            };
        }
        let release = match self.release(ctx) {
            Ok(r) => r,
            Err(message) => {
                return DeployResult::failed("release", message);
            }
        };
        match self.rt.block_on(
            self.sup
                .switch_to(&release, &Cause::new("rollback", Some(ctx.id.as_str()))),
        ) {
            Ok(s) => {
                self.sup.set_last_good(ctx.commit);
                DeployResult::Ok {
                    detail: serde_json::to_value(&s).unwrap_or_default(),
                }
            }
            Err(n) => DeployResult::Failed {
                detail: json!({ "decided_ms": n.decided_ms }),
                cause: n.cause,
                message: n.message,
            },
        }
    }
}
