//! The CLI's side of the control socket: find a running `graft run` for a
//! repo and ask it to do things, following its streamed answer.
//!
//! Blocking on purpose (the CLI is synchronous): each call runs a small
//! single-threaded runtime for the length of one request.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::wire::{ErrorLine, Line};

/// The control socket of the daemon for a repo root.
pub fn socket_path(root: &Path) -> PathBuf {
    root.join(".graft").join("daemon.sock")
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach graft run at {0}: {1}")]
    Connect(PathBuf, String),
    #[error("graft run answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the answer of graft run was cut short: {0}")]
    Protocol(String),
}

pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the daemon of `root`, if one is running (a socket file
    /// nobody listens on is left by a daemon that died: not running).
    pub fn find(root: &Path) -> Option<Client> {
        let socket = socket_path(root);
        std::os::unix::net::UnixStream::connect(&socket).ok()?;
        Some(Client { socket })
    }

    fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Send one request; stream the body's JSON lines to `on_line`.
    pub fn stream(
        &self,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
        on_line: &mut dyn FnMut(Line),
    ) -> Result<(), ClientError> {
        let rt = Self::runtime()?;
        rt.block_on(async {
            let mut resp = self.send(method, path_and_query, body).await?;
            let status = resp.status();
            if !status.is_success() {
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                return Err(ClientError::Status {
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
            }
            let mut buf: Vec<u8> = Vec::new();
            while let Some(frame) = resp.body_mut().frame().await {
                let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
                if let Some(data) = frame.data_ref() {
                    buf.extend_from_slice(data);
                    while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        match serde_json::from_slice::<Line>(&line) {
                            Ok(l) => on_line(l),
                            Err(e) => return Err(ClientError::Protocol(format!("bad line ({e})"))),
                        }
                    }
                }
            }
            Ok(())
        })
    }

    /// Follow a streamed operation to its end: each event to `on_event`,
    /// then its final report (an upgrade's or a rollback's), decoded, or
    /// the error it ended with.
    pub fn outcome<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
        on_event: &mut dyn FnMut(&graft_pipeline::Event),
    ) -> Result<Result<T, ErrorLine>, ClientError> {
        let mut last: Option<Result<serde_json::Value, ErrorLine>> = None;
        self.stream(method, path_and_query, body, &mut |line| match line {
            Line::Event(e) => on_event(&e),
            Line::Report(v) | Line::Rollback(v) => last = Some(Ok(v)),
            Line::Error(e) => last = Some(Err(e)),
        })?;
        match last {
            Some(Ok(v)) => serde_json::from_value(v)
                .map(Ok)
                .map_err(|e| ClientError::Protocol(format!("a report graft run sent does not read: {e}"))),
            Some(Err(e)) => Ok(Err(e)),
            None => Err(ClientError::Protocol(
                "graft run ended the answer without a report".into(),
            )),
        }
    }

    /// Send one request and return the JSON body.
    pub fn json(&self, method: &str, path_and_query: &str) -> Result<serde_json::Value, ClientError> {
        let rt = Self::runtime()?;
        rt.block_on(async {
            let resp = self.send(method, path_and_query, Vec::new()).await?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?
                .to_bytes();
            let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                ClientError::Protocol(format!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
            })?;
            if status.is_success() || value.get("error").is_some() {
                Ok(value)
            } else {
                Err(ClientError::Status {
                    status: status.as_u16(),
                    body: value.to_string(),
                })
            }
        })
    }

    async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| ClientError::Connect(self.socket.clone(), e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Connect(self.socket.clone(), e.to_string()))?;
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("host", "graft")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Connect(self.socket.clone(), e.to_string()))
    }
}
