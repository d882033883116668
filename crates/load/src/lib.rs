//! Steady HTTP load on loopback, with every request's outcome kept.
//!
//! A closed loop: each of N connections sends a request, reads the
//! answer, and sends the next. With keep-alive a connection is reused
//! until the server answers `Connection: close` (then reconnects); without,
//! every request opens a new connection (the hard case for a switch: a
//! server that closes its listener too early refuses or resets clients).
//!
//! Every request is recorded with its start time, latency, outcome and
//! the `X-Agent-Version` of the answer, so a report can count failures and
//! split latency into inside and outside given time windows (the switches).
//! Used by `graft demo`, the integration tests and `bench/zero_downtime`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub addr: SocketAddr,
    pub connections: usize,
    pub keep_alive: bool,
    pub path: String,
    /// A request with no answer by then counts as failed.
    pub timeout: Duration,
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// Connection refused.
    Refused,
    /// Reset or closed before a full answer.
    Reset,
    Timeout,
    /// An answer, but not 2xx.
    Status(u16),
}

#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was sent, from the start of the load.
    pub at: Duration,
    pub latency: Duration,
    pub outcome: Outcome,
    /// `X-Agent-Version` of the answer, if any.
    pub version: Option<String>,
}

/// A running load; `stop` ends it and returns every sample.
pub struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Sample>>>,
}

impl Load {
    pub fn start(cfg: LoadConfig) -> Load {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..cfg.connections)
            .map(|_| {
                let (cfg, stop) = (cfg.clone(), stop.clone());
                std::thread::spawn(move || worker(&cfg, started, &stop))
            })
            .collect();
        Load {
            started,
            stop,
            threads,
        }
    }

    /// Time since the load started (to mark windows).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        let mut samples: Vec<Sample> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_default())
            .collect();
        samples.sort_by_key(|s| s.at);
        Report {
            samples,
            duration: self.started.elapsed(),
        }
    }
}

fn worker(cfg: &LoadConfig, started: Instant, stop: &AtomicBool) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut conn: Option<(BufReader<TcpStream>, TcpStream)> = None;
    while !stop.load(Ordering::Relaxed) {
        let at = started.elapsed();
        let t0 = Instant::now();
        let (outcome, version, keep) = request(cfg, &mut conn);
        out.push(Sample {
            at,
            latency: t0.elapsed(),
            outcome,
            version,
        });
        if !keep {
            conn = None;
        }
        if outcome == Outcome::Refused {
            // Do not spin on a closed port.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    out
}

/// One request. Returns its outcome, version, and whether the connection
/// may be reused.
fn request(
    cfg: &LoadConfig,
    conn: &mut Option<(BufReader<TcpStream>, TcpStream)>,
) -> (Outcome, Option<String>, bool) {
    if conn.is_none() {
        match TcpStream::connect_timeout(&cfg.addr, cfg.timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                let _ = s.set_read_timeout(Some(cfg.timeout));
                let _ = s.set_write_timeout(Some(cfg.timeout));
                match s.try_clone() {
                    Ok(r) => *conn = Some((BufReader::new(r), s)),
                    Err(_) => return (Outcome::Reset, None, false),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return (Outcome::Refused, None, false);
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return (Outcome::Timeout, None, false),
            Err(_) => return (Outcome::Reset, None, false),
        }
    }
    let (reader, writer) = conn.as_mut().expect("connected above");
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: {}\r\n\r\n",
        cfg.path,
        cfg.addr,
        if cfg.keep_alive { "keep-alive" } else { "close" }
    );
    if writer.write_all(req.as_bytes()).is_err() {
        return (Outcome::Reset, None, false);
    }
    let fail = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Outcome::Timeout,
        _ => Outcome::Reset,
    };
    let mut status_line = String::new();
    match reader.read_line(&mut status_line) {
        Ok(0) => return (Outcome::Reset, None, false),
        Ok(_) => {}
        Err(e) => return (fail(e), None, false),
    }
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut length, mut version, mut close) = (0usize, None, !cfg.keep_alive);
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) => return (Outcome::Reset, None, false),
            Ok(_) => {}
            Err(e) => return (fail(e), None, false),
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "content-length" => length = v.parse().unwrap_or(0),
                "x-agent-version" => version = Some(v.to_string()),
                "connection" => close |= v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    if let Err(e) = reader.read_exact(&mut body) {
        return (fail(e), None, false);
    }
    let outcome = if (200..300).contains(&status) {
        Outcome::Ok
    } else {
        Outcome::Status(status)
    };
    (outcome, version, !close)
}

