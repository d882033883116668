//! `graft demo`: Graft's main job, start to finish, on a built-in target.
//!
//! The example agent (`examples/agent`) is written to a temporary git
//! repo and supervised by a real `graft run` on a loopback port, under
//! steady HTTP load. Then:
//! 1. a good upgrade: responses change from v1 to v2;
//! 2. a release that never becomes ready: killed, v2 keeps serving, the
//!    commit is reverted;
//! 3. a release that turns unhealthy inside its watch window: Graft
//!    switches straight back to v2, reverts the commit;
//!
//! and it prints the requests served, the requests failed (0) and the
//! ledger's summary. Needs cargo (the agent is built from source) and git.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use console::style;
use graft_ledger::{Ledger, UpgradeState};
use graft_pipeline::{Observer as _, UpgradeReport};
use graft_supervisor::client::Client;
use graft_supervisor::wire::UpgradeQuery;
use serde_json::json;

use super::Ctx;
use crate::output::{CliError, EXIT_INTERNAL, EXIT_OK, EXIT_PRECONDITION, Progress, print_json};

const AGENT_MAIN: &str = include_str!("../../examples/agent/src/main.rs");
const AGENT_CARGO: &str = include_str!("../../examples/agent/Cargo.toml");

fn config(port: u16) -> String {
    format!(
        r#"# The demo target: the example agent, supervised on 127.0.0.1:{port}.
[target]
name = "demo-agent"
branch = "main"

[[gates]]
name = "build"
kind = "build"
command = "cargo build --quiet"
timeout = "10m"

[run]
command = "target/debug/agent"
build = "cargo build --quiet"
artifacts = ["target/debug/agent"]
prepare_signal = "SIGUSR1"
drain_timeout = "5s"

[[run.listen]]
name = "http"
address = "127.0.0.1:{port}"

[health]
ready = "http"
interval = "100ms"
failures = 2
start_timeout = "4s"

[watch]
window = "2s"
"#
    )
}

/// One step of the demo: what it sends, and what must come of it.
struct Step {
    say: &'static str,
    version: &'static str,
    behavior: &'static str,
    expect: UpgradeState,
}

const STEPS: [Step; 3] = [
    Step {
        say: "1. a good upgrade: v1 → v2, with no request lost",
        version: "v2",
        behavior: "start_delay_ms=300",
        expect: UpgradeState::Promoted,
    },
    Step {
        say: "2. a release that never becomes ready: killed, v2 keeps serving",
        version: "v3",
        behavior: "start_delay_ms=300\nready=never",
        expect: UpgradeState::RolledBack,
    },
    Step {
        say: "3. a release that turns unhealthy in its watch window: Graft switches back to v2",
        version: "v4",
        behavior: "start_delay_ms=300\nunhealthy_after_ms=700",
        expect: UpgradeState::RolledBack,
    },
];

