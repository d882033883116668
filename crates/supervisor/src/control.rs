//! The daemon's operations ([`Ops`]) and the control API on
//! `.graft/daemon.sock`: how `graft upgrade`, `rollback`, `cancel` and
//! `status` reach a running `graft run`.
//!
//! The socket file is created 0600: the filesystem is the access check.
//! Every operation that changes the repo waits its turn on one fair queue,
//! so concurrent requests run one at a time, in arrival order, whether
//! they come through this socket or through another server mounted on
//! [`Ops`] (the HTTP API).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use graft_ledger::{RequestKind, UpgradeId};
use graft_pipeline::cancel::CancelReport;
use graft_pipeline::{
    ChangeSource, Event, Failure, Observer, Pipeline, PipelineError, UpgradeRequest, Workspace, cancel,
    recover, rollback,
};
use serde_json::json;
use tokio::sync::mpsc;

use crate::agent_api::error;
use crate::deploy::SupervisorDeploy;
use crate::supervisor::Supervisor;
use crate::wire::{ErrorLine, GeneratorFactory, Line, UpgradeQuery};

/// Shared by the control routes, the servers mounted beside them and the
/// daemon's own operations.
pub struct Ops {
    pub root: PathBuf,
    pub sup: Arc<Supervisor>,
    pub deploy: Arc<SupervisorDeploy>,
    /// Fair (FIFO): one operation at a time, in the order asked.
    pub queue: tokio::sync::Mutex<()>,
    /// Every pipeline event, for whoever listens (SSE). Lossy for a
    /// listener that falls behind.
    pub events: tokio::sync::broadcast::Sender<Event>,
    /// Told of every event on the thread that runs the operation, before
    /// it goes on: for what must not miss one (the webhook outbox).
    pub observer: Arc<dyn Observer>,
    /// Builds generators for instructions, suggestions and autofixes.
    pub generators: GeneratorFactory,
    /// What else the daemon serves, by name (`api` → its URL).
    pub endpoints: Mutex<Vec<(String, String)>>,
}

/// One upgrade for [`Ops::upgrade`].
pub struct UpgradeJob {
    pub query: UpgradeQuery,
    /// The patch or edits, or the instruction's text.
    pub body: Bytes,
    /// The id announced to the requester before its turn came.
    pub id: Option<UpgradeId>,
    /// Also gets this upgrade's events as they happen.
    pub sink: Option<mpsc::UnboundedSender<Line>>,
    /// Asked when its turn comes: false drops the job (it was cancelled
    /// while it waited).
    pub still_wanted: Option<Box<dyn FnOnce() -> bool + Send>>,
}

/// Sends pipeline events to an optional stream, the broadcast and the
/// daemon's observer.
pub struct Relay {
    tx: Option<mpsc::UnboundedSender<Line>>,
    events: tokio::sync::broadcast::Sender<Event>,
    observer: Arc<dyn Observer>,
}

impl Observer for Relay {
    fn on_event(&self, event: &Event) {
        self.observer.on_event(event);
        if let Some(tx) = &self.tx {
            let _ = tx.send(Line::Event(event.clone()));
        }
        let _ = self.events.send(event.clone());
    }
}

impl Ops {
    /// An observer for one operation: `sink` (if any) and every listener.
    pub fn relay(&self, sink: Option<mpsc::UnboundedSender<Line>>) -> Relay {
        Relay {
            tx: sink,
            events: self.events.clone(),
            observer: self.observer.clone(),
        }
    }

