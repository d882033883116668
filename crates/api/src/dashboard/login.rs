//! Signing in to the dashboard without typing the secret: `graft run`
//! prints a one-time link (`/#login=TOKEN`) at start. The token travels in
//! the URL's fragment, which browsers never send to a server or put in a
//! Referer; the page posts it to `POST /v1/session/link`, which opens a
//! session like a signed `POST /v1/session`. A token is good once, for
//! [`LINK_TTL`], and only in the memory of the `graft run` that made it.
//!
//! `GET /v1/session` hands a page the CSRF token of the session its
//! (HttpOnly) cookie names, so a reload does not sign the person out.
//! Only a page of this origin can read the answer (no CORS), and a
//! SameSite=Strict cookie never comes with another site's request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq as _;

use crate::auth;
use crate::error::ApiError;
use crate::routes::body_json;
use crate::state::Api;

/// How long a login link works.
pub const LINK_TTL: Duration = Duration::from_secs(600);
/// Outstanding links at most.
const MAX_LINKS: usize = 64;

/// One-time login tokens.
#[derive(Default)]
pub struct LoginLinks {
    tokens: Mutex<HashMap<String, Instant>>,
}

impl LoginLinks {
    pub fn new() -> Arc<LoginLinks> {
        Arc::new(LoginLinks::default())
    }

    /// A new single-use token, good for [`LINK_TTL`].
    pub fn issue(&self) -> String {
        let now = Instant::now();
        let mut tokens = self.tokens.lock().expect("lock");
        tokens.retain(|_, exp| *exp > now);
        if tokens.len() >= MAX_LINKS
            && let Some(oldest) = tokens.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone())
        {
            tokens.remove(&oldest);
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        tokens.insert(token.clone(), now + LINK_TTL);
        token
    }

    /// The dashboard URL that signs in with a new token.
    pub fn link(&self, api_url: &str) -> String {
        format!("{api_url}/#login={}", self.issue())
    }

    /// Use a token: true once, and only before it expires. Compared in
    /// constant time against each outstanding one.
    pub fn take(&self, token: &str) -> bool {
        let now = Instant::now();
        let mut tokens = self.tokens.lock().expect("lock");
        let found = tokens
            .keys()
            .find(|k| bool::from(k.as_bytes().ct_eq(token.as_bytes())))
            .cloned();
        match found.and_then(|k| tokens.remove(&k)) {
            Some(exp) => exp > now,
            None => false,
        }
    }
}

/// A new session's answer: the cookie and the CSRF token.
pub fn open_session(api: &Api) -> Response {
    let (id, s) = api.sessions.create();
    let cookie = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        auth::SESSION_COOKIE,
        api.sessions.ttl().as_secs()
    );
    (
        StatusCode::CREATED,
        [("set-cookie", cookie)],
        Json(json!({ "csrf_token": s.csrf, "expires_at": s.expires_at })),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    token: String,
}

/// `POST /v1/session/link`: trade a one-time login token for a session.
/// The guard lets it through unsigned: the token is the credential.
pub async fn session_from_link(State(api): State<Arc<Api>>, body: Bytes) -> Result<Response, ApiError> {
    let b: LinkBody = body_json(&body)?;
    if !api.logins.take(b.token.trim()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_login_link",
            "this login link is unknown, used already or expired (a link works once, for 10 minutes, until graft run restarts); sign in with the shared secret, or restart graft run for a new link",
        ));
    }
    Ok(open_session(&api))
}

/// `GET /v1/session`: whether the cookie names a live session, and if so
/// its CSRF token. Always a 200, so a page that is not signed in yet
/// learns it without an error.
pub async fn session_get(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let session = auth::session_cookie(&headers).and_then(|id| api.sessions.get(&id));
    let body = match session {
        Some(s) => json!({ "signed_in": true, "csrf_token": s.csrf, "expires_at": s.expires_at }),
        None => json!({ "signed_in": false }),
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert("cache-control", axum::http::HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_token_works_once() {
        let l = LoginLinks::new();
        let t = l.issue();
        assert_eq!(t.len(), 64);
        assert!(!l.take("nope"));
        assert!(l.take(&t));
        assert!(!l.take(&t), "a second use is refused");
        let link = l.link("http://127.0.0.1:7878");
        let t2 = link.strip_prefix("http://127.0.0.1:7878/#login=").unwrap();
        assert!(l.take(t2));
    }

    #[test]
    fn an_expired_login_token_is_refused() {
        let l = LoginLinks::new();
        let t = l.issue();
        *l.tokens.lock().unwrap().get_mut(&t).unwrap() = Instant::now() - Duration::from_secs(1);
        assert!(!l.take(&t));
    }
}