/// Every request of a load.
pub struct Report {
    pub samples: Vec<Sample>,
    pub duration: Duration,
}

/// Counts and latency percentiles of some requests.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub requests: usize,
    pub failed: usize,
    pub refused: usize,
    pub reset: usize,
    pub timeout: usize,
    pub non_2xx: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.samples.iter().filter(|s| s.outcome != Outcome::Ok).count()
    }

    /// Summary of the requests sent inside (`inside = true`) or outside
    /// the given windows.
    pub fn summary(&self, windows: &[(Duration, Duration)], inside: bool) -> Summary {
        let picked: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                let within = windows.iter().any(|(a, b)| s.at >= *a && s.at <= *b);
                within == inside
            })
            .collect();
        summarize(&picked)
    }

    pub fn all(&self) -> Summary {
        summarize(&self.samples.iter().collect::<Vec<_>>())
    }

    /// Versions answered, in the order first seen, with counts.
    pub fn versions(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for s in &self.samples {
            if let Some(v) = &s.version {
                match out.iter_mut().find(|(x, _)| x == v) {
                    Some((_, n)) => *n += 1,
                    None => out.push((v.clone(), 1)),
                }
            }
        }
        out
    }

    /// The longest stretch with no successful answer started, from the
    /// first success (what a client would call downtime).
    pub fn longest_gap(&self) -> Duration {
        let oks: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| s.outcome == Outcome::Ok)
            .map(|s| s.at + s.latency)
            .collect();
        let mut sorted = oks;
        sorted.sort();
        sorted.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
    }
}

fn summarize(samples: &[&Sample]) -> Summary {
    let mut lat: Vec<f64> = samples
        .iter()
        .filter(|s| s.outcome == Outcome::Ok)
        .map(|s| s.latency.as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() as f64 - 1.0) * p).round() as usize]
        }
    };
    let count = |f: &dyn Fn(Outcome) -> bool| samples.iter().filter(|s| f(s.outcome)).count();
    Summary {
        requests: samples.len(),
        failed: count(&|o| o != Outcome::Ok),
        refused: count(&|o| o == Outcome::Refused),
        reset: count(&|o| o == Outcome::Reset),
        timeout: count(&|o| o == Outcome::Timeout),
        non_2xx: count(&|o| matches!(o, Outcome::Status(_))),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny server: answers `n` requests per connection, then closes.
    fn server(answers_per_conn: usize) -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut w = s;
                    for i in 0..answers_per_conn {
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let close = if i + 1 == answers_per_conn {
                            "close"
                        } else {
                            "keep-alive"
                        };
                        let _ = write!(
                            w,
                            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Agent-Version: t\r\nConnection: {close}\r\n\r\nok"
                        );
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn counts_answers_and_reconnects_on_close() {
        let addr = server(3);
        let load = Load::start(LoadConfig {
            addr,
            connections: 2,
            keep_alive: true,
            path: "/".into(),
            timeout: Duration::from_secs(2),
        });
        std::thread::sleep(Duration::from_millis(200));
        let r = load.stop();
        assert!(r.all().requests > 10, "{:?}", r.all());
        assert_eq!(r.failed(), 0);
        assert_eq!(r.versions()[0].0, "t");
    }

    #[test]
    fn a_closed_port_counts_as_refused() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let load = Load::start(LoadConfig {
            addr,
            connections: 1,
            keep_alive: false,
            path: "/".into(),
            timeout: Duration::from_secs(1),
        });
        std::thread::sleep(Duration::from_millis(50));
        let r = load.stop();
        let s = r.all();
        assert!(s.refused > 0 && s.refused == s.failed, "{s:?}");
    }

    #[test]
    fn windows_split_the_samples() {
        let mk = |ms: u64, lat: u64| Sample {
            at: Duration::from_millis(ms),
            latency: Duration::from_millis(lat),
            outcome: Outcome::Ok,
            version: None,
        };
        let r = Report {
            samples: vec![mk(0, 1), mk(10, 50), mk(20, 1)],
            duration: Duration::from_millis(30),
        };
        let w = [(Duration::from_millis(5), Duration::from_millis(15))];
        assert_eq!(r.summary(&w, true).max_ms, 50.0);
        assert_eq!(r.summary(&w, false).requests, 2);
        assert_eq!(r.longest_gap(), Duration::from_millis(39));
    }
}
