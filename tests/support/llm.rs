//! A local LLM API server for the provider tests: a real HTTP/1.1 server
//! on a loopback port that speaks the Anthropic Messages API or OpenAI
//! Chat Completions wire format, answers with scripted replies (texts,
//! error statuses, rate limits, delays) and records every request Graft
//! sent, headers and body, for the tests to check.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Anthropic,
    Openai,
}

/// One request as Graft sent it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The conversation's messages (OpenAI's include the system one).
    pub fn messages(&self) -> Vec<(String, String)> {
        self.body["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| {
                        (
                            m["role"].as_str().unwrap_or("").to_string(),
                            m["content"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What the server answers next.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

pub struct LlmServer {
    pub api: Api,
    port: u16,
    script: Arc<Mutex<VecDeque<Scripted>>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl LlmServer {
    pub fn start(api: Api) -> LlmServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let script: Arc<Mutex<VecDeque<Scripted>>> = Arc::default();
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let (s, r) = (script.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, r) = (s.clone(), r.clone());
                std::thread::spawn(move || serve(stream, &s, &r));
            }
        });
        LlmServer {
            api,
            port,
            script,
            requests,
        }
    }

    /// The base URL to put in graft.toml (`/v1` included for OpenAI).
    pub fn base_url(&self) -> String {
        match self.api {
            Api::Anthropic => format!("http://127.0.0.1:{}", self.port),
            Api::Openai => format!("http://127.0.0.1:{}/v1", self.port),
        }
    }

    pub fn push(&self, s: Scripted) {
        self.script.lock().unwrap().push_back(s);
    }

    /// A successful reply whose text is `text`, in the API's format.
    pub fn reply(&self, text: &str) {
        self.push(Scripted {
            status: 200,
            headers: vec![],
            body: self.success_body(text),
            delay: Duration::ZERO,
        });
    }

    pub fn success_body(&self, text: &str) -> String {
        let out = (text.len() as u64).div_ceil(4);
        match self.api {
            Api::Anthropic => json!({
                "id": "msg_test",
                "type": "message",
                "role": "assistant",
                "model": "scripted",
                "content": [{ "type": "text", "text": text }],
                "stop_reason": "end_turn",
                "stop_sequence": null,
                "usage": { "input_tokens": 1200, "output_tokens": out }
            }),
            Api::Openai => json!({
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": "scripted",
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
                "usage": { "prompt_tokens": 1200, "completion_tokens": out, "total_tokens": 1200 + out }
            }),
        }
        .to_string()
    }

    /// A rate-limit answer with `Retry-After: secs`.
    pub fn rate_limited(&self, secs: u64) {
        let body = match self.api {
            Api::Anthropic => {
                json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}})
            }
            Api::Openai => {
                json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}})
            }
        };
        self.push(Scripted {
            status: 429,
            headers: vec![("retry-after".into(), secs.to_string())],
            body: body.to_string(),
            delay: Duration::ZERO,
        });
    }

    /// A reply that comes only after `delay`.
    pub fn slow_reply(&self, text: &str, delay: Duration) {
        self.push(Scripted {
            status: 200,
            headers: vec![],
            body: self.success_body(text),
            delay,
        });
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, script: &Mutex<VecDeque<Scripted>>, requests: &Mutex<Vec<Recorded>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_lowercase(), v.trim().to_string());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                headers.push((k, v));
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.lock().unwrap().push(Recorded {
            method,
            path,
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            at: Instant::now(),
        });
        let next = script.lock().unwrap().pop_front().unwrap_or(Scripted {
            status: 500,
            headers: vec![],
            body: json!({"type": "error", "error": {"type": "api_error", "message": "the test server has no scripted reply left"}}).to_string(),
            delay: Duration::ZERO,
        });
        std::thread::sleep(next.delay);
        let reason = match next.status {
            200 => "OK",
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            529 => "Overloaded",
            _ => "Status",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            next.status,
            next.body.len()
        );
        for (k, v) in &next.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if stream.write_all(head.as_bytes()).is_err() || stream.write_all(next.body.as_bytes()).is_err() {
            return;
        }
        let _ = stream.flush();
    }
}
