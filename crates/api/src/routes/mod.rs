//! The routes of the HTTP API and the small handlers; the larger ones
//! live in [`upgrades`] and [`reads`].
//!
//! Every route sits behind the request counter (for `/metrics`) and the
//! guard ([`crate::auth::guard`]): reads are open, anything else must be
//! signed or come from a dashboard session.

pub mod reads;
pub mod upgrades;

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::state::Api;
use crate::{dashboard, events, metrics, openapi};

pub type QueryOf<T> = Result<Query<T>, QueryRejection>;

/// Every operation [`router`] serves, as (OpenAPI path, method): the
/// OpenAPI document must list exactly these (a unit test checks).
pub const ROUTES: &[(&str, &str)] = &[
    ("/health", "get"),
    ("/challenge", "get"),
    ("/openapi.json", "get"),
    ("/metrics", "get"),
    ("/events", "get"),
    ("/v1/session", "post"),
    ("/v1/session", "delete"),
    ("/v1/session", "get"),
    ("/v1/session/link", "post"),
    ("/v1/status", "get"),
    ("/v1/upgrades", "get"),
    ("/v1/upgrades", "post"),
    ("/v1/upgrades/{id}", "get"),
    ("/v1/upgrades/{id}/diff", "get"),
    ("/v1/upgrades/{id}/approve", "post"),
    ("/v1/upgrades/{id}/cancel", "post"),
    ("/v1/upgrades/{id}/rollback", "post"),
    ("/v1/upgrades/{id}/reject", "post"),
    ("/v1/scans", "get"),
    ("/v1/scans", "post"),
    ("/v1/scans/{id}", "get"),
    ("/v1/ledger", "get"),
    ("/v1/ledger/series", "get"),
    ("/v1/files", "get"),
    ("/v1/agent/task", "get"),
    ("/v1/agent/task", "put"),
    ("/v1/agent/history", "get"),
    ("/v1/agent/history", "post"),
    ("/v1/webhooks", "get"),
];

pub fn router(api: Arc<Api>) -> axum::Router {
    axum::Router::new()
        .route("/health", get(health))
        .route("/challenge", get(challenge))
        .route("/openapi.json", get(openapi::serve))
        .route("/metrics", get(metrics::serve))
        .route("/events", get(events::stream))
        .route(
            "/v1/session",
            post(session_create)
                .delete(session_delete)
                .get(dashboard::login::session_get),
        )
        .route("/v1/session/link", post(dashboard::login::session_from_link))
        .route("/v1/status", get(reads::status))
        .route("/v1/upgrades", get(upgrades::list).post(upgrades::create))
        .route("/v1/upgrades/{id}", get(upgrades::get))
        .route("/v1/upgrades/{id}/diff", get(upgrades::diff))
        .route("/v1/upgrades/{id}/approve", post(upgrades::approve))
        .route("/v1/upgrades/{id}/cancel", post(upgrades::cancel))
        .route("/v1/upgrades/{id}/rollback", post(upgrades::rollback))
        .route("/v1/upgrades/{id}/reject", post(upgrades::reject))
        .route("/v1/scans", get(reads::scans).post(reads::start_scan))
        .route("/v1/scans/{id}", get(reads::scan))
        .route("/v1/ledger", get(reads::ledger))
        .route("/v1/ledger/series", get(dashboard::reads::series))
        .route("/v1/files", get(dashboard::reads::file))
        .route("/v1/agent/task", get(reads::get_task).put(reads::put_task))
        .route(
            "/v1/agent/history",
            get(reads::history).post(reads::append_history),
        )
        .route("/v1/webhooks", get(reads::webhooks))
        .route_layer(from_fn_with_state(api.clone(), auth::guard))
        .route_layer(from_fn_with_state(api.clone(), metrics::count))
        // The dashboard's own files: static, open, outside the API's table.
        .route("/", get(dashboard::assets::index))
        .route("/dashboard/{file}", get(dashboard::assets::file))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(api.config.max_body_bytes.0 as usize))
        .with_state(api)
}

async fn not_found(State(api): State<Arc<Api>>, req: axum::extract::Request) -> Response {
    api.metrics.request(req.method().as_str(), "unmatched", 404);
    ApiError::not_found(
        "no_route",
        format!(
            "no route {} {}; GET /openapi.json lists them",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response()
}

/// A JSON object body, with the reason in our error shape when it is not
/// one. Only an object: serde also builds a struct from a list, its
/// elements taken as the fields in order, so `["x"]` would otherwise
/// pass for `{"requested_by":"x"}`.
pub fn body_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::bad_request(
            "bad_body",
            "the request body is not UTF-8 text",
        ));
    }
    let not_expected = |e: serde_json::Error| {
        ApiError::bad_request(
            "bad_body",
            format!("the request body is not the JSON expected: {e}"),
        )
    };
    // The first byte past JSON's whitespace says whether it is an object;
    // an object is then read straight into `T`, which keeps serde's
    // refusal of a key given twice and its line and column in errors.
    let first = body.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        let value: Value = serde_json::from_slice(body).map_err(not_expected)?;
        let kind = match value {
            Value::Array(_) => "a list",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Null => "null",
            Value::Object(_) => "an object",
        };
        return Err(ApiError::bad_request(
            "bad_body",
            format!("the request body must be a JSON object (`{{...}}` with named fields), not {kind}"),
        ));
    }
    serde_json::from_slice(body).map_err(not_expected)
}

