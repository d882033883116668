//! Supervised targets: the example agent in a temp repo, run by a real
//! `graft run` on a real loopback port.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Target;

const AGENT_MAIN: &str = include_str!("../../examples/agent/src/main.rs");
pub const AGENT_CARGO: &str = include_str!("../../examples/agent/Cargo.toml");

/// The example agent, built once per test process (cargo makes the builds
/// of other processes a no-op; a failed build is retried by the next
/// caller, not remembered). Targets copy it in with their `[run] build`
/// command, so each release still gets its own artifact without a compile
/// per test.
pub fn agent_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("agent-build");
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "agent", "--target-dir"])
                .arg(&target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo to build the example agent");
            assert!(status.success(), "building examples/agent failed");
            target_dir.join("debug").join("agent")
        })
        .clone()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// JSON edits setting VERSION, and the behavior file (None: left as it is).
pub fn release(version: &str, behavior: Option<&str>) -> String {
    let mut edits =
        vec![serde_json::json!({"op": "replace", "path": "VERSION", "content": format!("{version}\n")})];
    if let Some(b) = behavior {
        edits.push(serde_json::json!({"op": "create", "path": "behavior", "content": format!("{b}\n")}));
    }
    serde_json::Value::Array(edits).to_string()
}

/// JSON edits setting VERSION and deleting the behavior file v1 had.
pub fn plain_release(version: &str) -> String {
    format!(
        r#"[{{"op":"replace","path":"VERSION","content":"{version}\n"}},{{"op":"delete","path":"behavior"}}]"#
    )
}

/// graft.toml for an agent target on `port`.
pub fn agent_config(port: u16) -> String {
    format!(
        r#"[target]
branch = "main"
data = ["data/notes.txt"]
no_restart = ["docs/**"]

[[gates]]
name = "check"
kind = "test"
command = "test -s VERSION"

[run]
command = "bin/agent"
build = "mkdir -p bin && cp \"$GRAFT_TEST_AGENT_BIN\" bin/agent"
artifacts = ["bin/agent"]
drain_timeout = "3s"
prepare_signal = "SIGUSR1"
prepare_timeout = "2s"
restart_backoff = "200ms"

[[run.listen]]
name = "http"
address = "127.0.0.1:{port}"

[health]
ready = "notify"
interval = "100ms"
start_timeout = "10s"

[watch]
window = "1s"
"#
    )
}

impl Target {
    /// The example agent's source, VERSION v1, and `config` as graft.toml.
    pub fn agent_with(config: &str) -> Target {
        let t = Target::with_files(&[
            ("Cargo.toml", AGENT_CARGO),
            ("src/main.rs", AGENT_MAIN),
            ("VERSION", "v1\n"),
            (".gitignore", "/target\n/bin\n/data\n"),
            ("docs/README.md", "# agent\n"),
            ("graft.toml", config),
        ]);
        t.write("data/notes.txt", "notes before\n");
        t
    }

    /// The agent target on a free port.
    pub fn agent() -> (Target, u16) {
        let port = free_port();
        (Target::agent_with(&agent_config(port)), port)
    }

    /// Start `graft run` and wait until it serves.
    pub fn run_daemon(&self) -> Daemon {
        self.run_daemon_env(&[])
    }

    pub fn run_daemon_env(&self, env: &[(&str, &str)]) -> Daemon {
        let log = self._dir_path().join(format!("graft-run-{}.log", rand_suffix()));
        let stderr = std::fs::File::create(&log).unwrap();
        let bin = agent_bin();
        let mut cmd = self.graft_command(&["run", "--json"], env);
        cmd.env("GRAFT_TEST_AGENT_BIN", &bin)
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd.spawn().expect("start graft run");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let read = out.read_line(&mut line);
        if read.is_err() || line.trim().is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "graft run did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let info: Value = match serde_json::from_str::<Value>(&line) {
            Ok(v) if v.get("live_commit").is_some() => v,
            _ => {
                let mut rest = String::new();
                let _ = out.read_to_string(&mut rest);
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "graft run did not start:\n{line}{rest}\n--- stderr\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        // The rest of stdout: one JSON object per reported event, read as
        // it comes (a pipe nobody reads would fill and stall graft run).
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        Daemon {
            child,
            info,
            log,
            root: self.root.clone(),
            lines,
        }
    }

    fn _dir_path(&self) -> &Path {
        self.root.parent().unwrap()
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// A running `graft run`. Dropping it kills it and anything it started.
pub struct Daemon {
    child: Child,
    pub info: Value,
    pub log: PathBuf,
    root: PathBuf,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The pid of the live release process, as `graft run` reported at start.
    pub fn first_release_pid(&self) -> i32 {
        self.info["instance_pid"].as_i64().unwrap() as i32
    }

    /// The events graft run reported on stdout after its start line.
    pub fn events(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// What graft run wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            assert!(
                Instant::now() < deadline,
                "graft run did not stop on SIGTERM:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until graft run ends by itself (a fault point killed it, say);
    /// how it ended.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "graft run did not end within {secs} s:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The live release as the daemon sees it.
    pub fn status(&self) -> Value {
        let out = std::process::Command::new(super::GRAFT)
            .args(["status", "--json"])
            .current_dir(&self.root)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_leftovers(&self.root);
    }
}

/// Kill release processes the ledger says are running (a test that
/// failed half-way must not leave programs behind).
pub fn kill_leftovers(root: &Path) {
    let Ok(conn) = rusqlite::Connection::open(root.join(".graft/ledger.db")) else {
        return;
    };
    let Ok(mut stmt) = conn.prepare("SELECT pid FROM instances WHERE stopped_at IS NULL AND pid IS NOT NULL")
    else {
        return;
    };
    let pids: Vec<i64> = stmt
        .query_map([], |r| r.get(0))
        .map(|r| r.flatten().collect())
        .unwrap_or_default();
    for pid in pids {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// GET `path` on 127.0.0.1:`port` (a new connection): status and body.
pub fn get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The body of `GET /` (panics on failure).
pub fn hello(port: u16) -> String {
    get(port, "/")
        .unwrap_or_else(|e| panic!("GET / on {port}: {e}"))
        .1
}

/// Wait until `f` holds, or panic with `what` after `secs`.
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Steady keep-alive load on `port`.
pub fn load(port: u16, connections: usize, keep_alive: bool) -> graft_load::Load {
    graft_load::Load::start(graft_load::LoadConfig {
        addr: ([127, 0, 0, 1], port).into(),
        connections,
        keep_alive,
        path: "/".into(),
        timeout: Duration::from_secs(10),
    })
}

/// The pid of the process listening... as the agent reports in /info.
pub fn agent_pid(port: u16) -> i32 {
    let body = get(port, "/info").unwrap().1;
    body.split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {body}"))
}

/// Whether a process is alive (not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.split_whitespace().next() != Some("Z"))
        })
        .unwrap_or(false)
}