pub fn run(ctx: &Ctx, keep: bool) -> Result<i32, CliError> {
    let fail = |what: String| CliError::new(EXIT_INTERNAL, "demo_failed", what);
    if Command::new("cargo").arg("--version").output().is_err() {
        return Err(CliError::new(
            EXIT_PRECONDITION,
            "no_cargo",
            "the demo builds its example agent with cargo, which is not on PATH: install Rust from https://rustup.rs",
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("graft-demo-")
        .tempdir()
        .map_err(|e| fail(format!("cannot create a temp dir: {e}")))?;
    let root = dir.path().join("agent");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| fail(format!("no free port: {e}")))?
        .port();
    say(
        ctx,
        &format!("the example agent, as a git repo in {}", root.display()),
    );
    make_target(&root, port).map_err(fail)?;

    say(
        ctx,
        "starting `graft run` (it builds the agent first: a few seconds)",
    );
    let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
    let mut daemon = Command::new(exe)
        .args(["run", "--json"])
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("cannot start graft run: {e}")))?;
    let mut first = String::new();
    let read = std::io::BufReader::new(daemon.stdout.take().expect("piped")).read_line(&mut first);
    let started: serde_json::Value = serde_json::from_str(&first).unwrap_or_default();
    if read.is_err() || started.get("live_commit").is_none() {
        let _ = daemon.kill();
        return Err(fail(format!("graft run did not start: {first}")));
    }
    let guard = StopOnDrop(daemon);
    say(
        ctx,
        &format!("serving v1 on 127.0.0.1:{port}; steady load from 4 connections"),
    );

    let load = graft_load::Load::start(graft_load::LoadConfig {
        addr: ([127, 0, 0, 1], port).into(),
        connections: 4,
        keep_alive: true,
        path: "/".into(),
        timeout: Duration::from_secs(10),
    });
    std::thread::sleep(Duration::from_millis(500));
    let client = Client::find(&root).ok_or_else(|| fail("graft run has no control socket".into()))?;
    let mut reports = Vec::new();
    for step in &STEPS {
        say(ctx, &format!("\n{}", step.say));
        let started = Instant::now();
        let report = upgrade(ctx, &client, step).map_err(fail)?;
        if report.state != step.expect {
            return Err(fail(format!(
                "{} ended {} ({}), not {}",
                report.id,
                report.state,
                report.failure.as_ref().map(|f| f.message.as_str()).unwrap_or(""),
                step.expect
            )));
        }
        reports.push((step, report, started.elapsed()));
        std::thread::sleep(Duration::from_millis(300));
    }
    let result = load.stop();
    drop(guard);

    let ledger = Ledger::open(&root.join(".graft/ledger.db")).map_err(|e| fail(e.to_string()))?;
    let stats = ledger.stats(10).map_err(|e| fail(e.to_string()))?;
    let all = result.all();
    if ctx.json {
        print_json(&json!({
            "repo": root,
            "requests": all.requests,
            "failed": all.failed,
            "versions": result.versions(),
            "longest_gap_ms": result.longest_gap().as_millis() as u64,
            "upgrades": reports.iter().map(|(_, r, _)| r).collect::<Vec<_>>(),
            "ledger": stats,
        }));
    } else {
        println!("\n{}", style("what happened").bold());
        for (step, r, took) in &reports {
            let why = r.failure.as_ref().map(|f| f.reason.as_str()).unwrap_or("");
            println!(
                "  {:<3} {:<11} {:<28} {:.1} s",
                step.version,
                r.state.to_string(),
                why,
                took.as_secs_f64()
            );
        }
        let versions: Vec<String> = result
            .versions()
            .iter()
            .map(|(v, n)| format!("{v} {n}"))
            .collect();
        println!(
            "\n  requests served {}  ({})\n  requests failed {}  (longest wait for an answer: {} ms)",
            all.requests,
            versions.join(", "),
            style(all.failed).bold(),
            result.longest_gap().as_millis()
        );
        println!(
            "\nledger: {} upgrades, {} promoted, {} rolled back; {} rollback(s) recorded with their cause",
            stats.total,
            stats.by_state.get("promoted").copied().unwrap_or(0),
            stats.by_state.get("rolled_back").copied().unwrap_or(0),
            stats.rollbacks
        );
    }
    if keep {
        let path = dir.keep();
        say(
            ctx,
            &format!(
                "\nthe demo repo is kept in {}: try `graft -C {} ledger`",
                path.display(),
                root.display()
            ),
        );
    }
    if all.failed > 0 {
        return Err(fail(format!("{} request(s) failed during the demo", all.failed)));
    }
    Ok(EXIT_OK)
}

/// Send one upgrade to graft run, showing its progress.
fn upgrade(ctx: &Ctx, client: &Client, step: &Step) -> Result<UpgradeReport, String> {
    let edits = json!([
        { "op": "replace", "path": "VERSION", "content": format!("{}\n", step.version) },
        { "op": "replace", "path": "behavior", "content": format!("{}\n", step.behavior) },
    ]);
    let query = UpgradeQuery {
        kind: "edits".into(),
        name: format!("{}.json", step.version),
        title: Some(format!("Release {}", step.version)),
        dry_run: false,
        approve_protected: false,
        priority: 5,
        requested_by: "demo".into(),
        suggestion: None,
        provider: None,
        source: None,
        queue: false,
    };
    let path = format!(
        "/v1/upgrades?{}",
        serde_urlencoded::to_string(&query).map_err(|e| e.to_string())?
    );
    let progress = Progress::new(ctx.json);
    let outcome = client.outcome::<UpgradeReport>("POST", &path, edits.to_string().into_bytes(), &mut |e| {
        progress.on_event(e)
    });
    progress.finish();
    let report = outcome.map_err(|e| e.to_string())?.map_err(|e| e.message)?;
    if !ctx.json {
        match &report.failure {
            None => println!("  {} {}", style("promoted").green().bold(), report.id),
            Some(f) => println!(
                "  {} {}: {}",
                style("rolled back").yellow().bold(),
                report.id,
                f.message.lines().next().unwrap_or("")
            ),
        }
    }
    Ok(report)
}

/// Stops `graft run` (SIGTERM: its releases drain) however the demo ends.
struct StopOnDrop(std::process::Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn say(ctx: &Ctx, text: &str) {
    if !ctx.json {
        eprintln!("{}", style(text).bold());
    }
}

fn make_target(root: &Path, port: u16) -> Result<(), String> {
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("has a parent")).map_err(|e| e.to_string())?;
        std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    write("Cargo.toml", AGENT_CARGO)?;
    write("src/main.rs", AGENT_MAIN)?;
    write("VERSION", "v1\n")?;
    write("behavior", "start_delay_ms=300\n")?;
    write(".gitignore", "/target\n")?;
    write("graft.toml", &config(port))?;
    let git = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .env("GIT_AUTHOR_NAME", "Demo")
            .env("GIT_AUTHOR_EMAIL", "demo@localhost")
            .env("GIT_COMMITTER_NAME", "Demo")
            .env("GIT_COMMITTER_EMAIL", "demo@localhost")
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    git(&["init", "--quiet", "--initial-branch=main"])?;
    git(&["add", "."])?;
    git(&["commit", "--quiet", "-m", "agent v1"])?;
    Ok(())
}
