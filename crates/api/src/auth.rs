//! Who may change things: every request that is not a read must carry a
//! valid signature ([`crate::sign`]) over a fresh, single-use challenge, or
//! belong to a dashboard session (cookie plus CSRF token).
//!
//! The guard reads the whole body first (bounded in size and time), checks,
//! and only then lets the request reach a handler, so a refused request
//! changes nothing. Each refusal is a 401 with a reason code:
//! `missing_header`, `bad_timestamp`, `stale_timestamp`, `bad_signature`,
//! `unknown_challenge`, `used_challenge`, `expired_challenge`,
//! `bad_session`, `bad_csrf`, `bad_origin`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use subtle::ConstantTimeEq as _;

use crate::error::ApiError;
use crate::sign::{self, CHALLENGE, SIGNATURE, TIMESTAMP};
use crate::state::Api;

/// How far a request's `X-Timestamp` may be from the server's clock.
pub const MAX_SKEW_SECS: i64 = 300;
/// Outstanding challenges at most (each is 64 bytes of memory and a map slot).
const MAX_CHALLENGES: usize = 10_000;
pub const SESSION_COOKIE: &str = "graft_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// `POST` here trades a one-time login token for a session (see
/// [`crate::dashboard::login`]).
pub const LOGIN_LINK_PATH: &str = "/v1/session/link";

/// Who made a request that passed the guard.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A read: nobody needs to be known.
    Anyone,
    /// A signed request.
    Signature,
    /// A dashboard session (its id).
    Session(String),
}

enum Slot {
    Issued(Instant),
    /// Used; remembered until it would have expired, to say so.
    Used(Instant),
}

