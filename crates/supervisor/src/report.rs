//! What `graft run` tells its terminal: one line for each change of the
//! release that serves (a deploy, a switch back, a restart) and for each
//! failure that causes one, and one line when an upgrade ends.
//!
//! The supervisor and the daemon describe what happened as a [`RunEvent`]
//! and hand it to a [`Say`], which the binary supplies: a line for people
//! on stderr, and with `--json` the same event as one JSON object per line
//! on stdout. The default prints the line alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use graft_ledger::UpgradeState;
use graft_pipeline::{Event, Observer};
use serde::Serialize;

use crate::release::short;

/// One thing `graft run` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// A release now serves. `cause`: `start`, `deploy`, `rollback` or
    /// `restart`.
    Switched {
        cause: String,
        upgrade: Option<String>,
        commit: String,
        pid: i32,
        ready_ms: u64,
        /// The commit of the release it replaced, now draining.
        replaced: Option<String>,
    },
    /// A release was not switched to; what served before serves on.
    NotSwitched {
        cause: String,
        upgrade: Option<String>,
        commit: String,
        reason: String,
        message: String,
    },
    /// A failure in a watch window: Graft switches back.
    WatchFailed {
        upgrade: Option<String>,
        commit: String,
        reason: String,
        message: String,
    },
    /// The live release failed a liveness check outside a watch window
    /// (`unhealthy`, `watchdog`, `heartbeat`): it is killed and restarted.
    Unhealthy {
        commit: String,
        pid: i32,
        reason: String,
        message: String,
    },
    /// The live release ended by itself outside a watch window.
    Died {
        commit: String,
        pid: i32,
        how: String,
        /// None: it is in a crash loop (see `CrashLoop`).
        restart_in_ms: Option<u64>,
    },
    /// The live release keeps crashing.
    CrashLoop { commit: String, message: String },
    /// An upgrade ended (`promoted`, `rolled_back`, `failed`, ...).
    Upgrade {
        upgrade: String,
        state: String,
        reason: Option<String>,
    },
}

impl RunEvent {
    /// The line for a person: one line, whatever the messages hold.
    pub fn line(&self) -> String {
        let first = |m: &str| m.lines().next().unwrap_or("").to_string();
        let of = |u: &Option<String>| u.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
        match self {
            RunEvent::Switched {
                cause,
                upgrade,
                commit,
                pid,
                ready_ms,
                replaced,
            } => format!(
                "graft run: {cause}{}: {} serves (pid {pid}, ready in {ready_ms} ms){}",
                of(upgrade),
                short(commit),
                replaced
                    .as_deref()
                    .map(|r| format!("; {} drains", short(r)))
                    .unwrap_or_default()
            ),
            RunEvent::NotSwitched {
                cause,
                upgrade,
                commit,
                reason,
                message,
            } => format!(
                "graft run: {cause}{}: {} was not switched to ({reason}): {}",
                of(upgrade),
                short(commit),
                first(message)
            ),
            RunEvent::WatchFailed {
                upgrade,
                commit,
                reason,
                message,
            } => format!(
                "graft run: watch{}: {} failed ({reason}): {}; switching back",
                of(upgrade),
                short(commit),
                first(message)
            ),
            RunEvent::Unhealthy { message, .. } => {
                format!("graft run: {}; restarting it", first(message))
            }
            RunEvent::Died {
                commit,
                pid,
                how,
                restart_in_ms,
            } => format!(
                "graft run: release {} (pid {pid}) died: {how}{}",
                short(commit),
                restart_in_ms
                    .map(|ms| format!("; restarting it in {ms} ms"))
                    .unwrap_or_default()
            ),
            RunEvent::CrashLoop { message, .. } => format!("graft run: crash loop: {}", first(message)),
            RunEvent::Upgrade {
                upgrade,
                state,
                reason,
            } => format!(
                "graft run: upgrade {upgrade} {}{}",
                state.replace('_', " "),
                reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
            ),
        }
    }
}

/// Where `graft run` reports to.
pub type Say = Arc<dyn Fn(&RunEvent) + Send + Sync>;

/// The line on stderr.
pub fn to_stderr() -> Say {
    Arc::new(|e: &RunEvent| eprintln!("{}", e.line()))
}

/// A pipeline observer that reports how each upgrade ends, then passes
/// every event on.
pub struct Ends {
    inner: Arc<dyn Observer>,
    say: Say,
    /// The reason of the last failed step, per upgrade.
    reasons: Mutex<HashMap<String, String>>,
}

impl Ends {
    pub fn new(inner: Arc<dyn Observer>, say: Say) -> Ends {
        Ends {
            inner,
            say,
            reasons: Mutex::new(HashMap::new()),
        }
    }
}

impl Observer for Ends {
    fn on_event(&self, event: &Event) {
        match event {
            Event::StepEnd {
                id, outcome, detail, ..
            } if outcome == "failed" => {
                if let Some(reason) = detail.get("reason").and_then(|r| r.as_str()) {
                    self.reasons
                        .lock()
                        .expect("lock")
                        .insert(id.clone(), reason.to_string());
                }
            }
            Event::StateChanged { id, state } if ends(state) => {
                let reason = self.reasons.lock().expect("lock").remove(id);
                (self.say)(&RunEvent::Upgrade {
                    upgrade: id.clone(),
                    state: state.clone(),
                    reason: reason.filter(|_| state != "promoted"),
                });
            }
            _ => {}
        }
        self.inner.on_event(event);
    }
}

/// An upgrade in this state is done with, or waits for a person.
fn ends(state: &str) -> bool {
    state
        .parse::<UpgradeState>()
        .is_ok_and(|s| s.is_terminal() || s == UpgradeState::AwaitingApproval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_is_one_line() {
        let e = RunEvent::NotSwitched {
            cause: "deploy".into(),
            upgrade: Some("upg_20261121_103001_a1b2c3".into()),
            commit: "3f2a91c0de5d".into(),
            reason: "not_ready".into(),
            message: "the new release was not ready in time\nits last output:\nboom".into(),
        };
        assert_eq!(
            e.line(),
            "graft run: deploy upg_20261121_103001_a1b2c3: 3f2a91c0de was not switched to (not_ready): the new release was not ready in time"
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "not_switched");
        assert_eq!(
            v["message"],
            "the new release was not ready in time\nits last output:\nboom"
        );
    }
}
