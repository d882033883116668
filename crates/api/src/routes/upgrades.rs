//! `/v1/upgrades`: create one (from an instruction, a patch, edits, a
//! suggestion or the autofixers), list, read, diff, approve, cancel, roll
//! back.
//!
//! A new upgrade is accepted at once (`202` with its id) and runs when its
//! turn on the daemon's queue comes; `?wait=true` answers with its report
//! instead, and `Accept: application/x-ndjson` streams its events, then
//! the report, one JSON object a line.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use graft_ledger::{RequestKind, UpgradeId, UpgradeState};
use graft_supervisor::control::ndjson;
use graft_supervisor::wire::{ErrorLine, Line, UpgradeQuery};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::Api;

use super::{QueryOf, body_json, optional_body_json, requester};

/// `POST /v1/upgrades`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUpgrade {
    instruction: Option<String>,
    patch: Option<String>,
    /// A JSON list of edits, or the same as text.
    edits: Option<Value>,
    suggestion: Option<String>,
    autofix: Option<bool>,
    title: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    approve_protected: bool,
    /// A JSON number: `2.0` is as good as `2` (JSON Schema's integer).
    priority: Option<serde_json::Number>,
    provider: Option<String>,
    requested_by: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreateQuery {
    #[serde(default)]
    wait: bool,
}

/// The request's kind and body bytes, checked.
fn source(c: &CreateUpgrade) -> Result<(RequestKind, Vec<u8>), ApiError> {
    let mut given: Vec<(RequestKind, Vec<u8>)> = Vec::new();
    if let Some(i) = &c.instruction {
        if i.trim().is_empty() {
            return Err(ApiError::bad_request(
                "bad_request",
                "`instruction` is empty; say what to change",
            ));
        }
        given.push((RequestKind::Instruction, i.clone().into_bytes()));
    }
    if let Some(p) = &c.patch {
        given.push((RequestKind::Patch, p.clone().into_bytes()));
    }
    if let Some(e) = &c.edits {
        let bytes = match e {
            Value::String(s) => s.clone().into_bytes(),
            Value::Array(_) => serde_json::to_vec(e).unwrap_or_default(),
            _ => {
                return Err(ApiError::bad_request(
                    "bad_request",
                    "`edits` must be a JSON list of edits (or that list as a string)",
                ));
            }
        };
        given.push((RequestKind::Edits, bytes));
    }
    if let Some(s) = &c.suggestion {
        if s.trim().is_empty() {
            return Err(ApiError::bad_request(
                "bad_request",
                "`suggestion` is empty; give a suggestion id from a scan",
            ));
        }
        given.push((RequestKind::Suggestion, Vec::new()));
    }
    match c.autofix {
        Some(true) => given.push((RequestKind::Autofix, Vec::new())),
        Some(false) => {
            return Err(ApiError::bad_request(
                "bad_request",
                "`autofix: false` asks for nothing; leave it out, or give another source",
            ));
        }
        None => {}
    }
    let (kind, bytes) = match given.len() {
        1 => given.pop().expect("one"),
        0 => {
            return Err(ApiError::bad_request(
                "bad_request",
                "say what to change: give one of `instruction`, `patch`, `edits`, `suggestion` or `autofix: true`",
            ));
        }
        _ => {
            let names: Vec<&str> = given.iter().map(|(k, _)| k.as_str()).collect();
            return Err(ApiError::bad_request(
                "bad_request",
                format!("give one source of change, not several ({})", names.join(", ")),
            ));
        }
    };
    if c.provider.is_some() && !matches!(kind, RequestKind::Instruction | RequestKind::Suggestion) {
        return Err(ApiError::bad_request(
            "bad_request",
            "`provider` applies to an instruction or a suggestion only",
        ));
    }
    Ok((kind, bytes))
}

