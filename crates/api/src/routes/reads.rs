//! Status, ledger statistics, scans, agent state and the webhook outbox.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use graft_ledger::{BadHistory, NewHistory, UpgradeState};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::Api;

use super::{QueryOf, body_json, bounded, optional_body_json};

/// `GET /v1/status`: what runs, what is under way, what waits, what was
/// done lately.
pub async fn status(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    let lists = api
        .ledger(|l| {
            Ok((
                l.upgrades(UpgradeState::ACTIVE, 100)?,
                l.upgrades(&[UpgradeState::Queued, UpgradeState::AwaitingApproval], 100)?,
                l.upgrades(&[], 10)?,
            ))
        })
        .await?;
    let endpoints: serde_json::Map<String, Value> = api
        .ops
        .endpoints
        .lock()
        .expect("lock")
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    Ok(Json(json!({
        "target": api.target_name,
        "supervisor": api.ops.sup.status(),
        "endpoints": endpoints,
        "in_progress": lists.0,
        "pending": lists.1,
        "recent": lists.2,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct RecentQuery {
    recent: Option<i64>,
}

/// `GET /v1/ledger`: totals, success rate, failures by cause with what to
/// do about each, generation cost, rollbacks and notifications.
pub async fn ledger(State(api): State<Arc<Api>>, query: QueryOf<RecentQuery>) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let recent = bounded("recent", q.recent, 10, 0, 500)? as usize;
    let v = api
        .ledger(move |l| Ok(graft_pipeline::advice::ledger_report(l, recent)?.1))
        .await?;
    Ok(Json(v).into_response())
}

#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    limit: Option<i64>,
}

/// `GET /v1/scans`: the latest scans, newest first.
pub async fn scans(State(api): State<Arc<Api>>, query: QueryOf<LimitQuery>) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let limit = bounded("limit", q.limit, 20, 1, 500)? as usize;
    let scans = api.ledger(move |l| Ok(l.scans(limit)?)).await?;
    Ok(Json(json!({ "scans": scans })).into_response())
}

/// `GET /v1/scans/{id}`: a scan and its suggestions.
pub async fn scan(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let key = id.clone();
    let found = api.ledger(move |l| scan_json(l, &key)).await?;
    found
        .map(|v| Json(v).into_response())
        .ok_or_else(|| ApiError::not_found("not_found", format!("no scan `{id}` (GET /v1/scans lists them)")))
}

/// A scan and its suggestions, as both scan routes answer; `None` when
/// the ledger has no such scan.
fn scan_json(l: &graft_ledger::Ledger, id: &str) -> Result<Option<Value>, ApiError> {
    let Some(scan) = l.scan(id)? else {
        return Ok(None);
    };
    Ok(Some(json!({ "scan": scan, "suggestions": l.suggestions(id)? })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartScan {
    /// A file or folder inside the repository (default: all of it).
    path: Option<String>,
}

/// `POST /v1/scans`: scan the repository now (one scan at a time).
pub async fn start_scan(State(api): State<Arc<Api>>, body: Bytes) -> Result<Response, ApiError> {
    let req: StartScan = optional_body_json(&body)?;
    // Checked here although the scan refuses a path outside the repo too:
    // it finds that out on the file system, so a missing `../x` would be
    // `not_found` (saying what exists outside the repo) where this says
    // `bad_scope` for any spelling that leaves it.
    if let Some(p) = &req.path
        && (p.starts_with('/') || p.split('/').any(|c| c == ".."))
    {
        return Err(ApiError::bad_request(
            "bad_scope",
            format!("`path` `{p}` must be relative to the repository root and stay inside it"),
        ));
    }
    let _one = api.scanning.lock().await;
    let (hook, root) = (api.scan.clone(), api.root.clone());
    let result = tokio::task::spawn_blocking(move || hook(&root, req.path.as_deref()))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let id = result.map_err(|f| {
        let status = match f.code.as_str() {
            "unavailable" => StatusCode::NOT_IMPLEMENTED,
            "not_found" => StatusCode::NOT_FOUND,
            "internal" | "ledger" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, &f.code, f.message)
    })?;
    let key = id.clone();
    let v = api
        .ledger(move |l| {
            scan_json(l, &key)?.ok_or_else(|| ApiError::internal(format!("scan {key} was not stored")))
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        [("location", format!("/v1/scans/{id}"))],
        Json(v),
    )
        .into_response())
}

/// `GET /v1/agent/task`.
pub async fn get_task(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    match api.ledger(|l| Ok(l.agent_task()?)).await? {
        Some(t) => Ok(Json(t).into_response()),
        None => Err(ApiError::not_found("no_task", "no task has been saved yet")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskBody {
    content: String,
}

/// `PUT /v1/agent/task`: saved durably before the answer.
pub async fn put_task(State(api): State<Arc<Api>>, body: Bytes) -> Result<Response, ApiError> {
    let t: TaskBody = body_json(&body)?;
    let version = api.ledger(move |l| Ok(l.put_agent_task(&t.content)?)).await?;
    Ok(Json(json!({ "version": version })).into_response())
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/agent/history`: entries after an id, oldest first.
pub async fn history(
    State(api): State<Arc<Api>>,
    query: QueryOf<HistoryQuery>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let (after, limit) = (
        q.after.unwrap_or(0),
        bounded("limit", q.limit, 100, 1, 1000)? as usize,
    );
    let entries = api.ledger(move |l| Ok(l.history(after, limit)?)).await?;
    Ok(Json(json!({ "entries": entries })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryBody {
    role: String,
    content: String,
    #[serde(default)]
    meta: Value,
}

/// `POST /v1/agent/history`: appended durably before the answer.
pub async fn append_history(State(api): State<Arc<Api>>, body: Bytes) -> Result<Response, ApiError> {
    let h: HistoryBody = body_json(&body)?;
    let entry = NewHistory::new(h.role, h.content, h.meta).map_err(|e| match e {
        BadHistory::Role => ApiError::bad_request("bad_role", e.to_string()),
        BadHistory::Meta => ApiError::bad_request("bad_body", e.to_string()),
    })?;
    let id = api.ledger(move |l| Ok(l.append_history(&entry)?)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

/// `GET /v1/webhooks`: the configured webhooks (never their URLs, which
/// may be secrets) and the outbox, newest first.
pub async fn webhooks(State(api): State<Arc<Api>>, query: QueryOf<LimitQuery>) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let limit = bounded("limit", q.limit, 50, 1, 1000)? as usize;
    let (rows, counts) = api
        .ledger(move |l| Ok((l.outbox(None, limit)?, l.outbox_counts()?)))
        .await?;
    let hooks: Vec<Value> = api
        .webhooks
        .iter()
        .map(|h| json!({ "name": h.key(), "format": h.format, "events": h.events }))
        .collect();
    let outbox: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id, "webhook": r.webhook, "upgrade_id": r.upgrade_id, "event": r.event,
                "created_at": r.created_at, "attempts": r.attempts, "next_attempt_at": r.next_attempt_at,
                "last_error": r.last_error, "delivered_at": r.delivered_at, "dropped_at": r.dropped_at,
            })
        })
        .collect();
    Ok(Json(json!({ "webhooks": hooks, "counts": counts, "outbox": outbox })).into_response())
}
