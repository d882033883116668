//! `graft-load`: load a loopback HTTP server until told to stop, then
//! report, splitting latency inside and outside given time windows.
//!
//! ```text
//! graft-load --addr 127.0.0.1:8080 --connections 64 --close \
//!            --stop-file /tmp/stop --windows-file /tmp/windows.json --out report.json
//! ```
//! It runs until `--stop-file` exists, then reads `--windows-file` (a JSON
//! list of `[start_ms, end_ms]` pairs, milliseconds since the Unix epoch)
//! and writes the report. Epoch times let another process mark windows.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use graft_load::{Load, LoadConfig};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    addr: std::net::SocketAddr,
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// A new connection per request (`Connection: close`).
    #[arg(long)]
    close: bool,
    #[arg(long, default_value = "/")]
    path: String,
    #[arg(long)]
    stop_file: PathBuf,
    #[arg(long)]
    windows_file: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

fn main() {
    let args = Args::parse();
    let started_ms = epoch_ms();
    let load = Load::start(LoadConfig {
        addr: args.addr,
        connections: args.connections,
        keep_alive: !args.close,
        path: args.path.clone(),
        timeout: Duration::from_secs(5),
    });
    while !args.stop_file.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = load.stop();
    let windows: Vec<(f64, f64)> = std::fs::read(&args.windows_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let rel = |ms: f64| Duration::from_secs_f64(((ms - started_ms) / 1000.0).max(0.0));
    let windows: Vec<(Duration, Duration)> = windows.into_iter().map(|(a, b)| (rel(a), rel(b))).collect();
    let out = serde_json::json!({
        "duration_ms": report.duration.as_millis() as u64,
        "all": report.all(),
        "inside": report.summary(&windows, true),
        "outside": report.summary(&windows, false),
        "longest_gap_ms": report.longest_gap().as_millis() as u64,
        "versions": report.versions(),
    });
    if let Err(e) = std::fs::write(&args.out, serde_json::to_vec_pretty(&out).unwrap_or_default()) {
        eprintln!("graft-load: cannot write {}: {e}", args.out.display());
        std::process::exit(1);
    }
}
