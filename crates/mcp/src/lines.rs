//! `graft mcp`'s standard input, with a bound on one message.
//!
//! A message is one line of JSON. rmcp drops a line over its own cap
//! (16 MiB) without a word, and its client then waits for an answer that
//! never comes; below that cap it would hold any line whole. [`Bounded`]
//! stands between stdin and rmcp: a line of at most `cap` bytes passes as
//! it is; a longer one is never held (past the cap it is read and
//! dropped, its top-level `id` and `method` picked out on the way) and
//! is replaced by a short request of the method [`OVERSIZED`] with the
//! same id, which the server answers with the `too_large` refusal, a tool
//! error for a tool call, as every way in refuses a change over
//! `[limits]`. A message without an id (a notification) gets no answer.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, ReadBuf};

/// The method of the request that stands for a message over the cap.
pub const OVERSIZED: &str = "graft/oversized_message";

/// The most bytes of one message `graft mcp` reads, for `limits`: twice
/// the most a change may be read as (JSON text escapes a newline, a tab
/// or a quote in two bytes), and room for the rest of the call.
pub fn cap(max_request_bytes: u64) -> usize {
    usize::try_from(max_request_bytes.saturating_mul(2).saturating_add(64 * 1024)).unwrap_or(usize::MAX)
}

/// A reader passing on lines of at most `cap` bytes, and standing an
/// [`OVERSIZED`] request in for each longer one.
pub struct Bounded<R> {
    inner: R,
    cap: usize,
    /// The line read so far, while within the cap.
    line: Vec<u8>,
    /// The line over the cap being dropped.
    over: Option<Scan>,
    /// What is ready to hand on.
    out: VecDeque<u8>,
    eof: bool,
}

impl<R> Bounded<R> {
    pub fn new(inner: R, cap: usize) -> Bounded<R> {
        Bounded {
            inner,
            cap,
            line: Vec::new(),
            over: None,
            out: VecDeque::new(),
            eof: false,
        }
    }

    fn take(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|b| *b == b'\n');
            let (part, rest) = match newline {
                Some(i) => chunk.split_at(i + 1),
                None => (chunk, &[][..]),
            };
            chunk = rest;
            if let Some(scan) = &mut self.over {
                scan.feed(part);
            } else {
                self.line.extend_from_slice(part);
                if self.line.len() > self.cap {
                    let mut scan = Scan::default();
                    scan.feed(&self.line);
                    self.over = Some(scan);
                    self.line = Vec::new();
                }
            }
            if newline.is_some() {
                self.end_line();
            }
        }
    }

    fn end_line(&mut self) {
        match self.over.take() {
            None => self.out.extend(self.line.drain(..)),
            Some(scan) => {
                if let Some(mut stand_in) = scan.stand_in(self.cap) {
                    stand_in.push(b'\n');
                    self.out.extend(stand_in);
                } else {
                    eprintln!(
                        "graft mcp: a message of {} bytes, over the {} a message may be, was dropped (it had no id to answer)",
                        scan.bytes, self.cap
                    );
                }
            }
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Bounded<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        loop {
            if !me.out.is_empty() {
                let n = me.out.len().min(buf.remaining());
                let (a, b) = me.out.as_slices();
                let from_a = n.min(a.len());
                buf.put_slice(&a[..from_a]);
                buf.put_slice(&b[..n - from_a]);
                me.out.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if me.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 64 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut me.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    // The end: a last line without a newline goes on as it is.
                    me.eof = true;
                    if me.over.is_none() {
                        me.out.extend(me.line.drain(..));
                    }
                }
                Poll::Ready(Ok(())) => me.take(read.filled()),
            }
        }
    }
}

