//! `graft cancel ID`: stop an upgrade that has not landed.
//!
//! A running upgrade is asked to stop through the ledger (the running
//! process polls between steps and while a gate runs, and kills the gate's
//! process group); we then wait, bounded, for it to reach its end.

use std::time::{Duration, Instant};

use graft_ledger::{UpgradeId, UpgradeState, UpgradeUpdate};
use serde::Serialize;

use crate::deploy::Deploy;
use crate::error::{Failure, FailureClass};
use crate::events::{Event, Observer};
use crate::workspace::Workspace;
use crate::{recover, rollback};

#[derive(Debug, Clone, Serialize)]
pub struct CancelReport {
    pub id: UpgradeId,
    pub state: UpgradeState,
    pub note: String,
}

/// Cancel upgrade `id`. One that never started is announced cancelled to
/// `observer` here; a running one announces its own end when it stops.
pub fn cancel(
    ws: &Workspace,
    deploy: &dyn Deploy,
    id: &UpgradeId,
    requested_by: &str,
    observer: &dyn Observer,
) -> Result<CancelReport, Failure> {
    let u = ws
        .ledger
        .get_upgrade(id.as_str())
        .map_err(|e| Failure::new(FailureClass::Precondition, "not_found", e.to_string()))?;
    let report = |state, note: &str| CancelReport {
        id: id.clone(),
        state,
        note: note.to_string(),
    };
    match u.state {
        UpgradeState::Queued | UpgradeState::AwaitingApproval => {
            ws.ledger
                .update_upgrade(
                    id,
                    &UpgradeUpdate {
                        state: Some(UpgradeState::Cancelled),
                        reason: Some(Some("cancelled".into())),
                        error: Some(Some(format!("cancelled by {requested_by} before it started"))),
                        ..Default::default()
                    },
                )
                .map_err(|e| Failure::internal(&e.into()))?;
            observer.on_event(&Event::StateChanged {
                id: id.to_string(),
                state: UpgradeState::Cancelled.to_string(),
            });
            Ok(report(UpgradeState::Cancelled, "cancelled before it started"))
        }
        s if s.is_active() => {
            if u.landed_commit.is_some() {
                return Err(Failure::new(
                    FailureClass::Precondition,
                    "landed",
                    format!(
                        "upgrade {id} has already landed and is being deployed; roll it back with `graft rollback {id}` once it ends"
                    ),
                ));
            }
            ws.ledger
                .request_cancel(id)
                .map_err(|e| Failure::internal(&e.into()))?;
            // If nobody holds the lock, the process that ran it is gone.
            recover::recover(ws, deploy).map_err(Failure::from)?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let now = ws
                    .ledger
                    .get_upgrade(id.as_str())
                    .map_err(|e| Failure::internal(&e.into()))?;
                if now.state.is_terminal() {
                    return Ok(report(now.state, "stopped"));
                }
                if Instant::now() > deadline {
                    return Err(Failure::new(
                        FailureClass::Internal,
                        "cancel_timeout",
                        format!(
                            "upgrade {id} was asked to stop but is still {} after 60 s; it will stop at its next step",
                            now.state
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        UpgradeState::Promoted => Err(Failure::new(
            FailureClass::Precondition,
            "landed",
            format!("upgrade {id} has landed; undo it with `graft rollback {id}`"),
        )),
        state => {
            if u.branch.is_some() {
                let _lock = recover::exclusive(ws, deploy, true, observer)?;
                rollback::discard(ws, id, requested_by)?;
                Ok(report(state, "it had ended already; its branch was discarded"))
            } else {
                Ok(report(state, "it had ended already; nothing to do"))
            }
        }
    }
}