/// Challenges handed out by `GET /challenge`: random, single-use,
/// short-lived.
pub struct Challenges {
    ttl: Duration,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Challenges {
    pub fn new(ttl: Duration) -> Challenges {
        Challenges {
            ttl,
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new challenge, or None when too many are outstanding.
    pub fn issue(&self) -> Option<String> {
        let now = Instant::now();
        let mut slots = self.slots.lock().expect("lock");
        if slots.len() >= MAX_CHALLENGES {
            slots.retain(|_, s| match s {
                Slot::Issued(exp) | Slot::Used(exp) => *exp > now,
            });
            if slots.len() >= MAX_CHALLENGES {
                return None;
            }
        }
        let c = hex::encode(rand::random::<[u8; 24]>());
        slots.insert(c.clone(), Slot::Issued(now + self.ttl));
        Some(c)
    }

    /// Use a challenge: it is good once, and only before it expires.
    pub fn take(&self, challenge: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut slots = self.slots.lock().expect("lock");
        match slots.get(challenge) {
            Some(Slot::Issued(exp)) if *exp > now => {
                let exp = *exp;
                slots.insert(challenge.to_string(), Slot::Used(exp));
                Ok(())
            }
            Some(Slot::Issued(_)) => {
                slots.remove(challenge);
                Err(unauthorized(
                    "expired_challenge",
                    format!(
                        "the challenge expired ({} s after it was issued); fetch a new one from GET /challenge just before each request",
                        self.ttl.as_secs()
                    ),
                ))
            }
            Some(Slot::Used(_)) => Err(unauthorized(
                "used_challenge",
                "this challenge was used already; each request needs its own from GET /challenge",
            )),
            None => Err(unauthorized(
                "unknown_challenge",
                "this server never issued that challenge (or forgot it: challenges do not survive a restart); fetch one from GET /challenge",
            )),
        }
    }
}

/// A dashboard session.
#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    pub expires: Instant,
    pub expires_at: String,
}

/// Dashboard sessions, in memory: a restart signs everyone out.
pub struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// A new session: (id for the cookie, the session).
    pub fn create(&self) -> (String, Session) {
        let now = Instant::now();
        let id = hex::encode(rand::random::<[u8; 32]>());
        let expires_at = (chrono::Utc::now()
            + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::hours(12)))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let s = Session {
            csrf: hex::encode(rand::random::<[u8; 32]>()),
            expires: now + self.ttl,
            expires_at,
        };
        let mut map = self.map.lock().expect("lock");
        map.retain(|_, s| s.expires > now);
        map.insert(id.clone(), s.clone());
        (id, s)
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.map.lock().expect("lock");
        map.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    pub fn remove(&self, id: &str) -> bool {
        self.map.lock().expect("lock").remove(id).is_some()
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

fn unauthorized(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// Reads are open; anything else must pass [`check`].
pub async fn guard(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        let mut req = req;
        req.extensions_mut().insert(Caller::Anyone);
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let bytes = match read_body(&api, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // The one changing request that needs no signature nor session: it
    // carries its own credential, a one-time login token.
    if parts.method == Method::POST && parts.uri.path() == LOGIN_LINK_PATH {
        parts.extensions.insert(Caller::Anyone);
        return next.run(Request::from_parts(parts, Body::from(bytes))).await;
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    match check(&api, &parts.method, &path, &parts.headers, &bytes) {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        Err(e) => e.into_response(),
    }
}

/// The body, whole, within `[api] max_body_bytes` and `request_timeout`.
async fn read_body(api: &Api, body: Body) -> Result<Bytes, ApiError> {
    let limit = api.config.max_body_bytes.0 as usize;
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(api.config.request_timeout.0, limited.collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} s",
                api.config.request_timeout.0.as_secs()
            ),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("cannot read the request body: {e}"),
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// A body over `[api] max_body_bytes`: `too_large`, as a change over
/// `[limits]` is from every way in.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "the request body is more than {limit} bytes, the most this API reads; send less, or raise `[api] max_body_bytes` in graft.toml"
        ),
    )
    .with("class", serde_json::json!(graft_pipeline::FailureClass::Refused))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Decide who sent a changing request, or refuse it.
pub fn check(
    api: &Api,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Caller, ApiError> {
    let signed = [TIMESTAMP, CHALLENGE, SIGNATURE]
        .iter()
        .any(|h| headers.contains_key(*h));
    if !signed && let Some(id) = session_cookie(headers) {
        return check_session(api, headers, &id);
    }
    let missing: Vec<&str> = [
        ("X-Timestamp", TIMESTAMP),
        ("X-Challenge", CHALLENGE),
        ("X-Signature", SIGNATURE),
    ]
    .iter()
    .filter(|(_, h)| header(headers, h).is_none_or(|v| v.trim().is_empty()))
    .map(|(name, _)| *name)
    .collect();
    if !missing.is_empty() {
        return Err(unauthorized(
            "missing_header",
            format!(
                "this request changes something, so it must be signed; missing {}. Send X-Timestamp (Unix seconds), X-Challenge (from GET /challenge) and X-Signature (HMAC-SHA256 with the shared secret; see the README, \"Signed requests\")",
                missing.join(", ")
            ),
        ));
    }
    let ts = header(headers, TIMESTAMP).unwrap_or_default().trim();
    let challenge = header(headers, CHALLENGE).unwrap_or_default().trim();
    let signature = header(headers, SIGNATURE).unwrap_or_default().trim();
    let t: i64 = ts.parse().map_err(|_| {
        unauthorized(
            "bad_timestamp",
            format!("X-Timestamp `{ts}` is not a time in Unix seconds (what `date +%s` prints)"),
        )
    })?;
    let now = chrono::Utc::now().timestamp();
    let skew = now.saturating_sub(t);
    if skew.abs() > MAX_SKEW_SECS {
        return Err(unauthorized(
            "stale_timestamp",
            format!(
                "X-Timestamp is {} s {} this server's clock (now {now}); it must be within {MAX_SKEW_SECS} s. Sign each request just before sending it, and check the clocks",
                skew.abs(),
                if skew > 0 { "behind" } else { "ahead of" }
            ),
        ));
    }
    if !sign::verify(
        api.secret.bytes(),
        method.as_str(),
        path,
        ts,
        challenge,
        body,
        signature,
    ) {
        return Err(unauthorized(
            "bad_signature",
            "the signature does not match: X-Signature must be the hex HMAC-SHA256, with the shared secret, of METHOD, the path with its query, X-Timestamp, X-Challenge and the SHA-256 of the exact body, joined by newlines",
        ));
    }
    api.challenges.take(challenge)?;
    Ok(Caller::Signature)
}

pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == SESSION_COOKIE).then(|| v.to_string())
        })
}

fn check_session(api: &Api, headers: &HeaderMap, id: &str) -> Result<Caller, ApiError> {
    let session = api.sessions.get(id).ok_or_else(|| {
        unauthorized(
            "bad_session",
            "the session is unknown or has expired (sessions end when graft run restarts); sign in again",
        )
    })?;
    let token = header(headers, CSRF_HEADER).unwrap_or_default();
    if !bool::from(token.as_bytes().ct_eq(session.csrf.as_bytes())) {
        return Err(unauthorized(
            "bad_csrf",
            "a request made with a session cookie must carry the session's X-CSRF-Token header",
        ));
    }
    if let (Some(origin), Some(host)) = (header(headers, "origin"), header(headers, "host")) {
        let same = origin == format!("http://{host}") || origin == format!("https://{host}");
        if !same {
            return Err(unauthorized(
                "bad_origin",
                format!(
                    "a session request from origin {origin} is refused: only pages of this server ({host}) may use the session"
                ),
            ));
        }
    }
    Ok(Caller::Session(id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_is_good_once_and_says_why_not_after() {
        let c = Challenges::new(Duration::from_secs(60));
        let ch = c.issue().unwrap();
        assert_eq!(ch.len(), 48);
        assert!(c.take(&ch).is_ok());
        assert_eq!(c.take(&ch).unwrap_err().code(), "used_challenge");
        assert_eq!(c.take("nope").unwrap_err().code(), "unknown_challenge");
        let short = Challenges::new(Duration::from_millis(1));
        let ch = short.issue().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(short.take(&ch).unwrap_err().code(), "expired_challenge");
    }

    #[test]
    fn sessions_expire() {
        let s = Sessions::new(Duration::from_millis(20));
        let (id, session) = s.create();
        assert_eq!(s.get(&id).unwrap().csrf, session.csrf);
        std::thread::sleep(Duration::from_millis(30));
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=1; graft_session=abc; b=2".parse().unwrap());
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
    }
}