pub async fn create(
    State(api): State<Arc<Api>>,
    caller: axum::Extension<Caller>,
    headers: HeaderMap,
    query: QueryOf<CreateQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let c: CreateUpgrade = body_json(&body)?;
    let (kind, bytes) = source(&c)?;
    let priority = match &c.priority {
        None => 5,
        Some(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                    .map(|f| f as i64)
            })
            .unwrap_or(0),
    };
    if !(1..=10).contains(&priority) {
        return Err(ApiError::bad_request(
            "bad_request",
            format!(
                "`priority` must be a whole number from 1 (lowest) to 10, got {}",
                c.priority.as_ref().map_or(String::new(), |n| n.to_string())
            ),
        ));
    }
    if c.title.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(ApiError::bad_request(
            "bad_request",
            "`title` is longer than 200 characters",
        ));
    }
    let requested_by = requester(&caller, c.requested_by.as_deref())?;
    let query = UpgradeQuery {
        kind: kind.to_string(),
        name: format!("request body `{}`", kind.as_str()),
        title: c.title.clone(),
        dry_run: c.dry_run,
        approve_protected: c.approve_protected,
        priority,
        requested_by: requested_by.clone(),
        suggestion: c.suggestion.clone(),
        provider: c.provider.clone(),
        source: Some("api".into()),
        queue: false,
    };

    // Queued in the ledger at once (the rate limit counts it there), run
    // by the daemon's queue in priority order.
    let streaming = wants_ndjson(&headers);
    let events = api.ops.events.subscribe();
    let submitted = match api.ops.submit(&query, &bytes, "api").await {
        Ok(s) => s,
        Err(r) => {
            let mut e = error_of(r.error);
            if let Some(secs) = r.retry_after {
                e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    e.message().to_string(),
                )
                .retry_after(secs);
            }
            return Err(e);
        }
    };
    let id = submitted.id.clone();
    api.metrics.accepted(kind.as_str());
    if streaming {
        return Ok(stream(move |tx| async move {
            api.ops.follow(&id, events, Some(&tx)).await
        }));
    }
    if q.wait {
        return Ok(final_answer(api.ops.follow(&id, events, None).await));
    }
    let location = format!("/v1/upgrades/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [("location", location.clone())],
        Json(json!({
            "id": id,
            "state": submitted.state,
            "risk": submitted.risk,
            "dry_run": c.dry_run,
            "links": { "self": location, "diff": format!("/v1/upgrades/{id}/diff"), "events": format!("/events?upgrade={id}") },
        })),
    )
        .into_response())
}

/// Whether the client asked for the NDJSON stream (events, then the
/// outcome) rather than one answer.
fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/x-ndjson"))
}

/// The NDJSON answer of an operation run in the background: `run` writes
/// its events to the sink it is given and returns the last line.
fn stream<F>(run: impl FnOnce(mpsc::UnboundedSender<Line>) -> F) -> Response
where
    F: Future<Output = Line> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let work = run(tx.clone());
    tokio::spawn(async move {
        let line = work.await;
        let _ = tx.send(line);
    });
    ndjson(rx)
}

/// The answer once an operation ended.
fn final_answer(line: Line) -> Response {
    match line {
        Line::Report(v) => Json(v).into_response(),
        Line::Rollback(v) => Json(json!({ "rollback": v })).into_response(),
        Line::Error(e) => error_of(e).into_response(),
        Line::Event(_) => ApiError::internal("the operation ended without an outcome").into_response(),
    }
}

