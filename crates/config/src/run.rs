//! `[run]`, `[health]` and `[watch]`: how `graft run` starts, checks and
//! switches the target's releases.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::values::{DurationValue, GlobList, Name};

/// `[run]`: the target's run command and its releases.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Started with `sh -c` in the release directory. Its last command
    /// should `exec` the program, so the process Graft starts is the
    /// program itself (it receives the sockets and the stop signal).
    pub command: String,
    /// Run in the staging worktree before a release is kept (after the
    /// gates passed); the build output named in `artifacts` is copied into
    /// the release. None: the release is the source tree alone.
    pub build: Option<String>,
    #[serde(default = "build_timeout")]
    pub build_timeout: DurationValue,
    /// Build outputs (paths relative to the repo root, files or dirs)
    /// copied from staging into each release.
    #[serde(default)]
    pub artifacts: Vec<crate::values::DataPath>,
    /// Sockets Graft binds and passes to every release.
    #[serde(default)]
    pub listen: Vec<ListenConfig>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The signal that asks a release to stop (it then drains).
    #[serde(default = "sigterm")]
    pub stop_signal: Signal,
    /// How long a stopping release may drain before SIGKILL to its group.
    #[serde(default = "drain_timeout")]
    pub drain_timeout: DurationValue,
    /// Sent to the live release before the next one starts, so it can
    /// save its state; it answers `PREPARED=1` on `NOTIFY_SOCKET`.
    pub prepare_signal: Option<Signal>,
    /// POSTed on the live release's health socket before the next one
    /// starts; a 2xx answer means its state is saved.
    pub prepare_path: Option<String>,
    #[serde(default = "prepare_timeout")]
    pub prepare_timeout: DurationValue,
    /// A live release that does not confirm it saved its state (no
    /// `PREPARED=1`, a non-2xx answer or none within `prepare_timeout`)
    /// holds the deploy: the new release is not started. False: the
    /// failure is recorded and the deploy goes on.
    #[serde(default)]
    pub prepare_required: bool,
    /// First wait before restarting a crashed release; doubles each time.
    #[serde(default = "restart_backoff")]
    pub restart_backoff: DurationValue,
    /// This many crashes within `crash_window` is a crash loop.
    #[serde(default = "crash_loop")]
    pub crash_loop: u32,
    #[serde(default = "crash_window")]
    pub crash_window: DurationValue,
    /// How many releases to keep (the live one and the last known good one
    /// are always kept).
    #[serde(default = "keep_releases")]
    pub keep_releases: usize,
    /// Rotate a release's log file past this size.
    #[serde(default = "log_max_bytes")]
    pub log_max_bytes: u64,
    /// Rotated log files kept per release.
    #[serde(default = "log_keep")]
    pub log_keep: usize,
    /// Where the agent API (heartbeat, task, history) listens; port 0
    /// picks a free one. Always loopback.
    #[serde(default = "agent_listen")]
    pub agent_listen: String,
}

/// One socket passed to every release, as `LISTEN_FDS` fd 3, 4, ...
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Its name in `LISTEN_FDNAMES`.
    pub name: Name,
    /// `127.0.0.1:8080`, `[::1]:8080`, or `unix:/path/to.sock`.
    pub address: ListenAddress,
}

/// A TCP or Unix listening address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ListenAddress {
    Tcp(std::net::SocketAddr),
    Unix(std::path::PathBuf),
}

impl TryFrom<String> for ListenAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("`unix:` needs a path, e.g. \"unix:/run/agent.sock\"".into());
            }
            return Ok(ListenAddress::Unix(path.into()));
        }
        s.parse().map(ListenAddress::Tcp).map_err(|_| {
            format!("`{s}` is not a listen address: write \"127.0.0.1:8080\", \"[::1]:8080\" or \"unix:/path/to.sock\"")
        })
    }
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddress::Tcp(a) => write!(f, "{a}"),
            ListenAddress::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A signal by name (`SIGTERM`, `TERM`, `SIGINT`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Signal(pub i32);

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("KILL", 9),
    ("USR1", 10),
    ("USR2", 12),
    ("TERM", 15),
    ("WINCH", 28),
];

