//! The agent API: what a supervised program may ask of the daemon.
//!
//! Served on loopback (`GRAFT_AGENT_URL`); every request carries the
//! release's own token (`Authorization: Bearer $GRAFT_AGENT_TOKEN`), so
//! only a process Graft started can call it, and Graft knows which one.
//!
//! - `POST /agent/heartbeat`: "I am alive" (when `[health] heartbeat` is
//!   set, a release that stops sending them counts as unhealthy).
//! - `GET|PUT /agent/task`: the current-task document.
//! - `POST|GET /agent/history`: the append-only conversation history.
//!
//! Task and history are written to SQLite with `synchronous = FULL` before
//! the request is answered: what an agent was told is saved, is.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use graft_ledger::{BadHistory, Ledger, NewHistory};
use serde::Deserialize;
use serde_json::json;

use crate::instance::Instance;
use crate::supervisor::Supervisor;

#[derive(Clone)]
struct AgentState {
    sup: Arc<Supervisor>,
    ledger: Arc<Mutex<Ledger>>,
}

/// The router; `ledger` is a connection of its own.
pub fn router(sup: Arc<Supervisor>, ledger: Ledger) -> axum::Router {
    axum::Router::new()
        .route("/agent/heartbeat", post(heartbeat))
        .route("/agent/task", get(get_task).put(put_task))
        .route("/agent/history", get(list_history).post(append_history))
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(AgentState {
            sup,
            ledger: Arc::new(Mutex::new(ledger)),
        })
}

pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    ApiError::new(status, code, message).into_response()
}

/// An error answer: `{"error": {"code", "message"}}` with its status.
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

fn caller(s: &AgentState, headers: &HeaderMap) -> Result<Arc<Instance>, ApiError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "send `Authorization: Bearer $GRAFT_AGENT_TOKEN` (set by graft run in the program's environment)",
            )
        })?;
    s.sup.instance_by_token(token).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "this token belongs to no running release of this graft run",
        )
    })
}

/// Run a ledger call off the async threads (a durable write waits for fsync).
async fn with_ledger<T: Send + 'static>(
    s: &AgentState,
    f: impl FnOnce(&Ledger) -> graft_ledger::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let ledger = s.ledger.clone();
    tokio::task::spawn_blocking(move || f(&ledger.lock().expect("lock")))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "ledger", e.to_string()))
}

async fn heartbeat(State(s): State<AgentState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let inst = caller(&s, &headers)?;
    *inst.heartbeat.lock().expect("lock") = Some(Instant::now());
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_task(State(s): State<AgentState>, headers: HeaderMap) -> Result<Response, ApiError> {
    caller(&s, &headers)?;
    match with_ledger(&s, |l| l.agent_task()).await? {
        Some(task) => Ok(Json(task).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_task",
            "no task has been saved yet",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskBody {
    content: String,
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

async fn put_task(
    State(s): State<AgentState>,
    headers: HeaderMap,
    body: JsonBody<TaskBody>,
) -> Result<Response, ApiError> {
    caller(&s, &headers)?;
    let Json(body) = body.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("expected {{\"content\": \"...\"}}: {e}"),
        )
    })?;
    let version = with_ledger(&s, move |l| l.put_agent_task(&body.content)).await?;
    Ok(Json(json!({ "version": version })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryBody {
    role: String,
    content: String,
    #[serde(default)]
    meta: serde_json::Value,
}

async fn append_history(
    State(s): State<AgentState>,
    headers: HeaderMap,
    body: JsonBody<HistoryBody>,
) -> Result<Response, ApiError> {
    caller(&s, &headers)?;
    let Json(body) = body.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("expected {{\"role\": \"...\", \"content\": \"...\", \"meta\": {{}}}}: {e}"),
        )
    })?;
    let entry = NewHistory::new(body.role, body.content, body.meta).map_err(|e| {
        let code = match e {
            BadHistory::Role => "bad_role",
            BadHistory::Meta => "bad_body",
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string())
    })?;
    let id = with_ledger(&s, move |l| l.append_history(&entry)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

#[derive(Deserialize)]
struct HistoryQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "hundred")]
    limit: usize,
}

fn hundred() -> usize {
    100
}

async fn list_history(
    State(s): State<AgentState>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    caller(&s, &headers)?;
    let limit = q.limit.clamp(1, 1000);
    let entries = with_ledger(&s, move |l| l.history(q.after, limit)).await?;
    Ok(Json(entries).into_response())
}