/// [`body_json`] for a body that may also be left empty (or blank), which
/// means `T::default()`.
pub fn optional_body_json<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    body_json(body)
}

/// A numeric query parameter within its documented range (out of range is
/// a 400, not silently clamped: bad input gets a clear error).
pub fn bounded(name: &str, value: Option<i64>, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(v) => Err(ApiError::bad_request(
            "bad_query",
            format!("`{name}` must be from {min} to {max}, got {v}"),
        )),
    }
}

/// Who asked, for the ledger: `api:NAME` for a signed request,
/// `dashboard:NAME` for a session; NAME is what the caller says it is.
pub fn requester(caller: &Caller, name: Option<&str>) -> Result<String, ApiError> {
    let via = match caller {
        Caller::Session(_) => "dashboard",
        _ => "api",
    };
    match name {
        Some(n) if n.chars().count() > 64 || n.chars().any(char::is_control) => Err(ApiError::bad_request(
            "bad_request",
            "`requested_by` must be at most 64 characters, none of them control characters",
        )),
        Some(n) if !n.trim().is_empty() => Ok(format!("{via}:{}", n.trim())),
        _ => Ok(via.to_string()),
    }
}

/// `GET /health`: the daemon answers, and whether its live release is up.
async fn health(State(api): State<Arc<Api>>) -> Response {
    let s = api.ops.sup.status();
    let status = if s.ready { "ok" } else { "degraded" };
    Json(json!({
        "status": status,
        "live_commit": s.live_commit,
        "ready": s.ready,
        "in_watch_window": s.in_watch_window,
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

/// `GET /challenge`: a fresh single-use challenge (JSON, or the bare value
/// for `Accept: text/plain`).
async fn challenge(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let Some(c) = api.challenges.issue() else {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_challenges",
            "too many challenges are outstanding; use the ones you have, or wait for them to expire",
        )
        .retry_after(api.challenges.ttl().as_secs())
        .into_response();
    };
    let plain = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("text/plain"));
    let mut resp = if plain {
        ([("content-type", "text/plain; charset=utf-8")], c).into_response()
    } else {
        Json(json!({ "challenge": c, "expires_in": api.challenges.ttl().as_secs() })).into_response()
    };
    resp.headers_mut()
        .insert("cache-control", axum::http::HeaderValue::from_static("no-store"));
    resp
}

/// `POST /v1/session` (signed): a dashboard session cookie and its CSRF
/// token.
async fn session_create(State(api): State<Arc<Api>>, caller: axum::Extension<Caller>) -> Response {
    if !matches!(caller.0, Caller::Signature) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "signature_required",
            "a session is opened by a signed request, not by another session",
        )
        .into_response();
    }
    dashboard::login::open_session(&api)
}

/// `DELETE /v1/session`: end the session of the cookie.
async fn session_delete(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let ended = auth::session_cookie(&headers).is_some_and(|id| api.sessions.remove(&id));
    let cookie = format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        auth::SESSION_COOKIE
    );
    ([("set-cookie", cookie)], Json(json!({ "ended": ended }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct By {
        requested_by: Option<String>,
    }

    fn refusal(body: &str) -> String {
        let e = body_json::<By>(&Bytes::from(body.to_string())).unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::BAD_REQUEST, "bad_body"),
            "{body}"
        );
        e.message().to_string()
    }

    #[test]
    fn a_body_is_a_json_object_and_nothing_else() {
        let ok: By = body_json(&Bytes::from_static(b" \n{\"requested_by\":\"ada\"}")).unwrap();
        assert_eq!(ok.requested_by.as_deref(), Some("ada"));
        assert_eq!(
            refusal(r#"["ada"]"#),
            "the request body must be a JSON object (`{...}` with named fields), not a list"
        );
        assert!(refusal(r#""ada""#).ends_with("not a string"));
        assert!(refusal("7").ends_with("not a number"));
        assert!(refusal("null").ends_with("not null"));
        assert!(refusal("[1,").starts_with("the request body is not the JSON expected: "));
        assert!(refusal("").starts_with("the request body is not the JSON expected: "));
        let twice = refusal(r#"{"requested_by":"a","requested_by":"b"}"#);
        assert!(twice.contains("duplicate field `requested_by`"), "{twice}");
        assert!(refusal(r#"{"by":"a"}"#).contains("unknown field `by`"));
    }

    #[test]
    fn an_optional_body_may_be_blank() {
        assert_eq!(
            optional_body_json::<By>(&Bytes::from_static(b" \r\n")).unwrap(),
            By::default()
        );
        assert_eq!(
            optional_body_json::<By>(&Bytes::from_static(b"[null]"))
                .unwrap_err()
                .code(),
            "bad_body"
        );
    }
}