    /// Announce an event that happened outside a pipeline run. Observers
    /// may write to SQLite, so this runs on a blocking thread.
    pub async fn emit(self: &Arc<Self>, event: Event) {
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || me.relay(None).on_event(&event)).await;
    }

    /// Run one upgrade when its turn comes; the final line is the report
    /// or the error (`None`: dropped, see [`UpgradeJob::still_wanted`]).
    pub async fn upgrade(self: &Arc<Self>, job: UpgradeJob) -> Option<Line> {
        let _turn = self.queue.lock().await;
        if let Some(wanted) = job.still_wanted
            && !wanted()
        {
            return None;
        }
        let relay = self.relay(job.sink);
        let (root, deploy, generators) = (self.root.clone(), self.deploy.clone(), self.generators.clone());
        let (q, body, id) = (job.query, job.body, job.id);
        let kind: RequestKind = match q.kind.parse() {
            Ok(k) => k,
            Err(_) => {
                return Some(error_line(
                    "bad_kind",
                    None,
                    format!(
                        "kind `{}` is not one of patch, edits, instruction, suggestion, autofix",
                        q.kind
                    ),
                ));
            }
        };
        let done = tokio::task::spawn_blocking(move || -> Result<Result<_, ErrorLine>, PipelineError> {
            let ws = Workspace::open(&root)?;
            let source = match kind {
                RequestKind::Patch => ChangeSource::Patch {
                    name: q.name.clone(),
                    bytes: body.to_vec(),
                },
                RequestKind::Edits => ChangeSource::Edits {
                    name: q.name.clone(),
                    bytes: body.to_vec(),
                },
                _ => match generators(&ws, &q, &body) {
                    Ok(g) => ChangeSource::Generator(g),
                    Err(e) => return Ok(Err(e)),
                },
            };
            let title = q.title.clone().or_else(|| {
                let id = q.suggestion.as_deref()?;
                Some(ws.ledger.suggestion(id).ok()??.title)
            });
            let report = Pipeline {
                ws: &ws,
                observer: &relay,
                deploy: &*deploy,
            }
            .run(UpgradeRequest {
                kind,
                title,
                source,
                requested_by: q.requested_by.clone(),
                priority: q.priority.clamp(1, 10),
                dry_run: q.dry_run,
                approve_protected: q.approve_protected,
                id,
            })?;
            if let Some(id) = &q.suggestion {
                ws.ledger.link_suggestion(id, &report.id)?;
            }
            Ok(Ok(report))
        })
        .await;
        Some(match done {
            Ok(Ok(Ok(report))) => Line::Report(serde_json::to_value(&report).unwrap_or_default()),
            Ok(Ok(Err(e))) => Line::Error(e),
            Ok(Err(e)) => error_line("pipeline", None, e.to_string()),
            Err(e) => error_line("internal", None, e.to_string()),
        })
    }

    /// Roll an upgrade back when its turn comes; the final line is the
    /// rollback report or the error.
    pub async fn rollback(
        self: &Arc<Self>,
        id: UpgradeId,
        requested_by: String,
        sink: Option<mpsc::UnboundedSender<Line>>,
    ) -> Line {
        let _turn = self.queue.lock().await;
        let relay = self.relay(sink);
        let (root, deploy) = (self.root.clone(), self.deploy.clone());
        let done = tokio::task::spawn_blocking(move || {
            let ws = Workspace::open(&root).map_err(Failure::from)?;
            let held = recover::exclusive(&ws, &*deploy, true)?.expect("a blocking lock is always taken");
            rollback::rollback(&ws, &*deploy, &held, &id, &requested_by, &relay)
        })
        .await;
        match done {
            Ok(Ok(report)) => Line::Rollback(serde_json::to_value(&report).unwrap_or_default()),
            Ok(Err(f)) => error_line(&f.reason, Some(f.class), f.message),
            Err(e) => error_line("internal", None, e.to_string()),
        }
    }

    /// Cancel an upgrade. Not queued: it must reach an upgrade that holds
    /// the queue now.
    pub async fn cancel(
        self: &Arc<Self>,
        id: UpgradeId,
        requested_by: String,
    ) -> Result<CancelReport, Failure> {
        let (root, deploy) = (self.root.clone(), self.deploy.clone());
        let done = tokio::task::spawn_blocking(move || -> Result<_, Failure> {
            let ws = Workspace::open(&root).map_err(Failure::from)?;
            let before = ws.ledger.upgrade(id.as_str()).ok().flatten().map(|u| u.state);
            let report = cancel::cancel(&ws, &*deploy, &id, &requested_by)?;
            Ok((report, before))
        })
        .await
        .map_err(|e| Failure::new(graft_pipeline::FailureClass::Internal, "internal", e.to_string()))?;
        let (report, before) = done?;
        // A running upgrade announces its own end; one that never started
        // has nobody else to do it.
        if before.is_some_and(|s| !s.is_active() && !s.is_terminal()) {
            self.emit(Event::StateChanged {
                id: report.id.to_string(),
                state: report.state.to_string(),
            })
            .await;
        }
        Ok(report)
    }
}

pub fn router(ops: Arc<Ops>, body_limit: usize) -> axum::Router {
    axum::Router::new()
        .route("/v1/status", get(status))
        .route("/v1/upgrades", post(upgrade))
        .route("/v1/upgrades/{id}/rollback", post(roll_back))
        .route("/v1/upgrades/{id}/cancel", post(cancel_upgrade))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(ops)
}

/// A streamed answer: each line the operation sends, then its final one.
pub fn ndjson(rx: mpsc::UnboundedReceiver<Line>) -> Response {
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

pub fn error_line(code: &str, class: Option<graft_pipeline::FailureClass>, message: String) -> Line {
    Line::Error(ErrorLine {
        code: code.to_string(),
        class,
        message,
    })
}

async fn status(State(ops): State<Arc<Ops>>) -> Response {
    let endpoints: serde_json::Map<String, serde_json::Value> = ops
        .endpoints
        .lock()
        .expect("lock")
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    Json(json!({ "supervisor": ops.sup.status(), "endpoints": endpoints })).into_response()
}

async fn upgrade(State(ops): State<Arc<Ops>>, Query(q): Query<UpgradeQuery>, body: Bytes) -> Response {
    if q.kind.parse::<RequestKind>().is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_kind",
            format!(
                "kind `{}` is not one of patch, edits, instruction, suggestion, autofix",
                q.kind
            ),
        );
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let job = UpgradeJob {
            query: q,
            body,
            id: None,
            sink: Some(tx.clone()),
            still_wanted: None,
        };
        if let Some(line) = ops.upgrade(job).await {
            let _ = tx.send(line);
        }
    });
    ndjson(rx)
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
        let line = ops.rollback(id, q.requested_by, Some(tx.clone())).await;
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
    match ops.cancel(id, q.requested_by).await {
        Ok(report) => Json(json!({ "cancel": report })).into_response(),
        Err(f) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": { "code": f.reason, "class": f.class, "message": f.message } })),
        )
            .into_response(),
    }
}
