//! The control API on `.graft/daemon.sock`: how `graft upgrade`,
//! `rollback`, `cancel` and `status` reach a running `graft run`.
//!
//! The socket file is created 0600: the filesystem is the access check.
//! Every operation that changes the repo waits its turn on one fair queue,
//! so concurrent requests run one at a time, in arrival order.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use graft_ledger::{RequestKind, UpgradeId, UpgradeState};
use graft_orchestrate::{Orchestrator, Submission, SubmitError};
use graft_pipeline::{Event, Observer, PipelineError, Workspace, cancel, recover, rollback};
use serde_json::json;
use tokio::sync::mpsc;

use crate::agent_api::error;
use crate::deploy::SupervisorDeploy;
use crate::supervisor::Supervisor;
use crate::wire::{ErrorLine, GeneratorFactory, Line, UpgradeQuery};

/// Shared by the control routes and the daemon's own operations.
pub struct Ops {
    pub root: PathBuf,
    pub sup: Arc<Supervisor>,
    pub deploy: Arc<SupervisorDeploy>,
    /// Fair (FIFO): one operation at a time, in the order asked.
    pub queue: tokio::sync::Mutex<()>,
    /// Every pipeline event, for whoever listens (SSE, webhooks).
    pub events: tokio::sync::broadcast::Sender<Event>,
    /// Builds generators for instructions, suggestions and autofixes.
    pub generators: GeneratorFactory,
    /// Figures of files and scheduled scans, when the binary has them.
    pub analyzer: Option<&'static (dyn graft_orchestrate::Analyzer + Sync)>,
    /// Wakes the queue runner (a submission, an approval).
    pub wake: tokio::sync::Notify,
}

pub fn router(ops: Arc<Ops>, body_limit: usize) -> axum::Router {
    axum::Router::new()
        .route("/v1/status", get(status))
        .route("/v1/upgrades", post(upgrade))
        .route("/v1/upgrades/{id}/rollback", post(roll_back))
        .route("/v1/upgrades/{id}/cancel", post(cancel_upgrade))
        .route("/v1/upgrades/{id}/approve", post(approve))
        .route("/v1/upgrades/{id}/reject", post(reject))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(ops)
}

/// Sends pipeline events down a response stream and to the broadcast.
struct Relay {
    tx: mpsc::UnboundedSender<Line>,
    events: tokio::sync::broadcast::Sender<Event>,
}

impl Observer for Relay {
    fn on_event(&self, event: &Event) {
        let _ = self.tx.send(Line::Event(event.clone()));
        let _ = self.events.send(event.clone());
    }
}

fn ndjson(rx: mpsc::UnboundedReceiver<Line>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        Some((Ok::<_, Infallible>(Bytes::from(bytes)), rx))
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn error_line(code: &str, class: Option<graft_pipeline::FailureClass>, message: String) -> Line {
    Line::Error(ErrorLine {
        code: code.to_string(),
        class,
        message,
    })
}

async fn status(State(ops): State<Arc<Ops>>) -> Response {
    Json(json!({ "supervisor": ops.sup.status() })).into_response()
}

async fn upgrade(State(ops): State<Arc<Ops>>, Query(q): Query<UpgradeQuery>, body: Bytes) -> Response {
    let kind: RequestKind = match q.kind.parse() {
        Ok(k) => k,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_kind",
                format!(
                    "kind `{}` is not one of patch, edits, instruction, suggestion, autofix",
                    q.kind
                ),
            );
        }
    };
    let mut sub = Submission::new(kind, &q.name, body.to_vec(), &q.requested_by, "cli");
    sub.title = q.title.clone();
    sub.priority = q.priority.clamp(1, 10);
    sub.dry_run = q.dry_run;
    sub.approve_protected = q.approve_protected;
    sub.suggestion = q.suggestion.clone();
    sub.provider = q.provider.clone();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Subscribe first: the runner may start at once.
        let events = ops.events.subscribe();
        let ops2 = ops.clone();
        let submitted = tokio::task::spawn_blocking(move || {
            ops2.with_orchestrator(|o| Ok(o.submit(sub, chrono::Utc::now())))
        })
        .await;
        let id = match submitted {
            Ok(Ok(Ok(s))) => s.id,
            Ok(Ok(Err(SubmitError::Limited { message, .. }))) => {
                let _ = tx.send(error_line(
                    "rate_limited",
                    Some(graft_pipeline::FailureClass::Precondition),
                    message,
                ));
                return;
            }
            Ok(Ok(Err(SubmitError::Pipeline(e)))) | Ok(Err(e)) => {
                let _ = tx.send(error_line("pipeline", None, e.to_string()));
                return;
            }
            Err(e) => {
                let _ = tx.send(error_line("internal", None, e.to_string()));
                return;
            }
        };
        ops.wake.notify_one();
        follow(&ops, &id, events, &tx).await;
    });
    ndjson(rx)
}

