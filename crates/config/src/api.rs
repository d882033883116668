//! `[api]` and `[[webhooks]]`: the control plane `graft run` serves (the
//! HTTP API with signed requests) and the chat webhooks told of each
//! upgrade's state changes.
//!
//! ```toml
//! [api]
//! listen = "127.0.0.1:7878"       # default 127.0.0.1:0 (a free port, printed at start)
//! secret_env = "GRAFT_API_SECRET" # where the shared secret is looked for first
//! secret_file = "~/.config/graft/api-secret"   # else this file (mode 0600)
//! upgrades_per_window = 5         # upgrades accepted per window (all sources but the local CLI)
//! window = "1h"
//! max_body_bytes = 2097152
//! max_connections = 64
//! request_timeout = "30s"         # to send a request's headers and body
//!
//! [[webhooks]]
//! name = "team"
//! url_env = "SLACK_WEBHOOK_URL"   # or url = "https://..."
//! format = "slack"                # or "json"
//! events = ["promoted", "rolled_back", "gates_failed", "needs_approval"]
//! ```
//!
//! Architecture invariant: the API secret is never in this file, only
//! where to find it (an environment variable's name, or a file's path).

use std::net::SocketAddr;

use serde::Deserialize;

use crate::values::{DurationValue, Name};

/// `[api]`: the HTTP control plane served by `graft run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the HTTP API at all.
    pub enabled: bool,
    /// Where it listens. Port 0 picks a free port.
    pub listen: ApiListen,
    /// The environment variable holding the shared secret.
    pub secret_env: EnvName,
    /// A file holding the shared secret (mode 0600), used when the
    /// variable is not set. `~/` is the home directory; a relative path is
    /// relative to the repository root. Neither set: `graft run` makes
    /// `.graft/api-secret`.
    pub secret_file: Option<SecretFile>,
    /// Upgrades accepted per `window` (dry runs not counted).
    pub upgrades_per_window: Bounded<1, 100_000>,
    pub window: DurationValue,
    /// The largest request body accepted.
    pub max_body_bytes: Bounded<1024, MAX_API_BODY_BYTES>,
    /// Connections served at once; more wait their turn.
    pub max_connections: Bounded<1, 100_000>,
    /// How long a client may take to send a request's headers and body.
    pub request_timeout: DurationValue,
    /// How long a challenge from `GET /challenge` stays usable.
    pub challenge_ttl: DurationValue,
    /// How long a dashboard session lasts.
    pub session_ttl: DurationValue,
}

/// The most `max_body_bytes` may be: what any HTTP API of Graft takes.
pub const MAX_API_BODY_BYTES: u64 = 256 * 1024 * 1024;

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            listen: ApiListen(SocketAddr::from(([127, 0, 0, 1], 0))),
            secret_env: EnvName("GRAFT_API_SECRET".into()),
            secret_file: None,
            upgrades_per_window: Bounded(5),
            window: DurationValue::secs(3600),
            max_body_bytes: Bounded(2 * 1024 * 1024),
            max_connections: Bounded(64),
            request_timeout: DurationValue::secs(30),
            challenge_ttl: DurationValue::secs(60),
            session_ttl: DurationValue::secs(12 * 3600),
        }
    }
}

/// A TCP address to listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ApiListen(pub SocketAddr);

impl TryFrom<String> for ApiListen {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.trim().parse().map(ApiListen).map_err(|_| {
            format!(
                "`{s}` is not an address to listen on: write \"127.0.0.1:7878\" (or port 0 for a free one)"
            )
        })
    }
}

/// An integer from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Bounded<const MIN: u64, const MAX: u64>(pub u64);

impl<const MIN: u64, const MAX: u64> TryFrom<i64> for Bounded<MIN, MAX> {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        if v >= MIN as i64 && v as u64 <= MAX {
            Ok(Bounded(v as u64))
        } else {
            Err(format!(
                "{v} is out of range: give a whole number from {MIN} to {MAX}"
            ))
        }
    }
}

/// The name of an environment variable (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct EnvName(pub String);

impl TryFrom<String> for EnvName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(EnvName(s))
        } else {
            Err(format!(
                "`{s}` is not an environment variable name (letters, digits and `_`); put the name of the variable here, never the secret itself"
            ))
        }
    }
}

impl EnvName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a secret file lives: not inside the repository (it would be
/// committed), except under `.graft/`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct SecretFile(pub String);

impl TryFrom<String> for SecretFile {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("secret_file is empty: give the path of a file holding the secret".into());
        }
        let relative = !s.starts_with('/') && !s.starts_with("~/");
        if relative && !s.starts_with(".graft/") {
            return Err(format!(
                "secret_file `{s}` is inside the repository, where it would be committed; keep it outside (an absolute path or `~/...`) or under `.graft/`"
            ));
        }
        if relative && s.split('/').any(|c| c == "..") {
            return Err(format!("secret_file `{s}` leaves `.graft/` (`..`)"));
        }
        Ok(SecretFile(s))
    }
}

impl SecretFile {
    /// The file's path: `~/` expanded with `home`, a relative one under `root`.
    pub fn resolve(&self, root: &std::path::Path, home: Option<&std::path::Path>) -> std::path::PathBuf {
        match (self.0.strip_prefix("~/"), home) {
            (Some(rest), Some(home)) => home.join(rest),
            (Some(_), None) => std::path::PathBuf::from(&self.0),
            _ if self.0.starts_with('/') => std::path::PathBuf::from(&self.0),
            _ => root.join(&self.0),
        }
    }
}

