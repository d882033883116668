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
use graft_ledger::{RequestKind, UpgradeId, UpgradeState};
use graft_orchestrate::{Orchestrator, SubmitError, Submitted};
use graft_pipeline::cancel::CancelReport;
use graft_pipeline::{Event, Failure, Observer, PipelineError, Workspace, cancel, recover, rollback};
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
    /// Figures of files and scheduled scans, when the binary has them.
    pub analyzer: Option<&'static (dyn graft_orchestrate::Analyzer + Sync)>,
    /// Wakes the queue runner (a submission, an approval).
    pub wake: tokio::sync::Notify,
    /// What else the daemon serves, by name (`api` → its URL).
    pub endpoints: Mutex<Vec<(String, String)>>,
}

/// One upgrade for [`Ops::upgrade`].
pub struct UpgradeJob {
    pub query: UpgradeQuery,
    /// The patch or edits, or the instruction's text.
    pub body: Bytes,
    /// Where the request came from (`cli`, `api`, `mcp`, …).
    pub source: String,
    /// Also gets this upgrade's events as they happen.
    pub sink: Option<mpsc::UnboundedSender<Line>>,
}

/// Why [`Ops::submit`] did not queue a request.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub error: ErrorLine,
    /// Rate-limited: the seconds until a slot frees.
    pub retry_after: Option<u64>,
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

    /// Put an upgrade in the durable queue and wake the runner. The
    /// request's kind and the rate limit are checked here.
    pub async fn submit(
        self: &Arc<Self>,
        q: &UpgradeQuery,
        body: &[u8],
        source: &str,
    ) -> Result<Submitted, Refusal> {
        let refused = |code: &str, class, message: String| Refusal {
            error: ErrorLine {
                code: code.to_string(),
                class,
                message,
            },
            retry_after: None,
        };
        let kind: RequestKind = q.kind.parse().map_err(|_| {
            refused(
                "bad_kind",
                None,
                format!(
                    "kind `{}` is not one of patch, edits, instruction, suggestion, autofix",
                    q.kind
                ),
            )
        })?;
        let sub = q.submission(kind, body.to_vec(), source);
        let me = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            me.with_orchestrator(|o| Ok(o.submit(sub, chrono::Utc::now())))
        })
        .await;
        let submitted = match done {
            Ok(Ok(Ok(s))) => s,
            Ok(Ok(Err(SubmitError::Limited {
                message,
                retry_after_secs,
            }))) => {
                return Err(Refusal {
                    retry_after: Some(retry_after_secs),
                    ..refused(
                        "rate_limited",
                        Some(graft_pipeline::FailureClass::Precondition),
                        message,
                    )
                });
            }
            Ok(Ok(Err(SubmitError::Refused(e)))) => return Err(refused_change(&e)),
            Ok(Ok(Err(SubmitError::Pipeline(e)))) | Ok(Err(e)) => {
                return Err(refused("pipeline", None, e.to_string()));
            }
            Err(e) => return Err(refused("internal", None, e.to_string())),
        };
        self.wake.notify_one();
        Ok(submitted)
    }

    /// Submit an upgrade and follow it to its end (or to its wait for
    /// approval); the final line is the report or the error.
    pub async fn upgrade(self: &Arc<Self>, job: UpgradeJob) -> Line {
        // Subscribe first: the runner may start at once.
        let events = self.events.subscribe();
        match self.submit(&job.query, &job.body, &job.source).await {
            Ok(s) => self.follow(&s.id, events, job.sink.as_ref()).await,
            Err(r) => Line::Error(r.error),
        }
    }

    /// Relay the events of upgrade `id` to `sink` until it ends or waits
    /// for approval; the final line is its report from the ledger.
    pub async fn follow(
        self: &Arc<Self>,
        id: &UpgradeId,
        mut events: tokio::sync::broadcast::Receiver<Event>,
        sink: Option<&mpsc::UnboundedSender<Line>>,
    ) -> Line {
        let settled = |ops: &Arc<Ops>| -> bool {
            ops.state_of(id)
                .is_some_and(|s| s.is_terminal() || s == UpgradeState::AwaitingApproval)
        };
        if !settled(self) {
            // Missed events cannot hide the end: the ledger is checked when
            // none came for a while; once it shows the end, the events
            // still on their way get a moment to arrive.
            let mut ending = false;
            loop {
                let quiet = std::time::Duration::from_millis(if ending { 300 } else { 1000 });
                let ev = tokio::select! {
                    ev = events.recv() => ev,
                    _ = tokio::time::sleep(quiet) => {
                        if ending {
                            break;
                        }
                        ending = settled(self);
                        continue;
                    }
                };
                match ev {
                    Ok(ev) if ev.upgrade_id() == id.as_str() => {
                        let done = matches!(&ev, Event::StateChanged { state, .. }
                            if state.parse::<UpgradeState>().is_ok_and(|s| s.is_terminal() || s == UpgradeState::AwaitingApproval));
                        if let Some(tx) = sink {
                            let _ = tx.send(Line::Event(ev));
                        }
                        if done && settled(self) {
                            break;
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        }
        self.report_line(id).await
    }

    /// The upgrade's report as the ledger has it now.
    pub async fn report_line(self: &Arc<Self>, id: &UpgradeId) -> Line {
        let (root, id) = (self.root.clone(), id.clone());
        let report = tokio::task::spawn_blocking(move || {
            let ws = Workspace::open(&root)?;
            graft_pipeline::review::report_from_ledger(&ws, &id)
        })
        .await;
        match report {
            Ok(Ok(r)) => Line::Report(serde_json::to_value(&r).unwrap_or_default()),
            Ok(Err(e)) => error_line("pipeline", None, e.to_string()),
            Err(e) => error_line("internal", None, e.to_string()),
        }
    }

    /// Approve an upgrade that waits for it and wake the runner.
    /// Errors: `not_found`, `not_awaiting` (it does not wait), `pipeline`.
    pub async fn approve(
        self: &Arc<Self>,
        id: &UpgradeId,
        by: &str,
    ) -> Result<graft_ledger::Upgrade, ErrorLine> {
        let (me, id2, by2) = (self.clone(), id.clone(), by.to_string());
        let done = tokio::task::spawn_blocking(move || me.with_orchestrator(|o| o.approve(&id2, &by2))).await;
        match done {
            Ok(Ok(u)) => {
                self.wake.notify_one();
                Ok(u)
            }
            Ok(Err(e)) => Err(decision_error(e)),
            Err(e) => Err(internal(e.to_string())),
        }
    }

    /// Reject an upgrade that waits for approval. Errors as for approve.
    pub async fn reject(
        self: &Arc<Self>,
        id: &UpgradeId,
        by: &str,
        reason: Option<String>,
    ) -> Result<graft_ledger::Upgrade, ErrorLine> {
        let (me, id2, by2) = (self.clone(), id.clone(), by.to_string());
        let done = tokio::task::spawn_blocking(move || {
            me.with_orchestrator(|o| o.reject(&id2, &by2, reason.as_deref()))
        })
        .await;
        match done {
            Ok(Ok(u)) => Ok(u),
            Ok(Err(e)) => Err(decision_error(e)),
            Err(e) => Err(internal(e.to_string())),
        }
    }

    /// Run `f` with an orchestrator on a fresh workspace (blocking). Its
    /// events reach every listener and the daemon's observer.
    pub fn with_orchestrator<T>(
        &self,
        f: impl FnOnce(&Orchestrator<'_>) -> Result<T, PipelineError>,
    ) -> Result<T, PipelineError> {
        let ws = Workspace::open(&self.root)?;
        let observer = self.relay(None);
        let o = Orchestrator {
            ws: &ws,
            deploy: &*self.deploy,
            observer: &observer,
            generators: &*self.generators,
            analyzer: self.analyzer.map(|a| a as &dyn graft_orchestrate::Analyzer),
        };
        f(&o)
    }

    pub fn state_of(&self, id: &UpgradeId) -> Option<UpgradeState> {
        let ledger = graft_ledger::Ledger::open(&self.root.join(".graft").join("ledger.db")).ok()?;
        ledger.upgrade(id.as_str()).ok().flatten().map(|u| u.state)
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
            let held =
                recover::exclusive(&ws, &*deploy, true, &relay)?.expect("a blocking lock is always taken");
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
        let me = self.clone();
        tokio::task::spawn_blocking(move || -> Result<_, Failure> {
            let ws = Workspace::open(&me.root).map_err(Failure::from)?;
            cancel::cancel(&ws, &*me.deploy, &id, &requested_by, &me.relay(None))
        })
        .await
        .map_err(|e| Failure::new(graft_pipeline::FailureClass::Internal, "internal", e.to_string()))?
    }
}

/// A change over `[limits]`, refused before anything was stored.
pub fn refused_change(e: &graft_change::ChangeError) -> Refusal {
    Refusal {
        error: ErrorLine {
            code: e.code().to_string(),
            class: Some(graft_pipeline::FailureClass::Refused),
            message: e.to_string(),
        },
        retry_after: None,
    }
}

/// The control routes. `limits` bounds an upgrade's body: one over
/// [`graft_change::Limits::max_request_bytes`] is refused as it arrives,
/// with the same error as from every other way in.
pub fn router(ops: Arc<Ops>, limits: graft_change::Limits) -> axum::Router {
    let body_limit = usize::try_from(limits.max_request_bytes()).unwrap_or(usize::MAX);
    axum::Router::new()
        .route("/v1/status", get(status))
        .route("/v1/upgrades", post(upgrade))
        .route("/v1/upgrades/{id}/rollback", post(roll_back))
        .route("/v1/upgrades/{id}/cancel", post(cancel_upgrade))
        .route("/v1/upgrades/{id}/approve", post(approve))
        .route("/v1/upgrades/{id}/reject", post(reject))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(limits))
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

/// Why an approval or a rejection did not happen, by code.
fn decision_error(e: PipelineError) -> ErrorLine {
    let code = match &e {
        PipelineError::Ledger(graft_ledger::LedgerError::UnknownUpgrade(_)) => "not_found",
        PipelineError::Invalid(_) => "not_awaiting",
        _ => "pipeline",
    };
    ErrorLine {
        code: code.into(),
        class: None,
        message: e.to_string(),
    }
}

fn internal(message: String) -> ErrorLine {
    ErrorLine {
        code: "internal".into(),
        class: None,
        message,
    }
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

async fn upgrade(
    State(ops): State<Arc<Ops>>,
    axum::Extension(limits): axum::Extension<graft_change::Limits>,
    Query(q): Query<UpgradeQuery>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        // Only the bound is read; the answer is the stream's one line.
        Err(axum::extract::rejection::BytesRejection::FailedToBufferBody(_)) => {
            let refusal = graft_change::ChangeError::RequestTooLarge {
                source_name: q.name.clone(),
                limit: limits.max_request_bytes(),
            };
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(Line::Error(refused_change(&refusal).error));
            return ndjson(rx);
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_body", e.body_text()),
    };
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
        let source = q.source.clone().unwrap_or_else(|| "cli".into());
        let line = if q.queue {
            match ops.submit(&q, &body, &source).await {
                Ok(s) => ops.report_line(&s.id).await,
                Err(r) => Line::Error(r.error),
            }
        } else {
            let job = UpgradeJob {
                query: q,
                body,
                source,
                sink: Some(tx.clone()),
            };
            ops.upgrade(job).await
        };
        let _ = tx.send(line);
    });
    ndjson(rx)
}

async fn approve(State(ops): State<Arc<Ops>>, Path(id): Path<String>, Query(q): Query<ByQuery>) -> Response {
    let id: UpgradeId = match id.parse() {
        Ok(id) => id,
        Err(e) => return error(StatusCode::NOT_FOUND, "bad_id", e),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let events = ops.events.subscribe();
        let line = match ops.approve(&id, &q.requested_by).await {
            Ok(_) => ops.follow(&id, events, Some(&tx)).await,
            Err(e) => Line::Error(e),
        };
        let _ = tx.send(line);
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
    let why = (!q.reason.is_empty()).then_some(q.reason);
    match ops.reject(&id, &q.requested_by, why).await {
        Ok(u) => Json(json!({ "upgrade": u })).into_response(),
        Err(e) => {
            let status = match e.code.as_str() {
                "not_found" => StatusCode::NOT_FOUND,
                "not_awaiting" => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, &e.code, e.message)
        }
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
                    match o.tick(chrono::Utc::now()) {
                        Err(e) => eprintln!("graft: schedules: {e}"),
                        // What a bound stopped is said where the daemon speaks.
                        Ok(tick) => tick
                            .ran
                            .iter()
                            .filter_map(|r| Some((r["schedule"].as_str()?, r["detail"]["note"].as_str()?)))
                            .for_each(|(name, note)| eprintln!("graft: schedule {name}: {note}")),
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