/// Relay the events of upgrade `id` until it ends or waits for approval,
/// then its report.
async fn follow(
    ops: &Arc<Ops>,
    id: &UpgradeId,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    tx: &mpsc::UnboundedSender<Line>,
) {
    let settled = |ops: &Arc<Ops>| -> bool {
        ops.state_of(id)
            .is_some_and(|s| s.is_terminal() || s == UpgradeState::AwaitingApproval)
    };
    if !settled(ops) {
        loop {
            let ev = tokio::select! {
                ev = events.recv() => ev,
                // Missed events cannot hide the end: check now and then.
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                    if settled(ops) { break } else { continue }
                }
            };
            match ev {
                Ok(ev) if ev.upgrade_id() == id.as_str() => {
                    let done = matches!(&ev, Event::StateChanged { state, .. }
                        if state.parse::<UpgradeState>().is_ok_and(|s| s.is_terminal() || s == UpgradeState::AwaitingApproval));
                    let _ = tx.send(Line::Event(ev));
                    if done && settled(ops) {
                        break;
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    }
    let (root, id) = (ops.root.clone(), id.clone());
    let report = tokio::task::spawn_blocking(move || {
        let ws = Workspace::open(&root)?;
        graft_pipeline::review::report_from_ledger(&ws, &id)
    })
    .await;
    let line = match report {
        Ok(Ok(r)) => Line::Report(serde_json::to_value(&r).unwrap_or_default()),
        Ok(Err(e)) => error_line("pipeline", None, e.to_string()),
        Err(e) => error_line("internal", None, e.to_string()),
    };
    let _ = tx.send(line);
}

async fn approve(State(ops): State<Arc<Ops>>, Path(id): Path<String>, Query(q): Query<ByQuery>) -> Response {
    let id: UpgradeId = match id.parse() {
        Ok(id) => id,
        Err(e) => return error(StatusCode::NOT_FOUND, "bad_id", e),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let events = ops.events.subscribe();
        let (ops2, id2) = (ops.clone(), id.clone());
        let done =
            tokio::task::spawn_blocking(move || ops2.with_orchestrator(|o| o.approve(&id2, &q.requested_by)))
                .await;
        match done {
            Ok(Ok(_)) => {
                ops.wake.notify_one();
                follow(&ops, &id, events, &tx).await;
            }
            Ok(Err(e)) => {
                let _ = tx.send(error_line("not_awaiting", None, e.to_string()));
            }
            Err(e) => {
                let _ = tx.send(error_line("internal", None, e.to_string()));
            }
        }
    });
    ndjson(rx)
}

#[derive(serde::Deserialize)]
struct RejectQuery {
    #[serde(default = "daemon")]
    requested_by: String,
    #[serde(default)]
    reason: String,
}

async fn reject(
    State(ops): State<Arc<Ops>>,
    Path(id): Path<String>,
    Query(q): Query<RejectQuery>,
) -> Response {
    let id: UpgradeId = match id.parse() {
        Ok(id) => id,
        Err(e) => return error(StatusCode::NOT_FOUND, "bad_id", e),
    };
    let ops2 = ops.clone();
    let done = tokio::task::spawn_blocking(move || {
        let why = (!q.reason.is_empty()).then_some(q.reason.as_str());
        ops2.with_orchestrator(|o| o.reject(&id, &q.requested_by, why))
    })
    .await;
    match done {
        Ok(Ok(u)) => Json(json!({ "upgrade": u })).into_response(),
        Ok(Err(e)) => error(StatusCode::CONFLICT, "not_awaiting", e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// Runs the queue: one upgrade per turn of the fair operation queue, so
/// rollbacks and cancels asked meanwhile are not stuck behind a long queue.
/// It also expires waiting approvals and runs due schedules.
pub async fn runner(ops: Arc<Ops>) {
    loop {
        tokio::select! {
            _ = ops.wake.notified() => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
        loop {
            if ops.sup.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let _turn = ops.queue.lock().await;
            let ops2 = ops.clone();
            let ran = tokio::task::spawn_blocking(move || {
                ops2.with_orchestrator(|o| {
                    if let Err(e) = o.tick(chrono::Utc::now()) {
                        eprintln!("graft: schedules: {e}");
                    }
                    o.run_next()
                })
            })
            .await;
            match ran {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    eprintln!("graft: the queue runner: {e}");
                    break;
                }
                Err(e) => {
                    eprintln!("graft: the queue runner: {e}");
                    break;
                }
            }
        }
    }
}

impl Ops {
    /// Run `f` with an orchestrator on a fresh workspace (blocking).
    pub fn with_orchestrator<T>(
        &self,
        f: impl FnOnce(&Orchestrator<'_>) -> Result<T, PipelineError>,
    ) -> Result<T, PipelineError> {
        let ws = Workspace::open(&self.root)?;
        let observer = Broadcast(self.events.clone());
        let o = Orchestrator {
            ws: &ws,
            deploy: &*self.deploy,
            observer: &observer,
            generators: &*self.generators,
            analyzer: self.analyzer.map(|a| a as &dyn graft_orchestrate::Analyzer),
        };
        f(&o)
    }

    fn state_of(&self, id: &UpgradeId) -> Option<UpgradeState> {
        let ledger = graft_ledger::Ledger::open(&self.root.join(".graft").join("ledger.db")).ok()?;
        ledger.upgrade(id.as_str()).ok().flatten().map(|u| u.state)
    }
}

/// Sends pipeline events to whoever listens.
struct Broadcast(tokio::sync::broadcast::Sender<Event>);

impl Observer for Broadcast {
    fn on_event(&self, event: &Event) {
        let _ = self.0.send(event.clone());
    }
}

async fn roll_back(
    State(ops): State<Arc<Ops>>,
    Path(id): Path<String>,
    Query(q): Query<ByQuery>,
) -> Response {
    let id: UpgradeId = match id.parse() {
        Ok(id) => id,
        Err(e) => return error(StatusCode::NOT_FOUND, "bad_id", e),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _turn = ops.queue.lock().await;
        let relay = Relay {
            tx: tx.clone(),
            events: ops.events.clone(),
        };
        let (root, deploy) = (ops.root.clone(), ops.deploy.clone());
        let done = tokio::task::spawn_blocking(move || {
            let ws = Workspace::open(&root).map_err(graft_pipeline::Failure::from)?;
            let held = recover::exclusive(&ws, &*deploy, true)?.expect("a blocking lock is always taken");
            rollback::rollback(&ws, &*deploy, &held, &id, &q.requested_by, &relay)
        })
        .await;
        let line = match done {
            Ok(Ok(report)) => Line::Rollback(serde_json::to_value(&report).unwrap_or_default()),
            Ok(Err(f)) => error_line(&f.reason, Some(f.class), f.message),
            Err(e) => error_line("internal", None, e.to_string()),
        };
        let _ = tx.send(line);
    });
    ndjson(rx)
}

#[derive(serde::Deserialize)]
struct ByQuery {
    #[serde(default = "daemon")]
    requested_by: String,
}

fn daemon() -> String {
    "daemon".into()
}

async fn cancel_upgrade(
    State(ops): State<Arc<Ops>>,
    Path(id): Path<String>,
    Query(q): Query<ByQuery>,
) -> Response {
    let id: UpgradeId = match id.parse() {
        Ok(id) => id,
        Err(e) => return error(StatusCode::NOT_FOUND, "bad_id", e),
    };
    // Not queued: cancel must reach an upgrade that holds the queue now.
    let (root, deploy) = (ops.root.clone(), ops.deploy.clone());
    let done = tokio::task::spawn_blocking(move || {
        let ws = Workspace::open(&root).map_err(graft_pipeline::Failure::from)?;
        cancel::cancel(&ws, &*deploy, &id, &q.requested_by)
    })
    .await;
    match done {
        Ok(Ok(report)) => Json(json!({ "cancel": report })).into_response(),
        Ok(Err(f)) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": { "code": f.reason, "class": f.class, "message": f.message } })),
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}