/// An operation's error as an HTTP error.
fn error_of(e: ErrorLine) -> ApiError {
    use graft_pipeline::FailureClass as C;
    let status = match (e.code.as_str(), e.class) {
        ("not_found", _) => StatusCode::NOT_FOUND,
        // Over `[limits]`: refused before anything was stored.
        ("too_large" | "too_many_files", Some(C::Refused)) => StatusCode::PAYLOAD_TOO_LARGE,
        (_, Some(C::Precondition)) => StatusCode::CONFLICT,
        (_, Some(C::Internal)) | ("pipeline" | "internal", None) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let mut err = ApiError::new(status, &e.code, e.message);
    if let Some(class) = e.class {
        err = err.with("class", json!(class));
    }
    err
}

pub fn parse_id(id: &str) -> Result<UpgradeId, ApiError> {
    id.parse()
        .map_err(|e: String| ApiError::not_found("not_found", e))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Comma-separated states.
    state: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/upgrades`: newest first, of the given states (all when none
/// is given).
pub async fn list(State(api): State<Arc<Api>>, query: QueryOf<ListQuery>) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let limit = super::bounded("limit", q.limit, 50, 1, 1000)? as usize;
    let mut states = Vec::new();
    for s in q
        .state
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.trim().is_empty())
    {
        states.push(s.trim().parse::<UpgradeState>().map_err(|_| {
            ApiError::bad_request(
                "bad_query",
                format!(
                    "`{s}` is not a state; give some of queued, awaiting_approval, generating, staging, validating, deploying, watching, promoted, rolled_back, failed, cancelled"
                ),
            )
        })?);
    }
    let wanted = states.clone();
    let rows = api.ledger(move |l| Ok(l.upgrades(&wanted, limit)?)).await?;
    let out: Vec<Value> = rows.into_iter().map(|u| json!(u)).collect();
    Ok(Json(json!({ "upgrades": out })).into_response())
}

/// `GET /v1/upgrades/{id}`: the upgrade and everything recorded about it
/// (what `graft show ID --json` prints too).
pub async fn get(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let key = id.to_string();
    let found = api.ledger(move |l| Ok(l.upgrade_record(&key)?)).await?;
    found
        .map(|v| Json(v).into_response())
        .ok_or_else(|| not_found(&id))
}

fn not_found(id: &UpgradeId) -> ApiError {
    ApiError::not_found(
        "not_found",
        format!("no upgrade `{id}` (GET /v1/upgrades lists them)"),
    )
}

/// `GET /v1/upgrades/{id}/diff`.
pub async fn diff(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let key = id.to_string();
    let v = api
        .ledger(move |l| {
            let u = l.get_upgrade(&key)?;
            Ok(json!({
                "id": u.id,
                "state": u.state,
                "title": u.title,
                "files": l.file_changes(&key)?,
                "diff": l.diff(&key)?.unwrap_or_default(),
            }))
        })
        .await;
    match v {
        Ok(v) => Ok(Json(v).into_response()),
        Err(e) if e.status() == StatusCode::NOT_FOUND => Err(not_found(&id)),
        Err(e) => Err(e),
    }
}

/// The optional body of approve, cancel and roll back.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByBody {
    requested_by: Option<String>,
}

/// Who acts (the body's `requested_by`, checked) on which upgrade (the
/// path's id).
fn acting(caller: &Caller, requested_by: Option<&str>, id: &str) -> Result<(String, UpgradeId), ApiError> {
    Ok((requester(caller, requested_by)?, parse_id(id)?))
}

/// [`acting`] with the optional body of approve, cancel and roll back.
fn acting_by_body(caller: &Caller, body: &Bytes, id: &str) -> Result<(String, UpgradeId), ApiError> {
    acting(
        caller,
        optional_body_json::<ByBody>(body)?.requested_by.as_deref(),
        id,
    )
}

/// What is decided about an upgrade awaiting approval.
enum Decision {
    Approve,
    Reject { reason: Option<String> },
}

/// Approve or reject: the upgrade's new state and who decided, under
/// `approved_by` or `rejected_by`.
async fn decide(api: &Arc<Api>, id: UpgradeId, by: String, decision: Decision) -> Result<Response, ApiError> {
    let (outcome, key, done) = match decision {
        Decision::Approve => (api.ops.approve(&id, &by).await, "approved_by", "approved"),
        Decision::Reject { reason } => (api.ops.reject(&id, &by, reason).await, "rejected_by", "rejected"),
    };
    match outcome {
        Ok(u) => {
            let mut answer = json!({ "id": id, "state": u.state });
            answer[key] = json!(by);
            Ok(Json(answer).into_response())
        }
        Err(e) => Err(not_decided(api, &id, e, done).await),
    }
}

/// Why an approval or a rejection did not happen, as an HTTP error: a
/// conflict naming the upgrade's state when it no longer waits.
async fn not_decided(api: &Arc<Api>, id: &UpgradeId, e: ErrorLine, done: &str) -> ApiError {
    match e.code.as_str() {
        "not_awaiting" => {
            let key = id.to_string();
            match api.ledger(move |l| Ok(l.get_upgrade(&key)?.state)).await {
                Ok(state) => ApiError::conflict(
                    "not_awaiting_approval",
                    format!("upgrade {id} is {state}; only an upgrade awaiting approval can be {done}"),
                )
                .with("state", json!(state)),
                Err(e) => e,
            }
        }
        "not_found" => not_found(id),
        _ => error_of(e),
    }
}

/// `POST /v1/upgrades/{id}/approve`.
pub async fn approve(
    State(api): State<Arc<Api>>,
    caller: axum::Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (by, id) = acting_by_body(&caller, &body, &id)?;
    decide(&api, id, by, Decision::Approve).await
}

/// `POST /v1/upgrades/{id}/cancel`.
pub async fn cancel(
    State(api): State<Arc<Api>>,
    caller: axum::Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (by, id) = acting_by_body(&caller, &body, &id)?;
    match api.ops.cancel(id.clone(), by).await {
        Ok(report) => Ok(Json(json!({ "cancel": report })).into_response()),
        Err(f) if f.reason == "not_found" => Err(not_found(&id)),
        Err(f) => Err(ApiError::conflict(&f.reason, f.message).with("class", json!(f.class))),
    }
}

/// `POST /v1/upgrades/{id}/rollback`: waits its turn, answers with the
/// rollback report (or streams, like create).
pub async fn rollback(
    State(api): State<Arc<Api>>,
    caller: axum::Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (by, id) = acting_by_body(&caller, &body, &id)?;
    let key = id.to_string();
    let known = api.ledger(move |l| Ok(l.upgrade(&key)?.is_some())).await?;
    if !known {
        return Err(not_found(&id));
    }
    if wants_ndjson(&headers) {
        return Ok(stream(move |tx| async move {
            api.ops.rollback(id, by, Some(tx)).await
        }));
    }
    Ok(final_answer(api.ops.rollback(id, by, None).await))
}

/// The optional body of reject.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    requested_by: Option<String>,
    reason: Option<String>,
}

/// `POST /v1/upgrades/{id}/reject`: refuse an upgrade that awaits
/// approval; it ends `cancelled` with the reason.
pub async fn reject(
    State(api): State<Arc<Api>>,
    caller: axum::Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: RejectBody = optional_body_json(&body)?;
    if b.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::bad_request(
            "bad_request",
            "`reason` is longer than 500 characters",
        ));
    }
    let (by, id) = acting(&caller, b.requested_by.as_deref(), &id)?;
    decide(&api, id, by, Decision::Reject { reason: b.reason }).await
}