/// The top-level `id` and `method` of a JSON object read a piece at a
/// time, holding no more than a few hundred bytes of it.
#[derive(Default)]
struct Scan {
    bytes: u64,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The last string at the top level (a key, when a `:` follows).
    text: Vec<u8>,
    /// The top-level value being read, when its key is `id` or `method`.
    want: Option<&'static str>,
    value: Vec<u8>,
    id: Option<Vec<u8>>,
    method: Option<Vec<u8>>,
}

/// Longer keys and values are not the ones wanted.
const KEEP: usize = 256;

impl Scan {
    fn feed(&mut self, part: &[u8]) {
        self.bytes += part.len() as u64;
        for &b in part {
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        let top = self.depth == 1;
        if self.in_string {
            if top {
                let into = if self.want.is_some() {
                    &mut self.value
                } else {
                    &mut self.text
                };
                if into.len() < KEEP {
                    into.push(b);
                }
            }
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            return;
        }
        match b {
            b'"' => {
                self.in_string = true;
                if top && self.want.is_some() {
                    self.value.push(b);
                } else if top {
                    self.text = vec![b];
                }
            }
            b'{' | b'[' => {
                if top {
                    self.want = None;
                }
                self.depth += 1;
            }
            b'}' | b']' => {
                if top {
                    self.end_value();
                }
                self.depth = self.depth.saturating_sub(1);
            }
            b',' if top => self.end_value(),
            b':' if top => {
                self.want = match &self.text[..] {
                    b"\"id\"" => Some("id"),
                    b"\"method\"" => Some("method"),
                    _ => None,
                };
                self.value.clear();
            }
            _ if top && self.want.is_some() && !b.is_ascii_whitespace() && self.value.len() < KEEP => {
                self.value.push(b);
            }
            _ => {}
        }
    }

    fn end_value(&mut self) {
        let value = std::mem::take(&mut self.value);
        match self.want.take() {
            Some("id") => self.id = Some(value),
            Some(_) => self.method = Some(value),
            None => {}
        }
    }

    /// The request standing in for the message, if it had an id.
    fn stand_in(&self, cap: usize) -> Option<Vec<u8>> {
        let parse = |raw: &Option<Vec<u8>>| -> Option<Value> { serde_json::from_slice(raw.as_deref()?).ok() };
        let id = parse(&self.id).filter(|id| id.is_number() || id.is_string())?;
        let request = json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": OVERSIZED,
            "params": { "method": parse(&self.method), "bytes": self.bytes, "cap": cap },
        });
        serde_json::to_vec(&request).ok()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;

    use super::*;

    async fn through(input: Vec<u8>, cap: usize) -> Vec<String> {
        let mut out = String::new();
        Bounded::new(&input[..], cap)
            .read_to_string(&mut out)
            .await
            .unwrap();
        out.lines().map(String::from).collect()
    }

    #[tokio::test]
    async fn short_lines_pass_and_a_long_one_is_stood_in_for() {
        let short = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let long = format!(
            r#"{{"method":"tools/call","params":{{"name":"self_improve","arguments":{{"patch":"{}","id":"not this"}}}},"jsonrpc":"2.0","id":"call-7"}}"#,
            "x\\\"".repeat(100_000)
        );
        let input = format!("{short}\n{long}\n{short}\n").into_bytes();
        let lines = through(input, 1000).await;
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], short);
        assert_eq!(lines[2], short);
        let stand_in: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(stand_in["id"], "call-7");
        assert_eq!(stand_in["method"], OVERSIZED);
        assert_eq!(stand_in["params"]["method"], "tools/call");
        assert_eq!(stand_in["params"]["bytes"], long.len() as u64 + 1);
    }

    #[tokio::test]
    async fn a_long_notification_is_dropped_and_the_rest_goes_on() {
        let long = format!(
            r#"{{"jsonrpc":"2.0","method":"notes","params":"{}"}}"#,
            "y".repeat(5000)
        );
        let input = format!("{long}\n{{\"id\":2}}").into_bytes();
        assert_eq!(through(input, 1000).await, [r#"{"id":2}"#]);
    }
}
