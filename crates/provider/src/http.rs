//! One JSON POST to an LLM endpoint, with a timeout, a bounded reply, and
//! retries with exponential backoff on rate limits (429), server errors
//! (5xx, 529 overloaded), timeouts and lost connections. A `Retry-After`
//! header, when the server sends one, sets the wait (capped).
//!
//! Secrets: headers are never logged or put in an error; error messages
//! quote the URL, the status and the API's own error message only.

use std::time::Duration;

/// Why a request failed, after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// No connection (refused, DNS, TLS, reset).
    Unreachable {
        url: String,
        detail: String,
        attempts: u32,
    },
    /// No complete answer within the timeout.
    Timeout {
        url: String,
        after: Duration,
        attempts: u32,
    },
    /// The server answered with an error status.
    Status {
        url: String,
        status: u16,
        message: String,
        attempts: u32,
    },
    /// The answer was bigger than the limit.
    TooLarge { url: String, limit: u64 },
}

pub struct Http {
    agent: ureq::Agent,
    timeout: Duration,
    retries: u32,
    max_reply_bytes: u64,
    /// The first wait between retries (doubled each time).
    backoff: Duration,
}

/// The longest wait between two attempts, whatever Retry-After says.
const MAX_WAIT: Duration = Duration::from_secs(60);

impl Http {
    pub fn new(timeout: Duration, retries: u32, max_reply_bytes: u64) -> Http {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("graft/", env!("CARGO_PKG_VERSION")))
            .build();
        Http {
            agent: config.into(),
            timeout,
            retries,
            max_reply_bytes,
            backoff: Duration::from_secs(1),
        }
    }

    /// POST `body` as JSON; the reply body of a 2xx answer. `on_retry` is
    /// told why and how long Graft waits before each retry.
    pub fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
        on_retry: &dyn Fn(&str),
    ) -> Result<String, HttpError> {
        let payload = body.to_string();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt > self.retries;
            let mut req = self.agent.post(url).header("content-type", "application/json");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let (why, wait) = match req.send(payload.as_bytes()) {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(Duration::from_secs_f64);
                    let text = resp
                        .body_mut()
                        .with_config()
                        .limit(self.max_reply_bytes)
                        .read_to_string();
                    let text = match text {
                        Ok(t) => t,
                        Err(ureq::Error::BodyExceedsLimit(_)) => {
                            return Err(HttpError::TooLarge {
                                url: url.to_string(),
                                limit: self.max_reply_bytes,
                            });
                        }
                        Err(e) if (200..300).contains(&status) => {
                            let (why, wait) = (format!("the reply broke off ({e})"), None);
                            if last {
                                return Err(HttpError::Unreachable {
                                    url: url.to_string(),
                                    detail: why,
                                    attempts: attempt,
                                });
                            }
                            self.wait(attempt, wait, &why, on_retry);
                            continue;
                        }
                        Err(_) => String::new(),
                    };
                    if (200..300).contains(&status) {
                        return Ok(text);
                    }
                    let transient = status == 429 || status >= 500;
                    if !transient || last {
                        return Err(HttpError::Status {
                            url: url.to_string(),
                            status,
                            message: api_message(&text),
                            attempts: attempt,
                        });
                    }
                    (format!("HTTP {status}"), retry_after)
                }
                Err(ureq::Error::Timeout(_)) => {
                    if last {
                        return Err(HttpError::Timeout {
                            url: url.to_string(),
                            after: self.timeout,
                            attempts: attempt,
                        });
                    }
                    (format!("no answer within {}", secs(self.timeout)), None)
                }
                Err(e) => {
                    if last {
                        return Err(HttpError::Unreachable {
                            url: url.to_string(),
                            detail: e.to_string(),
                            attempts: attempt,
                        });
                    }
                    (e.to_string(), None)
                }
            };
            self.wait(attempt, wait, &why, on_retry);
        }
    }

    fn wait(&self, attempt: u32, retry_after: Option<Duration>, why: &str, on_retry: &dyn Fn(&str)) {
        let backoff = self.backoff.saturating_mul(1 << (attempt - 1).min(6));
        let wait = retry_after.unwrap_or(backoff).min(MAX_WAIT);
        on_retry(&format!(
            "{why}; retrying in {} (attempt {} of {})",
            secs(wait),
            attempt + 1,
            self.retries + 1
        ));
        std::thread::sleep(wait);
    }
}

fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The API's own words from an error body: Anthropic's
/// `{"error": {"type", "message"}}`, OpenAI's `{"error": {"message"}}`,
/// or the start of the text.
fn api_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body)
        && let Some(err) = v.get("error")
    {
        let kind = err.get("type").and_then(|t| t.as_str());
        let msg = err
            .get("message")
            .and_then(|m| m.as_str())
            .or_else(|| err.as_str())
            .unwrap_or("");
        return match kind {
            Some(k) if !msg.is_empty() => format!("{k}: {msg}"),
            Some(k) => k.to_string(),
            None => msg.to_string(),
        };
    }
    let t: String = body.trim().chars().take(300).collect();
    if t.is_empty() { "(empty body)".into() } else { t }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tries = |n: &u32| {
            if *n == 1 {
                "1 attempt".to_string()
            } else {
                format!("{n} attempts")
            }
        };
        match self {
            HttpError::Unreachable {
                url,
                detail,
                attempts,
            } => {
                write!(f, "cannot reach {url}: {detail} ({})", tries(attempts))
            }
            HttpError::Timeout { url, after, attempts } => write!(
                f,
                "{url} did not answer within {} ({}); raise `timeout` if the model is slow",
                secs(*after),
                tries(attempts)
            ),
            HttpError::Status {
                url,
                status,
                message,
                attempts,
            } => write!(f, "{url} answered HTTP {status}: {message} ({})", tries(attempts)),
            HttpError::TooLarge { url, limit } => {
                write!(f, "the reply from {url} is over the limit of {limit} bytes")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_messages_are_quoted_from_either_format() {
        assert_eq!(
            api_message(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
            "overloaded_error: Overloaded"
        );
        assert_eq!(
            api_message(
                r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#
            ),
            "invalid_request_error: Incorrect API key provided"
        );
        assert_eq!(api_message(r#"{"error":"model not found"}"#), "model not found");
        assert_eq!(
            api_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }

    #[test]
    fn unreachable_after_retries() {
        // A port nobody listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut http = Http::new(Duration::from_secs(5), 1, 1024);
        http.backoff = Duration::from_millis(10);
        let retries = std::cell::Cell::new(0);
        let e = http
            .post_json(
                &format!("http://127.0.0.1:{port}/v1/messages"),
                &[],
                &serde_json::json!({}),
                &|_| retries.set(retries.get() + 1),
            )
            .unwrap_err();
        assert!(matches!(e, HttpError::Unreachable { attempts: 2, .. }), "{e:?}");
        assert_eq!(retries.get(), 1);
        assert!(
            e.to_string()
                .starts_with(&format!("cannot reach http://127.0.0.1:{port}/v1/messages: "))
        );
    }
}
