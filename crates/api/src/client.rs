//! The `graft` CLI's side of the HTTP API: a blocking client that signs
//! every request that changes something (a fresh challenge each time) and
//! follows streamed answers.

use std::io::BufRead as _;
use std::time::Duration;

use graft_supervisor::wire::Line;
use serde_json::Value;

use crate::secret::Secret;
use crate::sign;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach graft run at {url}: {detail}")]
    Connect { url: String, detail: String },
    /// The API answered with an error object.
    #[error("{message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        class: Option<String>,
    },
    #[error("the answer of graft run at {url} was not what the API sends: {detail}")]
    Protocol { url: String, detail: String },
}

pub struct HttpClient {
    base: String,
    secret: Secret,
    agent: ureq::Agent,
}

impl HttpClient {
    /// A client for the daemon at `url` (`http://host:port`).
    pub fn new(url: &str, secret: Secret) -> Result<HttpClient, String> {
        let base = url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 10 {
            return Err(format!(
                "`{url}` is not the URL of graft run's API (like http://127.0.0.1:7878)"
            ));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .user_agent(concat!("graft/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(HttpClient { base, secret, agent })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn connect_error(&self, e: ureq::Error) -> ClientError {
        ClientError::Connect {
            url: self.base.clone(),
            detail: e.to_string(),
        }
    }

    fn challenge(&self) -> Result<String, ClientError> {
        let mut resp = self
            .agent
            .get(format!("{}/challenge", self.base))
            .header("accept", "text/plain")
            .call()
            .map_err(|e| self.connect_error(e))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| self.connect_error(e))?;
        if status != 200 {
            return Err(api_error(&self.base, status, &text));
        }
        Ok(text.trim().to_string())
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        accept: &str,
    ) -> Result<ureq::http::Response<ureq::Body>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("accept", accept)
            .header("content-type", "application/json");
        if method != "GET" {
            let challenge = self.challenge()?;
            let ts = chrono::Utc::now().timestamp().to_string();
            let sig = sign::sign(self.secret.bytes(), method, path, &ts, &challenge, body);
            req = req
                .header(sign::TIMESTAMP, ts)
                .header(sign::CHALLENGE, challenge)
                .header(sign::SIGNATURE, sig);
        }
        let req = req.body(body.to_vec()).map_err(|e| ClientError::Protocol {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        self.agent.run(req).map_err(|e| self.connect_error(e))
    }

    /// One request; the JSON answer of a 2xx, else the API's error.
    pub fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut resp = self.send(method, path, &bytes, "application/json")?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| self.connect_error(e))?;
        if !(200..300).contains(&status) {
            return Err(api_error(&self.base, status, &text));
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Protocol {
            url: self.base.clone(),
            detail: format!("not JSON ({e})"),
        })
    }

    /// One request answered as a stream of lines (events, then the
    /// outcome), each handed to `on_line`.
    pub fn stream(
        &self,
        method: &str,
        path: &str,
        body: &Value,
        on_line: &mut dyn FnMut(Line),
    ) -> Result<(), ClientError> {
        let bytes = body.to_string().into_bytes();
        let resp = self.send(method, path, &bytes, "application/x-ndjson")?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let mut resp = resp;
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            return Err(api_error(&self.base, status, &text));
        }
        let reader = std::io::BufReader::new(resp.into_body().into_reader());
        for line in reader.lines() {
            let line = line.map_err(|e| ClientError::Protocol {
                url: self.base.clone(),
                detail: format!("the stream broke off ({e})"),
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: Line = serde_json::from_str(&line).map_err(|e| ClientError::Protocol {
                url: self.base.clone(),
                detail: format!("bad line ({e})"),
            })?;
            on_line(parsed);
        }
        Ok(())
    }
}

fn api_error(url: &str, status: u16, text: &str) -> ClientError {
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v["error"]["code"].is_string() => ClientError::Api {
            status,
            code: v["error"]["code"].as_str().unwrap_or_default().to_string(),
            message: v["error"]["message"].as_str().unwrap_or_default().to_string(),
            class: v["error"]["class"].as_str().map(String::from),
        },
        _ => ClientError::Protocol {
            url: url.to_string(),
            detail: format!("HTTP {status}: {}", text.chars().take(300).collect::<String>()),
        },
    }
}
