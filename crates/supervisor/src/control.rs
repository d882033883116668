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
use graft_ledger::{RequestKind, UpgradeId};
use graft_pipeline::{
    ChangeSource, Event, Observer, Pipeline, PipelineError, UpgradeRequest, Workspace, cancel, recover,
    rollback,
};
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
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _turn = ops.queue.lock().await;
        let relay = Relay {
            tx: tx.clone(),
            events: ops.events.clone(),
        };
        let (root, deploy, generators) = (ops.root.clone(), ops.deploy.clone(), ops.generators.clone());
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
            })?;
            if let Some(id) = &q.suggestion {
                ws.ledger.link_suggestion(id, &report.id)?;
            }
            Ok(Ok(report))
        })
        .await;
        let line = match done {
            Ok(Ok(Ok(report))) => Line::Report(serde_json::to_value(&report).unwrap_or_default()),
            Ok(Ok(Err(e))) => Line::Error(e),
            Ok(Err(e)) => error_line("pipeline", None, e.to_string()),
            Err(e) => error_line("internal", None, e.to_string()),
        };
        let _ = tx.send(line);
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
