//! The control plane from outside: a real HTTP client (ureq) against the
//! API of a real `graft run`, signing requests with its own HMAC code (not
//! Graft's), a webhook receiver that can go down and come back, and the
//! Python tools (the official MCP SDK, schemathesis, prometheus_client)
//! that scripts/test.sh installs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::Target;
use super::agent::{Daemon, agent_config, free_port};

pub const SECRET: &str = "test-secret-for-the-api-0123456789";

/// The agent target with `extra` appended to its graft.toml.
pub fn api_target(extra: &str) -> (Target, u16) {
    let port = free_port();
    let t = Target::agent_with(&format!("{}\n{extra}", agent_config(port)));
    (t, port)
}

/// `graft run` with the API's secret.
pub fn start(t: &Target) -> Daemon {
    t.run_daemon_env(&[("GRAFT_API_SECRET", SECRET)])
}

/// Edits replacing docs/README.md (`no_restart`: promoted without a restart).
pub fn docs_edit(text: &str) -> String {
    json!([{ "op": "replace", "path": "docs/README.md", "content": text }]).to_string()
}

/// An answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error code of an error answer.
    pub fn code(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(String::from))
            .unwrap_or_default()
    }

    pub fn expect(&self, status: u16) -> &Resp {
        assert_eq!(self.status, status, "unexpected status: {}", self.body);
        self
    }
}

/// HMAC-SHA256 over the documented text, hex.
pub fn sign(secret: &str, method: &str, path: &str, ts: &str, challenge: &str, body: &[u8]) -> String {
    let text = format!(
        "{method}\n{path}\n{ts}\n{challenge}\n{}",
        hex::encode(Sha256::digest(body))
    );
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The three signature headers of one request.
pub struct Signature {
    pub timestamp: String,
    pub challenge: String,
    pub signature: String,
}

impl Signature {
    pub fn headers(&self) -> Vec<(&str, &str)> {
        vec![
            ("X-Timestamp", self.timestamp.as_str()),
            ("X-Challenge", self.challenge.as_str()),
            ("X-Signature", self.signature.as_str()),
        ]
    }
}

/// What a forged request gets wrong. Each part left `None` is right: the
/// API's secret, the path requested, now, a challenge just issued, the
/// body sent.
#[derive(Default)]
pub struct Forgery<'a> {
    pub secret: Option<&'a str>,
    pub signed_path: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub challenge: Option<&'a str>,
    pub signed_body: Option<&'a [u8]>,
}

pub struct Api {
    pub url: String,
    pub secret: String,
    agent: ureq::Agent,
}

impl Api {
    pub fn of(d: &Daemon) -> Api {
        let url = d.info["endpoints"]["api"]
            .as_str()
            .unwrap_or_else(|| panic!("graft run reported no API: {}", d.info))
            .to_string();
        Api::at(&url)
    }