impl TryFrom<String> for Signal {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let name = s.trim().trim_start_matches("SIG");
        SIGNALS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| Signal(*v))
            .ok_or_else(|| {
                let names: Vec<String> = SIGNALS.iter().map(|(n, _)| format!("SIG{n}")).collect();
                format!(
                    "`{s}` is not a signal Graft sends; use one of {}",
                    names.join(", ")
                )
            })
    }
}

impl Signal {
    pub fn name(self) -> String {
        SIGNALS
            .iter()
            .find(|(_, v)| *v == self.0)
            .map_or(format!("signal {}", self.0), |(n, _)| format!("SIG{n}"))
    }
}

/// `[health]`: how a release proves it is ready and stays healthy, on
/// its own channel (the shared port cannot tell releases apart).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// What makes a new release ready: `notify` (it sends `READY=1` on
    /// `NOTIFY_SOCKET`), `http` (a 2xx from `http_path` on its private
    /// `health` socket), `tcp` (the release accepted a connection on that
    /// socket), `command`, or `none` (ready when started).
    pub ready: ReadyCheck,
    /// The path of the HTTP check on the release's `health` socket.
    pub http_path: String,
    /// Plain mode only (no `[[run.listen]]`): the address the program
    /// listens on itself, where `http` and `tcp` checks go instead of its
    /// private health socket.
    pub address: Option<CheckAddress>,
    /// Run with `sh -c` in the release directory; `GRAFT_HEALTH_ADDR` is
    /// set. Exit 0 means healthy.
    pub command: Option<String>,
    pub interval: DurationValue,
    pub timeout: DurationValue,
    /// Consecutive passing checks that make a release ready.
    pub successes: u32,
    /// Consecutive failing checks that make a live release unhealthy.
    pub failures: u32,
    /// A new release not ready by then is killed; the old one stays.
    pub start_timeout: DurationValue,
    /// Expect `WATCHDOG=1` on `NOTIFY_SOCKET` at least this often
    /// (`WATCHDOG_USEC` is set); a miss counts as unhealthy.
    pub watchdog: Option<DurationValue>,
    /// Expect `POST /agent/heartbeat` on the agent API at least this
    /// often; a miss counts as unhealthy.
    pub heartbeat: Option<DurationValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadyCheck {
    Notify,
    Http,
    Tcp,
    Command,
    None,
}

impl ReadyCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadyCheck::Notify => "notify",
            ReadyCheck::Http => "http",
            ReadyCheck::Tcp => "tcp",
            ReadyCheck::Command => "command",
            ReadyCheck::None => "none",
        }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            ready: ReadyCheck::Notify,
            http_path: "/health".into(),
            address: None,
            command: None,
            interval: DurationValue(std::time::Duration::from_millis(500)),
            timeout: DurationValue::secs(2),
            successes: 1,
            failures: 3,
            start_timeout: DurationValue::secs(30),
            watchdog: None,
            heartbeat: None,
        }
    }
}

/// A TCP address a health check connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct CheckAddress(pub std::net::SocketAddr);

impl TryFrom<String> for CheckAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
            .map(CheckAddress)
            .map_err(|_| format!("`{s}` is not an address like \"127.0.0.1:8000\" or \"[::1]:8000\""))
    }
}

/// `[watch]`: the window after a switch in which any failure rolls back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    pub window: DurationValue,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            window: DurationValue::secs(30),
        }
    }
}

impl RunConfig {
    /// Paths whose change needs no restart (from `[target] no_restart`).
    pub fn no_restart<'a>(&self, target: &'a crate::TargetConfig) -> &'a GlobList {
        &target.no_restart
    }
}

fn build_timeout() -> DurationValue {
    DurationValue::secs(900)
}
fn sigterm() -> Signal {
    Signal(15)
}
fn drain_timeout() -> DurationValue {
    DurationValue::secs(10)
}
fn prepare_timeout() -> DurationValue {
    DurationValue::secs(5)
}
fn restart_backoff() -> DurationValue {
    DurationValue::secs(1)
}
fn crash_loop() -> u32 {
    5
}
fn crash_window() -> DurationValue {
    DurationValue::secs(60)
}
fn keep_releases() -> usize {
    5
}
fn log_max_bytes() -> u64 {
    10 * 1024 * 1024
}
fn log_keep() -> usize {
    3
}
fn agent_listen() -> String {
    "127.0.0.1:0".into()
}