/// One `[[webhooks]]` entry: a URL told of upgrade state changes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names it in the ledger's outbox (default: its URL, or `env:VAR`).
    pub name: Option<Name>,
    pub url: Option<WebhookUrl>,
    /// The environment variable holding the URL (chat webhook URLs are
    /// secrets: keep them out of a committed file).
    pub url_env: Option<EnvName>,
    #[serde(default)]
    pub format: WebhookFormat,
    /// The state changes to send (default: all).
    #[serde(default = "WebhookEvent::all")]
    pub events: Vec<WebhookEvent>,
    /// One delivery attempt's time limit.
    #[serde(default = "ten_seconds")]
    pub timeout: DurationValue,
    /// Retries back off from 1 s, doubling up to this.
    #[serde(default = "five_minutes")]
    pub max_backoff: DurationValue,
    /// A notification still undelivered after this long is dropped.
    #[serde(default = "one_day")]
    pub give_up_after: DurationValue,
}

fn ten_seconds() -> DurationValue {
    DurationValue::secs(10)
}
fn five_minutes() -> DurationValue {
    DurationValue::secs(300)
}
fn one_day() -> DurationValue {
    DurationValue::secs(86_400)
}

impl WebhookConfig {
    /// The key of this webhook's rows in the outbox.
    pub fn key(&self) -> String {
        match (&self.name, &self.url, &self.url_env) {
            (Some(n), _, _) => n.as_str().to_string(),
            (None, Some(u), _) => u.0.clone(),
            (None, None, Some(v)) => format!("env:{}", v.as_str()),
            (None, None, None) => String::new(),
        }
    }

    /// The URL to post to: `url`, or the value of `url_env`.
    pub fn resolve_url(&self) -> Result<String, String> {
        if let Some(u) = &self.url {
            return Ok(u.0.clone());
        }
        let var = self.url_env.as_ref().map(|v| v.as_str()).unwrap_or_default();
        let value = std::env::var(var).map_err(|_| {
            format!(
                "webhook `{}`: the environment variable {var} is not set",
                self.key()
            )
        })?;
        WebhookUrl::try_from(value)
            .map(|u| u.0)
            .map_err(|e| format!("webhook `{}`: {var}: {e}", self.key()))
    }

    pub fn wants(&self, event: WebhookEvent) -> bool {
        self.events.contains(&event)
    }
}

/// An `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct WebhookUrl(pub String);

impl TryFrom<String> for WebhookUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(|| format!("`{s}` is not a webhook URL: it must start with https:// or http://"))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() || s.chars().any(char::is_whitespace) {
            return Err(format!(
                "`{s}` is not a webhook URL: it has no host, or holds spaces"
            ));
        }
        Ok(WebhookUrl(s))
    }
}

/// The body a webhook gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// Slack-compatible: `text` plus `blocks` (also read by Mattermost,
    /// Rocket.Chat, Discord's `/slack` endpoint).
    #[default]
    Slack,
    /// The notification as plain JSON.
    Json,
}

/// An upgrade state change a webhook can be told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    /// The change is staged: its files and diff are known.
    Planned,
    /// It waits for `approve`.
    NeedsApproval,
    GatesPassed,
    GatesFailed,
    /// The new release serves (its watch window begins).
    Deployed,
    Promoted,
    RolledBack,
    /// Failed for another reason than a gate (refused, provider, ...).
    Failed,
    Cancelled,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 9] = [
        WebhookEvent::Planned,
        WebhookEvent::NeedsApproval,
        WebhookEvent::GatesPassed,
        WebhookEvent::GatesFailed,
        WebhookEvent::Deployed,
        WebhookEvent::Promoted,
        WebhookEvent::RolledBack,
        WebhookEvent::Failed,
        WebhookEvent::Cancelled,
    ];

    pub fn all() -> Vec<WebhookEvent> {
        Self::ALL.to_vec()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::Planned => "planned",
            WebhookEvent::NeedsApproval => "needs_approval",
            WebhookEvent::GatesPassed => "gates_passed",
            WebhookEvent::GatesFailed => "gates_failed",
            WebhookEvent::Deployed => "deployed",
            WebhookEvent::Promoted => "promoted",
            WebhookEvent::RolledBack => "rolled_back",
            WebhookEvent::Failed => "failed",
            WebhookEvent::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks across the keys of `[[webhooks]]` entries (each value alone is
/// checked while deserializing). Errors point at the entry's header.
pub(crate) fn check_webhooks(
    hooks: &[WebhookConfig],
    file: &std::path::Path,
    text: &str,
) -> Result<(), crate::ConfigError> {
    let headers: Vec<usize> = text.match_indices("[[webhooks]]").map(|(i, _)| i + 2).collect();
    let at = |i: usize, key: &str, message: String| {
        let pos = headers.get(i).copied().unwrap_or(0);
        crate::ConfigError::at(file, text, pos..pos, format!("webhooks[{i}]{key}"), message)
    };
    let mut keys = std::collections::HashSet::new();
    for (i, h) in hooks.iter().enumerate() {
        match (&h.url, &h.url_env) {
            (Some(_), Some(_)) => {
                return Err(at(i, "", "give either `url` or `url_env`, not both".into()));
            }
            (None, None) => {
                return Err(at(
                    i,
                    "",
                    "a webhook needs `url = \"https://...\"` or `url_env = \"VARIABLE\"` (the variable holding the URL)".into(),
                ));
            }
            _ => {}
        }
        if h.events.is_empty() {
            return Err(at(
                i,
                ".events",
                format!(
                    "`events` is empty, so nothing would be sent; list some of {} or leave the key out for all",
                    WebhookEvent::ALL.map(|e| e.as_str()).join(", ")
                ),
            ));
        }
        if !keys.insert(h.key()) {
            return Err(at(
                i,
                "",
                format!(
                    "a webhook `{}` is already defined above; give this one another `name`",
                    h.key()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