    pub fn at(url: &str) -> Api {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Api {
            url: url.to_string(),
            secret: SECRET.to_string(),
            agent,
        }
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Any request, with exactly these headers.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body.to_vec()).unwrap();
        let mut resp = self
            .agent
            .run(req)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .unwrap_or_default();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], b"")
    }

    pub fn challenge(&self) -> String {
        let r = self.get("/challenge");
        r.expect(200);
        r.json()["challenge"].as_str().unwrap().to_string()
    }

    /// The signature headers for a request, signed now.
    pub fn signature(&self, method: &str, path: &str, body: &[u8]) -> Signature {
        let challenge = self.challenge();
        let timestamp = now().to_string();
        let signature = sign(&self.secret, method, path, &timestamp, &challenge, body);
        Signature {
            timestamp,
            challenge,
            signature,
        }
    }

    /// A signed request with a JSON body.
    pub fn signed(&self, method: &str, path: &str, body: &str) -> Resp {
        let sig = self.signature(method, path, body.as_bytes());
        let mut headers = sig.headers();
        headers.push(("content-type", "application/json"));
        self.send(method, path, &headers, body.as_bytes())
    }

    /// `body` sent to `path` with a signature that is right but for what
    /// `forgery` changes.
    pub fn send_forged(&self, method: &str, path: &str, body: &[u8], forgery: Forgery) -> Resp {
        let challenge = match forgery.challenge {
            Some(c) => c.to_string(),
            None => self.challenge(),
        };
        let timestamp = forgery.timestamp.map_or_else(|| now().to_string(), String::from);
        let signature = sign(
            forgery.secret.unwrap_or(&self.secret),
            method,
            forgery.signed_path.unwrap_or(path),
            &timestamp,
            &challenge,
            forgery.signed_body.unwrap_or(body),
        );
        let sig = Signature {
            timestamp,
            challenge,
            signature,
        };
        self.send(method, path, &sig.headers(), body)
    }

    /// `POST /v1/upgrades?wait=true`: the report.
    pub fn upgrade_wait(&self, body: &str) -> Value {
        let r = self.signed("POST", "/v1/upgrades?wait=true", body);
        r.expect(200);
        r.json()
    }

    /// Wait until the upgrade is in one of `states`; its
    /// `GET /v1/upgrades/{id}` answer.
    pub fn wait_state(&self, id: &str, states: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let r = self.get(&format!("/v1/upgrades/{id}"));
            if r.status == 200 {
                let v = r.json();
                if states.iter().any(|s| v["upgrade"]["state"] == *s) {
                    return v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "upgrade {id} never became {}: {}",
                states.join(" or "),
                r.body
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the upgrade has ended; its `GET /v1/upgrades/{id}` answer.
    pub fn wait_ended(&self, id: &str) -> Value {
        self.wait_state(id, &["promoted", "rolled_back", "failed", "cancelled"])
    }
}

/// JSON edits replacing VERSION (the agent answers `hello from VERSION`).
pub fn version_edits(version: &str) -> String {
    format!(r#"[{{"op":"replace","path":"VERSION","content":"{version}\n"}}]"#)
}

/// A JSON upgrade request body with these edits.
pub fn edits_request(edits: &str, extra: &str) -> String {
    let edits = serde_json::to_string(edits).unwrap();
    if extra.is_empty() {
        format!(r#"{{"edits":{edits}}}"#)
    } else {
        format!(r#"{{"edits":{edits},{extra}}}"#)
    }
}

/// One request a webhook receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The request path (webhooks may share a receiver).
    pub path: String,
    pub event: String,
    pub delivery: i64,
    pub body: Value,
}

/// A local HTTP receiver for webhooks that records what it gets, in order,
/// and can be taken down and brought back on the same port.
pub struct Receiver {
    pub port: u16,
    pub got: Arc<Mutex<Vec<Delivery>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let port = super::agent::free_port();
        Receiver::start_on(port, Arc::new(Mutex::new(Vec::new())))
    }

    fn start_on(port: u16, got: Arc<Mutex<Vec<Delivery>>>) -> Receiver {
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => break l,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (got2, stop2) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        serve_one(s, &got2);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Receiver {
            port,
            got,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What arrived at `path`, in order.
    pub fn at(&self, path: &str) -> Vec<Delivery> {
        self.deliveries().into_iter().filter(|d| d.path == path).collect()
    }

    /// Wait until `n` notifications arrived at `path`.
    pub fn wait_at(&self, path: &str, n: usize, secs: u64) -> Vec<Delivery> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let d = self.at(path);
            if d.len() >= n {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "{path} got {} of {n} notifications: {:?}",
                d.len(),
                d.iter().map(|d| &d.event).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop listening: the port refuses connections.
    pub fn down(mut self) -> (u16, Arc<Mutex<Vec<Delivery>>>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (self.port, self.got.clone())
    }

    /// Listen again on the same port, keeping what was received.
    pub fn up(port: u16, got: Arc<Mutex<Vec<Delivery>>>) -> Receiver {
        Receiver::start_on(port, got)
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(s: TcpStream, got: &Arc<Mutex<Vec<Delivery>>>) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut len = 0usize;
    let (mut event, mut delivery) = (String::new(), 0i64);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "x-graft-event" => event = v.trim().to_string(),
                "x-graft-delivery" => delivery = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    got.lock().unwrap().push(Delivery {
        path,
        event,
        delivery,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let mut s = s;
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
}

/// The Python of the tools venv scripts/test.sh makes (mcp, schemathesis,
/// prometheus_client), checked to have `module`.
pub fn tool_python(module: &str) -> PathBuf {
    let python = std::env::var_os("GRAFT_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/venv/bin/python"));
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the Python module `{module}` is missing from {}: run scripts/test.sh, which installs mcp, schemathesis and prometheus_client there (or set GRAFT_TEST_PYTHON to a Python that has them)",
        python.display()
    );
    python
}

/// A test script under tests/python.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}
