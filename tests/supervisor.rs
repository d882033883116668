//! `graft run` with the example agent on real loopback sockets: socket
//! activation, blue/green switches under load, readiness, the watch
//! window and automatic rollback, crashes and crash loops, releases,
//! agent state, and the bad cases (design invariants 3, 4 and 5).

use std::time::{Duration, Instant};

use crate::support::agent::*;
use crate::support::*;

fn upgrade_json(t: &Target, edits: &str) -> (Run, serde_json::Value) {
    let run = t.upgrade_edits(edits, &["--json"]);
    let v = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (run, v)
}

fn tree(t: &Target, rev: &str) -> String {
    t.git(&["rev-parse", &format!("{rev}^{{tree}}")])
}

#[test]
fn serves_through_socket_activation_and_stops_cleanly() {
    let (t, port) = Target::agent();
    let d = t.run_daemon();
    assert_eq!(d.info["sockets"][0], format!("http=127.0.0.1:{port}"));
    let info = get(port, "/info").unwrap().1;
    assert!(info.contains("version=v1"), "{info}");
    // The systemd protocol: the named sockets, ours and the private health one.
    assert!(info.contains("fds=http,health"), "{info}");
    let pid = agent_pid(port);
    assert_eq!(pid, d.first_release_pid());
    // git and the ledger agree on what is live.
    assert_eq!(t.git(&["rev-parse", "refs/graft/live"]), t.head());
    let status = d.status();
    assert_eq!(status["supervisor"]["live_commit"], t.head().as_str());
    assert!(
        t.path(".graft/state/agent-state").exists(),
        "GRAFT_STATE_DIR is given"
    );
    assert_eq!(d.stop(), Some(0));
    assert!(!alive(pid), "the release stopped with graft run");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn upgrade_under_load_switches_without_a_failed_request() {
    let (t, port) = Target::agent();
    let d = t.run_daemon();
    let old = agent_pid(port);
    for (keep_alive, version) in [(true, "v2"), (false, "v3")] {
        let l = load(port, 4, keep_alive);
        std::thread::sleep(Duration::from_millis(300));
        let run = t.upgrade_edits(&release(version, None), &[]);
        run.success()
            .stderr_has("sending the upgrade to the running `graft run`");
        std::thread::sleep(Duration::from_millis(300));
        let r = l.stop();
        assert_eq!(r.failed(), 0, "keep_alive={keep_alive}: {:?}", r.all());
        let versions: Vec<String> = r.versions().into_iter().map(|(v, _)| v).collect();
        assert_eq!(versions.last().map(String::as_str), Some(version), "{versions:?}");
        assert!(
            versions.len() >= 2,
            "traffic before and after the switch: {versions:?}"
        );
    }
    assert_eq!(hello(port), "hello from v3\n");
    eventually(10, "the first release drained and exited", || !alive(old));
    assert_eq!(t.git(&["rev-parse", "refs/graft/live"]), t.head());
    drop(d);
}

#[test]
fn unix_sockets_are_passed_too() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let config = agent_config(free_port()).replace(
        "address = \"127.0.0.1:",
        &format!("address = \"unix:{}\"\n# was 127.0.0.1:", sock.display()),
    );
    let t = Target::agent_with(&config);
    let _d = t.run_daemon();
    let ask = || {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(ask().ends_with("hello from v1\n"));
    t.upgrade_edits(&release("v2", None), &[]).success();
    assert!(ask().ends_with("hello from v2\n"));
}

const WORKER: &str = r#"import json, os, signal, socket, sys, time
version = open("VERSION").read().strip()
state = os.environ["GRAFT_STATE_DIR"]
with open(os.path.join(state, "worker-" + version + ".json"), "w") as f:
    json.dump({"pid": os.getpid(), "listen_fds": os.environ.get("LISTEN_FDS"), "names": os.environ.get("LISTEN_FDNAMES")}, f)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\nSTATUS=working", os.environ["NOTIFY_SOCKET"])
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    time.sleep(0.1)
"#;

#[test]
fn plain_mode_runs_a_worker_without_sockets() {
    let t = Target::with_files(&[
        ("worker.py", WORKER),
        ("VERSION", "v1\n"),
        (
            "graft.toml",
            "[target]\nbranch = \"main\"\n\n[run]\ncommand = \"python3 worker.py\"\n\n[health]\nready = \"notify\"\n\n[watch]\nwindow = \"1s\"\n",
        ),
    ]);
    let d = t.run_daemon();
    let state = |v: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(t.path(&format!(".graft/state/worker-{v}.json"))).unwrap(),
        )
        .unwrap()
    };
    let v1 = state("v1");
    // No listening sockets: only the release's private health socket.
    assert_eq!(v1["listen_fds"], "1");
    assert_eq!(v1["names"], "health");
    t.upgrade_edits(r#"[{"op":"replace","path":"VERSION","content":"v2\n"}]"#, &[])
        .success();
    let v2 = state("v2");
    assert_ne!(v1["pid"], v2["pid"]);
    eventually(10, "the v1 worker stopped", || {
        !alive(v1["pid"].as_i64().unwrap() as i32)
    });
    assert_eq!(d.status()["supervisor"]["status"], "working");
}

/// A small HTTP service that binds its own port (no socket from Graft):
/// `/` says its VERSION, `/health` answers 503 when VERSION says
/// `unhealthy`; it logs its start and stop to GRAFT_STATE_DIR/events.
const OWN_PORT_APP: &str = r#"import http.server, os, signal, sys
version = open("VERSION").read().strip()
port = int(open("PORT").read())
events = os.path.join(os.environ["GRAFT_STATE_DIR"], "events")
def log(what):
    with open(events, "a") as f:
        f.write(what + " " + version + "\n")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path != "/health" or version != "unhealthy"
        body = (("hello from " + version) if self.path == "/" else ("ok" if ok else "no")).encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), H)
def stop(*a):
    log("stop")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
log("start")
server.serve_forever()
"#;

/// `OWN_PORT_APP` at VERSION v1 on `port`, run by a graft.toml whose
/// `[run]` section goes on with `rest`.
fn own_port_app(port: u16, rest: &str) -> Target {
    Target::with_files(&[
        ("app.py", OWN_PORT_APP),
        ("VERSION", "v1\n"),
        ("PORT", &port.to_string()),
        (
            "graft.toml",
            &format!("[target]\nbranch = \"main\"\n\n[run]\ncommand = \"python3 app.py\"\n{rest}"),
        ),
    ])
}

#[test]
fn plain_mode_checks_the_programs_own_address_and_stops_the_old_release_first() {
    let port = free_port();
    let t = own_port_app(
        port,
        &format!(
            "drain_timeout = \"3s\"\n\n[health]\nready = \"http\"\naddress = \"127.0.0.1:{port}\"\ninterval = \"100ms\"\nstart_timeout = \"3s\"\n\n[watch]\nwindow = \"1s\"\n"
        ),
    );
    let d = t.run_daemon();
    assert_eq!(d.info["plain_mode"], true);
    assert!(
        d.stderr().contains("plain mode (no [[run.listen]]): each switch stops the old release before starting the new one, so nothing serves for that moment"),
        "{}",
        d.stderr()
    );
    assert_eq!(hello(port), "hello from v1");
    t.upgrade_edits(r#"[{"op":"replace","path":"VERSION","content":"v2\n"}]"#, &[])
        .success();
    assert_eq!(hello(port), "hello from v2");
    // v1 stopped before v2 started: two copies could not share the port.
    let events = || t.read(".graft/state/events");
    assert_eq!(events(), "start v1\nstop v1\nstart v2\n");

    // A release that never gets ready: v2 is started again.
    let (run, report) = upgrade_json(
        &t,
        r#"[{"op":"replace","path":"VERSION","content":"unhealthy\n"}]"#,
    );
    run.code(7);
    assert_eq!(report["failure"]["reason"], "deploy_failed:not_ready");
    let msg = report["failure"]["message"].as_str().unwrap();
    assert!(
        msg.contains("GET /health answered 503 Service Unavailable"),
        "{msg}"
    );
    assert!(
        msg.contains("was started again (pid ")
            && msg.contains("): in plain mode the old release stops before the new one starts"),
        "{msg}"
    );
    assert_eq!(hello(port), "hello from v2");
    assert!(
        events().ends_with("stop v2\nstart unhealthy\nstop unhealthy\nstart v2\n")
            || events().ends_with("stop v2\nstart unhealthy\nstart v2\nstop unhealthy\n"),
        "{}",
        events()
    );
}

#[test]
fn a_release_that_binds_the_port_graft_holds_is_told_to_take_its_socket() {
    let port = free_port();
    let t = own_port_app(
        port,
        &format!(
            "\n[[run.listen]]\nname = \"http\"\naddress = \"127.0.0.1:{port}\"\n\n[health]\nready = \"notify\"\nstart_timeout = \"5s\"\n"
        ),
    );
    let run = t.graft(&["run"]);
    run.code(5).stderr_has(&format!(
        "its output says its address is already in use: Graft holds the listening sockets of [[run.listen]] (http (127.0.0.1:{port})) and passes them to each release as fd 3 onward (LISTEN_FDS, LISTEN_FDNAMES), so the program must take its socket from there instead of binding the port itself; the README's \"Recipes: taking the socket from Graft\" shows how for gunicorn, uvicorn, Node, Go and Rust"
    ));
    run.stderr_has("Address already in use");
}

#[test]
fn never_ready_release_is_killed_and_the_old_one_keeps_serving() {
    let port = free_port();
    let t =
        Target::agent_with(&agent_config(port).replace("start_timeout = \"10s\"", "start_timeout = \"2s\""));
    let _d = t.run_daemon();
    let base_tree = tree(&t, "HEAD");
    let l = load(port, 4, true);
    let (run, report) = upgrade_json(&t, &release("v2", Some("ready=never")));
    let r = l.stop();
    run.code(7);
    assert_eq!(report["state"], "rolled_back");
    assert_eq!(report["failure"]["reason"], "deploy_failed:not_ready");
    let msg = report["failure"]["message"].as_str().unwrap();
    assert!(msg.contains("not ready in time"), "{msg}");
    assert!(msg.contains("the old release kept serving"), "{msg}");
    assert_eq!(r.failed(), 0, "{:?}", r.all());
    assert!(r.versions().iter().all(|(v, _)| v == "v1"), "{:?}", r.versions());
    assert_eq!(hello(port), "hello from v1\n");
    // History is kept: the landed commit, then its revert.
    assert_eq!(tree(&t, "HEAD"), base_tree);
    assert!(t.git(&["log", "-1", "--format=%B"]).contains("Graft-Rollback:"));
}

/// A release that never becomes ready by `ready` is never switched to:
/// the load sees only v1, no request fails, and the ledger never records
/// it live or ready.
fn never_ready_is_kept_out(ready: &str, behavior: &str) {
    let port = free_port();
    // Long enough for the first release to pass a check run by python3 on
    // a busy machine.
    let config = agent_config(port)
        .replace("ready = \"notify\"", ready)
        .replace("start_timeout = \"10s\"", "start_timeout = \"4s\"");
    let t = Target::agent_with(&config);
    let _d = t.run_daemon();
    let l = load(port, 4, true);
    let (run, report) = upgrade_json(&t, &release("v2", Some(behavior)));
    let r = l.stop();
    run.code(7);
    assert_eq!(report["failure"]["reason"], "deploy_failed:not_ready", "{ready}");
    assert_eq!(r.failed(), 0, "{ready}: {:?}", r.all());
    assert!(
        r.versions().iter().all(|(v, _)| v == "v1"),
        "{ready}: {:?}",
        r.versions()
    );
    let landed = report["landed_commit"].as_str().unwrap();
    assert_eq!(
        t.count(&format!("SELECT COUNT(*) FROM live WHERE commit_id = '{landed}'")),
        0,
        "{ready}: v2 was never live"
    );
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM instances WHERE commit_id = '{landed}' AND ready_at IS NOT NULL"
        )),
        0,
        "{ready}: v2 was never ready"
    );
    assert_eq!(hello(port), "hello from v1\n");
}

#[test]
fn never_ready_by_notify_is_never_switched_to() {
    never_ready_is_kept_out("ready = \"notify\"", "ready=never");
}

#[test]
fn never_ready_by_http_is_never_switched_to() {
    // Its health socket answers 503 while it starts.
    never_ready_is_kept_out("ready = \"http\"", "ready=never");
}

#[test]
fn never_ready_by_tcp_is_never_switched_to() {
    // It never accepts on its health socket; the kernel completes the
    // handshake all the same, so connecting alone would have passed.
    never_ready_is_kept_out("ready = \"tcp\"", "ready=never\nhealth_when_ready=1");
}

#[test]
fn never_ready_by_command_is_never_switched_to() {
    never_ready_is_kept_out(
        "ready = \"command\"\ncommand = \"python3 -c \\\"import os,urllib.request; urllib.request.urlopen('http://'+os.environ['GRAFT_HEALTH_ADDR']+'/health', timeout=1)\\\"\"",
        "ready=never",
    );
}

#[test]
fn a_release_that_exits_at_once_fails_fast() {
    let (t, port) = Target::agent();
    let _d = t.run_daemon();
    let started = Instant::now();
    let (run, report) = upgrade_json(&t, &release("v2", Some("exit_at_start=3")));
    run.code(7);
    // Not the 10 s start timeout: the exit ends the wait.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report["failure"]["reason"], "deploy_failed:exited");
    let msg = report["failure"]["message"].as_str().unwrap();
    assert!(msg.contains("exited before it was ready (exit 3)"), "{msg}");
    assert!(
        msg.contains("agent: exiting at start with 3"),
        "the release's own output: {msg}"
    );
    assert_eq!(hello(port), "hello from v1\n");
}

#[test]
fn a_release_that_ignores_sigterm_is_killed_after_the_drain_timeout() {
    let (t, port) = Target::agent();
    t.write("behavior", "ignore_sigterm=1\n");
    t.commit("v1 ignores SIGTERM");
    let d = t.run_daemon();
    let old = agent_pid(port);
    // When v2 first answers: v2 is ready then, and v1 gets its stop signal
    // as soon as Graft sees that.
    let first_v2 = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if get(port, "/version").is_ok_and(|(_, b)| b == "v2\n") {
                return Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    });
    t.upgrade_edits(
        r#"[{"op":"replace","path":"VERSION","content":"v2\n"},{"op":"delete","path":"behavior"}]"#,
        &[],
    )
    .success();
    let switched = first_v2.join().unwrap().expect("v2 answered");
    assert!(
        alive(old),
        "it ignores SIGTERM, so it lives until the drain timeout"
    );
    // A program that ignores the stop signal keeps its connections until
    // the SIGKILL resets them: that part of a drain is the program's job.
    eventually(10, "SIGKILL after the drain timeout", || !alive(old));
    let lived = switched.elapsed();
    assert!(
        lived >= Duration::from_millis(2700),
        "killed {lived:?} after v2 first answered, before the 3 s drain timeout"
    );
    assert_eq!(hello(port), "hello from v2\n");
    assert!(
        d.stderr()
            .contains("did not stop within 3s of SIGTERM; killing its process group"),
        "{}",
        d.stderr()
    );
}

#[test]
fn helpers_a_release_forked_go_with_it() {
    let (t, port) = Target::agent();
    t.write("behavior", "fork_grandchild=1\n");
    t.commit("v1 forks a helper");
    let _d = t.run_daemon();
    let old = agent_pid(port);
    assert!(group_alive(old));
    t.upgrade_edits(
        r#"[{"op":"replace","path":"VERSION","content":"v2\n"},{"op":"delete","path":"behavior"}]"#,
        &[],
    )
    .success();
    eventually(10, "the whole process group of v1 is gone", || !group_alive(old));
}

#[test]
fn crash_in_the_watch_window_rolls_back_code_and_data() {
    let port = free_port();
    let t = Target::agent_with(&agent_config(port).replace("window = \"1s\"", "window = \"4s\""));
    let _d = t.run_daemon();
    let base_tree = tree(&t, "HEAD");
    // The new release changes the data file once it serves, then crashes.
    let writer = {
        let notes = t.path("data/notes.txt");
        std::thread::spawn(move || {
            eventually(20, "v2 serving", || {
                get(port, "/version").map(|r| r.1 == "v2\n").unwrap_or(false)
            });
            std::fs::write(notes, "notes written by v2\n").unwrap();
        })
    };
    let (run, report) = upgrade_json(&t, &release("v2", Some("crash_after_ms=1500")));
    writer.join().unwrap();
    run.code(7);
    assert_eq!(report["failure"]["reason"], "watch_failed:crashed");
    let msg = report["failure"]["message"].as_str().unwrap();
    assert!(msg.contains("crashed in its watch window (exit 101)"), "{msg}");
    assert!(
        msg.contains("switched back to the last known good release"),
        "{msg}"
    );
    assert_eq!(hello(port), "hello from v1\n");
    assert_eq!(tree(&t, "HEAD"), base_tree, "the commit was reverted");
    assert_eq!(
        t.read("data/notes.txt"),
        "notes before\n",
        "the data file was restored"
    );
    let id = report["id"].as_str().unwrap();
    let (cause, restored): (String, bool) = t
        .ledger()
        .query_row(
            "SELECT cause, data_restored FROM rollbacks WHERE upgrade_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((cause.as_str(), restored), ("watch_failed:crashed", true));
    assert_eq!(
        t.git(&["rev-parse", "refs/graft/live"]),
        t.head(),
        "live is the revert commit"
    );
}

#[test]
fn unhealthy_in_the_watch_window_rolls_back_without_a_failed_request() {
    let port = free_port();
    let config = agent_config(port)
        .replace("ready = \"notify\"", "ready = \"http\"\nfailures = 2")
        .replace("window = \"1s\"", "window = \"4s\"");
    let t = Target::agent_with(&config);
    let _d = t.run_daemon();
    let l = load(port, 4, true);
    let (run, report) = upgrade_json(&t, &release("v2", Some("unhealthy_after_ms=800")));
    std::thread::sleep(Duration::from_millis(200));
    let r = l.stop();
    run.code(7);
    assert_eq!(report["failure"]["reason"], "watch_failed:unhealthy");
    assert_eq!(r.failed(), 0, "{:?}", r.all());
    let versions: Vec<String> = r.versions().into_iter().map(|(v, _)| v).collect();
    assert!(
        versions.contains(&"v2".to_string()),
        "v2 served for a while: {versions:?}"
    );
    assert_eq!(hello(port), "hello from v1\n");
}

#[test]
fn tcp_and_command_checks_gate_the_switch() {
    for ready in [
        "ready = \"tcp\"",
        "ready = \"command\"\ncommand = \"python3 -c \\\"import os,urllib.request; urllib.request.urlopen('http://'+os.environ['GRAFT_HEALTH_ADDR']+'/health', timeout=1)\\\"\"",
    ] {
        let port = free_port();
        let config = agent_config(port)
            .replace("ready = \"notify\"", ready)
            .replace("start_timeout = \"10s\"", "start_timeout = \"3s\"");
        let t = Target::agent_with(&config);
        let _d = t.run_daemon();
        t.upgrade_edits(&release("v2", None), &[]).success();
        assert_eq!(hello(port), "hello from v2\n", "{ready}");
        if ready.contains("command") {
            // The command check sees the release answer 503 and refuses it.
            let (run, report) = upgrade_json(&t, &release("v3", Some("ready=never")));
            run.code(7);
            assert_eq!(report["failure"]["reason"], "deploy_failed:not_ready", "{ready}");
            assert_eq!(hello(port), "hello from v2\n");
        }
    }
}

#[test]
fn missed_heartbeats_and_watchdogs_are_failures() {
    let port = free_port();
    let config = agent_config(port)
        .replace(
            "start_timeout = \"10s\"",
            "start_timeout = \"10s\"\nwatchdog = \"1500ms\"\nheartbeat = \"2500ms\"",
        )
        .replace("window = \"1s\"", "window = \"4s\"");
    let t = Target::agent_with(&config);
    let _d = t.run_daemon();
    // A release that sends both passes its window.
    t.upgrade_edits(&release("v2", None), &[]).success();
    for (knob, cause) in [
        ("no_heartbeat=1", "watch_failed:heartbeat"),
        ("no_watchdog=1", "watch_failed:watchdog"),
    ] {
        let (run, report) = upgrade_json(&t, &release("v3", Some(knob)));
        run.code(7);
        assert_eq!(report["failure"]["reason"], cause);
        assert_eq!(hello(port), "hello from v2\n");
    }
}

#[test]
fn a_crash_after_the_window_restarts_and_a_crash_loop_rolls_back() {
    let port = free_port();
    let config = agent_config(port).replace(
        "restart_backoff = \"200ms\"",
        "restart_backoff = \"200ms\"\ncrash_loop = 3",
    );
    let t = Target::agent_with(&config);
    let d = t.run_daemon();
    let base_tree = tree(&t, "HEAD");
    // Lives through its 1 s window, then crashes every 1.5 s.
    let (run, report) = upgrade_json(&t, &release("v2", Some("crash_after_ms=1500")));
    run.success();
    let id = report["id"].as_str().unwrap().to_string();
    let first = agent_pid(port);
    eventually(15, "restarted after the first crash", || {
        get(port, "/info")
            .is_ok_and(|(_, b)| b.contains("version=v2") && !b.contains(&format!("pid={first} ")))
    });
    eventually(40, "the crash loop rolled back to v1", || {
        get(port, "/").is_ok_and(|(_, b)| b == "hello from v1\n")
    });
    eventually(10, "the ledger records the crash-loop rollback", || {
        t.upgrade_row(&id).1.as_deref() == Some("crash_loop")
    });
    assert_eq!(t.upgrade_row(&id).0, "rolled_back");
    assert_eq!(tree(&t, "HEAD"), base_tree);
    assert!(d.stderr().contains("died: exit 101"), "{}", d.stderr());
}

/// A release that passes its watch window and later fails a liveness
/// check (`behavior`; `health` replaces the `ready` line) is killed and restarted: a new process of the same
/// release serves, the ledger records the restart, and graft run says why.
fn liveness_failure_restarts(health: &str, behavior: &str, said: &str) {
    let port = free_port();
    let config = agent_config(port).replace("ready = \"notify\"", health);
    let t = Target::agent_with(&config);
    let d = t.run_daemon();
    let (run, report) = upgrade_json(&t, &release("v2", Some(behavior)));
    run.success();
    let landed = report["landed_commit"].as_str().unwrap().to_string();
    let first = agent_pid(port);
    eventually(20, "a new process of v2 serves", || {
        get(port, "/info")
            .is_ok_and(|(_, b)| b.contains("version=v2") && !b.contains(&format!("pid={first} ")))
    });
    // The new process answers as soon as it accepts; the ledger records
    // it live once Graft has seen it ready, a moment later.
    eventually(10, "the ledger records the restart", || {
        t.count(&format!(
            "SELECT COUNT(*) FROM live WHERE commit_id = '{landed}' AND cause = 'restart'"
        )) == 1
    });
    assert!(!alive(first), "the failing process was killed");
    assert!(d.stderr().contains(said), "{said}\n{}", d.stderr());
    let exit: String = t
        .ledger()
        .query_row("SELECT exit_status FROM instances WHERE pid = ?1", [first], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        exit.starts_with("killed by signal 9 (killed by graft run: "),
        "{exit}"
    );
    assert_eq!(t.upgrade_row(report["id"].as_str().unwrap()).0, "promoted");
}

#[test]
fn failed_health_checks_after_the_window_restart_the_release() {
    liveness_failure_restarts(
        "ready = \"http\"\nfailures = 2",
        "unhealthy_after_ms=2500",
        "failed 2 health checks in a row: GET /health answered 503 Service Unavailable; restarting it",
    )
}

#[test]
fn a_missed_watchdog_after_the_window_restarts_the_release() {
    liveness_failure_restarts(
        "ready = \"notify\"\nwatchdog = \"1s\"",
        "watchdog_stops_after_ms=2500",
        "sent no WATCHDOG=1 for",
    )
}

#[test]
fn a_missed_heartbeat_after_the_window_restarts_the_release() {
    liveness_failure_restarts(
        "ready = \"notify\"\nheartbeat = \"1500ms\"",
        "heartbeat_stops_after_ms=2500",
        "sent no heartbeat for",
    )
}

#[test]
fn graft_run_reports_each_switch_failure_and_end_as_a_line_and_as_json() {
    let port = free_port();
    // Failures on purpose: learning must not start holding upgrades.
    let config = agent_config(port).replace("start_timeout = \"10s\"", "start_timeout = \"2s\"")
        + "\n[policy]\nlearn_min_outcomes = 100\n";
    let t = Target::agent_with(&config);
    let d = t.run_daemon();
    let short = |c: &str| c[..10].to_string();
    let first = t.head();

    let (run, good) = upgrade_json(&t, &release("v2", None));
    run.success();
    let v2 = good["landed_commit"].as_str().unwrap().to_string();
    let (_, never) = upgrade_json(&t, &release("v3", Some("ready=never")));
    let (_, crash) = upgrade_json(&t, &release("v4", Some("crash_after_ms=300")));
    // Lives through its 1 s window, then dies once: restarted.
    let (run, late) = upgrade_json(&t, &release("v5", Some("crash_after_ms=1800")));
    run.success();
    let v5 = late["landed_commit"].as_str().unwrap().to_string();
    eventually(15, "v5 restarted after its crash", || {
        d.events()
            .iter()
            .any(|e| e["event"] == "switched" && e["cause"] == "restart")
    });
    let id = |r: &serde_json::Value| r["id"].as_str().unwrap().to_string();
    let (never_c, crash_c) = (
        never["landed_commit"].as_str().unwrap().to_string(),
        crash["landed_commit"].as_str().unwrap().to_string(),
    );

    // One line each on stderr, in order.
    let stderr = d.stderr();
    let expected = [
        format!("graft run: start: {} serves (pid ", short(&first)),
        format!("graft run: deploy {}: {} serves (pid ", id(&good), short(&v2)),
        format!("graft run: upgrade {} promoted", id(&good)),
        format!(
            "graft run: deploy {}: {} was not switched to (not_ready): the new release was not ready in time",
            id(&never),
            short(&never_c)
        ),
        format!(
            "graft run: upgrade {} rolled back (deploy_failed:not_ready)",
            id(&never)
        ),
        format!(
            "graft run: deploy {}: {} serves (pid ",
            id(&crash),
            short(&crash_c)
        ),
        format!(
            "graft run: watch {}: {} failed (crashed): release {} crashed in its watch window",
            id(&crash),
            short(&crash_c),
            short(&crash_c)
        ),
        format!("graft run: rollback {}: ", id(&crash)),
        format!(
            "graft run: upgrade {} rolled back (watch_failed:crashed)",
            id(&crash)
        ),
        format!("graft run: upgrade {} promoted", id(&late)),
        format!("graft run: release {} (pid ", short(&v5)),
        format!("graft run: restart: {} serves (pid ", short(&v5)),
    ];
    let mut at = 0;
    for want in &expected {
        let found = stderr[at..]
            .find(want.as_str())
            .unwrap_or_else(|| panic!("missing, or out of order: {want}\n--- stderr\n{stderr}"));
        at += found + want.len();
    }
    assert!(
        stderr.contains(") died: exit 101; restarting it in 200 ms"),
        "{stderr}"
    );

    // The same events, as JSON lines on stdout.
    let events = d.events();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["event"].as_str().unwrap(),
                e["cause"].as_str().or(e["state"].as_str()).unwrap_or(""),
                e["upgrade"].as_str().unwrap_or("")
            )
        })
        .collect();
    let want: Vec<String> = [
        ("switched", "start", String::new()),
        ("switched", "deploy", id(&good)),
        ("upgrade", "promoted", id(&good)),
        ("not_switched", "deploy", id(&never)),
        ("upgrade", "rolled_back", id(&never)),
        ("switched", "deploy", id(&crash)),
        ("watch_failed", "", id(&crash)),
        ("switched", "rollback", id(&crash)),
        ("upgrade", "rolled_back", id(&crash)),
        ("switched", "deploy", id(&late)),
        ("upgrade", "promoted", id(&late)),
        ("died", "", String::new()),
        ("switched", "restart", String::new()),
    ]
    .iter()
    .map(|(e, c, u)| format!("{e} {c} {u}"))
    .collect();
    assert_eq!(kinds, want, "{events:#?}");
    let not_switched = &events[3];
    assert_eq!(not_switched["reason"], "not_ready");
    assert_eq!(not_switched["commit"], never_c.as_str());
    assert_eq!(events[8]["reason"], "watch_failed:crashed");
    assert_eq!(events[11]["how"], "exit 101");
    assert_eq!(events[11]["restart_in_ms"], 200);
}

#[test]
fn releases_are_kept_pruned_and_reused_without_a_rebuild() {
    let port = free_port();
    let counter = tempfile::NamedTempFile::new().unwrap();
    let config = agent_config(port)
        .replace(
            "restart_backoff = \"200ms\"",
            "restart_backoff = \"200ms\"\nkeep_releases = 2",
        )
        .replace(
            "build = \"mkdir -p bin && cp",
            "build = \"echo build >> \\\"$GRAFT_TEST_COUNTER\\\" && mkdir -p bin && cp",
        );
    let t = Target::agent_with(&config);
    let _d = t.run_daemon_env(&[("GRAFT_TEST_COUNTER", counter.path().to_str().unwrap())]);
    let builds = || std::fs::read_to_string(counter.path()).unwrap().lines().count();
    let mut ids = Vec::new();
    for v in ["v2", "v3", "v4"] {
        let (run, report) = upgrade_json(&t, &release(v, None));
        run.success();
        ids.push(report["id"].as_str().unwrap().to_string());
    }
    let dirs = |t: &Target| {
        std::fs::read_dir(t.path(".graft/releases"))
            .unwrap()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count()
    };
    assert_eq!(dirs(&t), 2, "keep_releases = 2");
    let before = builds();
    // Rolling back the tip starts the kept release of v3: no build.
    t.graft(&["rollback", &ids[2]]).success();
    assert_eq!(hello(port), "hello from v3\n");
    assert_eq!(builds(), before, "rollback needed no rebuild");
}

#[test]
fn a_switch_is_done_only_once_the_old_release_no_longer_accepts() {
    let (t, port) = Target::agent();
    let _d = t.run_daemon();
    let (run, report) = upgrade_json(&t, &release("v2", Some("accept_after_term_ms=600")));
    run.success();
    assert_eq!(hello(port), "hello from v2\n");
    // v2 goes on accepting for 600 ms after its stop signal: the rollback
    // is reported once it stopped, so every request after it reaches v1.
    t.graft(&["rollback", report["id"].as_str().unwrap()]).success();
    for _ in 0..30 {
        assert_eq!(hello(port), "hello from v1\n");
    }
}

#[test]
fn docs_only_changes_are_promoted_without_a_restart() {
    let (t, port) = Target::agent();
    let _d = t.run_daemon();
    let pid = agent_pid(port);
    t.upgrade_edits(
        r##"[{"op":"replace","path":"docs/README.md","content":"# agent\n\nMore words.\n"}]"##,
        &[],
    )
    .success();
    assert_eq!(agent_pid(port), pid, "no restart for docs");
    let cause: String = t
        .ledger()
        .query_row("SELECT cause FROM live ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(cause, "no_restart");
    assert_eq!(t.git(&["rev-parse", "refs/graft/live"]), t.head());
}

#[test]
fn agent_state_survives_upgrades_and_the_task_and_history_survive_restarts() {
    let (t, port) = Target::agent();
    let d = t.run_daemon();
    for _ in 0..5 {
        hello(port);
    }
    t.upgrade_edits(&release("v2", None), &[]).success();
    // v1 saved its count when asked to prepare, before v2 started and read it.
    let state = get(port, "/state").unwrap().1;
    let served: u64 = state
        .split_whitespace()
        .find_map(|w| w.strip_prefix("served="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(served >= 5, "{state}");
    assert!(state.contains("boots=2"), "{state}");

    // The agent API, with the token graft run gave the live release.
    let env = |pid: i32, key: &str| -> String {
        let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        raw.split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(String::from))
            .unwrap_or_else(|| panic!("{key} not in the release's environment"))
    };
    let pid = agent_pid(port);
    let (url, token) = (env(pid, "GRAFT_AGENT_URL"), env(pid, "GRAFT_AGENT_TOKEN"));
    let api = |url: &str, method: &str, path: &str, token: &str, body: &str| -> (u16, String) {
        use std::io::{Read, Write};
        let addr = url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr)
            .unwrap_or_else(|e| panic!("agent API at {addr} for {method} {path}: {e}"));
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, text.split_once("\r\n\r\n").unwrap().1.to_string())
    };
    assert_eq!(api(&url, "GET", "/agent/task", &token, "").0, 404);
    assert_eq!(
        api(
            &url,
            "PUT",
            "/agent/task",
            &token,
            r#"{"content":"write the report"}"#
        ),
        (200, r#"{"version":1}"#.into())
    );
    assert_eq!(
        api(
            &url,
            "POST",
            "/agent/history",
            &token,
            r#"{"role":"user","content":"hi"}"#
        )
        .0,
        201
    );
    assert_eq!(
        api(
            &url,
            "POST",
            "/agent/history",
            &token,
            r#"{"role":"assistant","content":"hello"}"#
        )
        .0,
        201
    );
    assert_eq!(api(&url, "POST", "/agent/heartbeat", &token, "").0, 204);
    let (status, body) = api(&url, "PUT", "/agent/task", "wrong-token", r#"{"content":"x"}"#);
    assert_eq!(status, 401);
    assert!(body.contains("bad_token"), "{body}");
    assert_eq!(
        api(&url, "POST", "/agent/history", &token, r#"{"role":"user"}"#).0,
        400
    );

    // A restart of graft run loses nothing that was acknowledged.
    drop(d);
    let _d = t.run_daemon();
    let pid = agent_pid(port);
    let (url, token) = (env(pid, "GRAFT_AGENT_URL"), env(pid, "GRAFT_AGENT_TOKEN"));
    let (_, task) = api(&url, "GET", "/agent/task", &token, "");
    assert!(task.contains("write the report"), "{task}");
    let (_, history) = api(&url, "GET", "/agent/history?after=0", &token, "");
    let h: serde_json::Value = serde_json::from_str(&history).unwrap();
    assert_eq!(h.as_array().unwrap().len(), 2);
    assert_eq!(h[1]["content"], "hello");
}

/// The agent target with `prepare_path = "/prepare"` instead of the
/// prepare signal, and `extra` lines in [run].
fn prepare_path_target(v1_behavior: &str, extra: &str) -> (Target, u16) {
    let port = free_port();
    let config = agent_config(port).replace(
        "prepare_signal = \"SIGUSR1\"",
        &format!("prepare_path = \"/prepare\"{extra}"),
    );
    let t = Target::agent_with(&config);
    t.write("behavior", &format!("{v1_behavior}\n"));
    t.commit("v1 behaviour");
    (t, port)
}

/// The deploy step's end detail of an upgrade, as the ledger keeps it.
fn deploy_detail(t: &Target, id: &str) -> serde_json::Value {
    let text: String = t
        .ledger()
        .query_row(
            "SELECT detail FROM steps WHERE upgrade_id = ?1 AND step = 'deploy' AND phase = 'end'",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn prepare_path_is_posted_and_the_next_release_starts_from_what_was_saved() {
    // v1 saves its state only when Graft POSTs /prepare on its health socket.
    let (t, port) = prepare_path_target("save_state=prepare", "");
    let _d = t.run_daemon();
    for _ in 0..25 {
        assert_eq!(hello(port), "hello from v1\n");
    }
    let (run, report) = upgrade_json(&t, &plain_release("v2"));
    run.success();
    let state = get(port, "/state").unwrap().1;
    let served: u64 = state
        .split_whitespace()
        .find_map(|w| w.strip_prefix("served="))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(served >= 25, "v2 read what v1 saved on POST /prepare: {state}");
    let detail = deploy_detail(&t, report["id"].as_str().unwrap());
    assert_eq!(detail["prepared"]["ok"], true, "{detail}");
    assert_eq!(detail["prepared"]["message"], "state saved", "{detail}");
}

#[test]
fn a_release_that_does_not_confirm_it_saved_its_state_is_recorded_or_holds_the_deploy() {
    // By default the failure is recorded, said, and the deploy goes on.
    let (t, port) = prepare_path_target("prepare_status=500", "");
    let d = t.run_daemon();
    let (run, report) = upgrade_json(&t, &plain_release("v2"));
    run.success();
    assert_eq!(hello(port), "hello from v2\n");
    let detail = deploy_detail(&t, report["id"].as_str().unwrap());
    assert_eq!(detail["prepared"]["ok"], false, "{detail}");
    assert_eq!(
        detail["prepared"]["message"], "POST /prepare answered 500 Internal Server Error",
        "{detail}"
    );
    assert!(
        d.stderr().contains("graft: warning: the live release did not confirm it saved its state (POST /prepare answered 500 Internal Server Error); switching anyway ([run] prepare_required = true would hold the deploy)"),
        "{}",
        d.stderr()
    );
    drop(d);

    // With prepare_required, the deploy is held: v1 serves on.
    let (t, port) = prepare_path_target("prepare_status=500", "\nprepare_required = true");
    let _d = t.run_daemon();
    let base_tree = tree(&t, "HEAD");
    let l = load(port, 2, true);
    let (run, report) = upgrade_json(&t, &plain_release("v2"));
    let r = l.stop();
    run.code(7);
    assert_eq!(report["failure"]["reason"], "deploy_failed:not_prepared");
    let msg = report["failure"]["message"].as_str().unwrap();
    assert!(
        msg.contains("the live release did not confirm it saved its state (POST /prepare answered 500 Internal Server Error); with [run] prepare_required = true the new release was not started; the old release kept serving"),
        "{msg}"
    );
    assert_eq!(r.failed(), 0, "{:?}", r.all());
    assert_eq!(hello(port), "hello from v1\n");
    assert_eq!(tree(&t, "HEAD"), base_tree, "the commit was reverted");
    let landed = report["landed_commit"].as_str().unwrap();
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM instances WHERE commit_id = '{landed}'"
        )),
        0,
        "v2 was never started"
    );
}

#[test]
fn prepare_required_without_a_way_to_ask_is_refused_when_the_config_is_loaded() {
    let port = free_port();
    let config = agent_config(port).replace("prepare_signal = \"SIGUSR1\"", "prepare_required = true");
    let t = Target::agent_with(&config);
    t.graft(&["run"]).code(5).stderr_has(
        "`prepare_required = true` needs `prepare_signal` or `prepare_path` in [run]: how Graft asks the live release to save its state",
    );
}

#[test]
fn a_port_in_use_is_refused_with_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let t = Target::agent_with(&agent_config(port));
    let run = t.graft_env(
        &["run"],
        &[("GRAFT_TEST_AGENT_BIN", agent_bin().to_str().unwrap())],
    );
    run.code(5)
        .stderr_has(&format!("cannot listen on 127.0.0.1:{port} (socket `http`)"))
        .stderr_has("another program is listening there");
}

#[test]
fn a_run_section_is_required() {
    let t = Target::python();
    t.graft(&["run"]).code(5).stderr_has("has no [run] section");
}

#[test]
fn a_release_whose_files_vanished_is_rebuilt_when_needed() {
    let port = free_port();
    let t = Target::agent_with(&agent_config(port).replace("window = \"1s\"", "window = \"4s\""));
    let d = t.run_daemon();
    t.upgrade_edits(&release("v2", None), &[]).success();
    // Someone deletes the build output of the live (last known good) release.
    let v2 = tree(&t, "HEAD");
    std::fs::remove_file(t.path(&format!(".graft/releases/{v2}/bin/agent"))).unwrap();
    let (run, report) = upgrade_json(&t, &release("v3", Some("crash_after_ms=800")));
    run.code(7);
    assert_eq!(report["failure"]["reason"], "watch_failed:crashed");
    assert_eq!(hello(port), "hello from v2\n");
    assert!(
        d.stderr()
            .contains("is missing from .graft/releases (deleted?); rebuilding it"),
        "{}",
        d.stderr()
    );
}

#[test]
fn two_deploys_requested_at_once_run_one_after_the_other() {
    let (t, port) = Target::agent();
    let _d = t.run_daemon();
    let a = t.input("a.json", release("v2", None).as_bytes());
    let b = t.input(
        "b.json",
        br#"[{"op":"create","path":"extra.txt","content":"more\n"}]"#,
    );
    let spawn = |p: &std::path::Path| {
        t.graft_command(&["upgrade", "--edits", p.to_str().unwrap(), "--json"], &[])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn(&a);
    std::thread::sleep(Duration::from_millis(100));
    let second = spawn(&b);
    let out_a = first.wait_with_output().unwrap();
    let out_b = second.wait_with_output().unwrap();
    assert_eq!(
        out_a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out_a.stdout)
    );
    assert_eq!(
        out_b.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out_b.stdout)
    );
    let ra: serde_json::Value = serde_json::from_slice(&out_a.stdout).unwrap();
    let rb: serde_json::Value = serde_json::from_slice(&out_b.stdout).unwrap();
    // In the order asked: b was staged on top of a.
    assert_eq!(rb["base_commit"], ra["landed_commit"]);
    assert_eq!(t.head(), rb["landed_commit"].as_str().unwrap());
    assert_eq!(hello(port), "hello from v2\n");
}

#[test]
fn a_full_disk_while_copying_a_release_changes_nothing() {
    let (t, port) = Target::agent();
    let releases = t.path(".graft/releases");
    std::fs::create_dir_all(&releases).unwrap();
    let size = std::fs::metadata(agent_bin()).unwrap().len();
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={}", size + size / 2), "tmpfs"])
        .arg(&releases)
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "this test mounts a small tmpfs to fill a disk for real, which needs root: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _mount = Mount(releases.clone());
    let _d = t.run_daemon();
    let before = t.snapshot();
    let l = load(port, 2, true);
    let (run, report) = upgrade_json(&t, &release("v2", None));
    run.code(4);
    assert_eq!(report["failure"]["reason"], "release_failed:release");
    let msg = report["failure"]["message"].as_str().unwrap();
    assert!(msg.contains("the disk is full"), "{msg}");
    assert_eq!(l.stop().failed(), 0);
    assert_eq!(hello(port), "hello from v1\n");
    t.snapshot().assert_same(&before, "after a full disk");
    let leftovers: Vec<_> = std::fs::read_dir(&releases)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no half-made release is left: {leftovers:?}");
}

#[test]
fn graft_run_killed_with_sigkill_leaves_no_orphan_and_comes_back() {
    let (t, port) = Target::agent();
    let mut d = t.run_daemon();
    let first = agent_pid(port);
    d.kill9();
    // The kernel told the release to stop; it drains and exits.
    eventually(10, "the release stopped when graft run died", || !alive(first));
    let _d = t.run_daemon();
    assert_eq!(hello(port), "hello from v1\n");
    let running = t.count("SELECT COUNT(*) FROM instances WHERE stopped_at IS NULL");
    assert_eq!(running, 1, "only the new release is running");
}

#[test]
fn an_orphan_that_ignores_sigterm_is_killed_on_restart() {
    let (t, port) = Target::agent();
    t.write("behavior", "ignore_sigterm=1\n");
    t.commit("ignores SIGTERM");
    let mut d = t.run_daemon();
    let first = agent_pid(port);
    d.kill9();
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(first), "it ignored the SIGTERM and holds the port");
    let d2 = t.run_daemon();
    assert!(!alive(first));
    assert!(
        d2.stderr().contains("left by a previous graft run"),
        "{}",
        d2.stderr()
    );
    assert_eq!(hello(port), "hello from v1\n");
    assert_ne!(agent_pid(port), first);
}

#[test]
fn killed_during_a_watch_window_the_upgrade_is_rolled_back_on_restart() {
    let port = free_port();
    let receiver = crate::support::api::Receiver::start();
    let config = format!(
        "{}\n[[webhooks]]\nurl = \"{}\"\nformat = \"json\"\nmax_backoff = \"1s\"\n",
        agent_config(port).replace("window = \"1s\"", "window = \"30s\""),
        receiver.url("/hook")
    );
    let t = Target::agent_with(&config);
    let base_tree = tree(&t, "HEAD");
    let mut d = t.run_daemon();
    let file = t.input("v2.json", release("v2", None).as_bytes());
    let upgrade = t
        .graft_command(&["upgrade", "--edits", file.to_str().unwrap()], &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually(20, "v2 serving in its watch window", || {
        get(port, "/version").is_ok_and(|(_, b)| b == "v2\n")
    });
    // The switch is seen before the upgrade records its deploy step's
    // end: the kill comes once the ledger says the watch began.
    eventually(20, "the upgrade watching", || {
        t.count("SELECT COUNT(*) FROM upgrades WHERE state = 'watching'") == 1
    });
    d.kill9();
    let _ = upgrade.wait_with_output();
    let _d = t.run_daemon();
    let id = t.last_upgrade();
    let (state, reason, _) = t.upgrade_row(&id);
    assert_eq!(
        (state.as_str(), reason.as_deref()),
        ("rolled_back", Some("interrupted"))
    );
    // The rollback is reported once the v2 process no longer accepts:
    // the first request after it reaches v1.
    assert_eq!(hello(port), "hello from v1\n");
    assert_eq!(tree(&t, "HEAD"), base_tree);
    assert!(t.open_steps(&id).is_empty());
    // The restarted graft run announces the rollback its recovery made,
    // after what the killed one had queued. Delivery is at least once: a
    // notification the killed one sent but had not yet marked sent comes
    // again, under the same delivery id and with the same body.
    let mut got: Vec<crate::support::api::Delivery> = Vec::new();
    eventually(20, "four notifications", || {
        got.clear();
        for d in receiver.at("/hook") {
            match got.iter().find(|g| g.delivery == d.delivery) {
                Some(first) => assert_eq!((&first.event, &first.body), (&d.event, &d.body)),
                None => got.push(d),
            }
        }
        got.len() >= 4
    });
    let events: Vec<&str> = got.iter().map(|d| d.event.as_str()).collect();
    assert_eq!(events, ["planned", "gates_passed", "deployed", "rolled_back"]);
    let last = &got[3].body;
    assert_eq!(last["upgrade"]["id"], id.as_str());
    assert_eq!(last["upgrade"]["reason"], "interrupted");
}

#[test]
fn logs_show_the_live_release_and_follow_switches() {
    let (t, _port) = Target::agent();
    let _d = t.run_daemon();
    t.graft(&["logs"]).success().stdout_has("agent v1 starting");
    let mut follow = t
        .graft_command(&["logs", "--follow"], &[])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    t.upgrade_edits(&release("v2", None), &[]).success();
    std::thread::sleep(Duration::from_millis(800));
    let _ = follow.kill();
    let out = follow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("── switched to release process"), "{text}");
    assert!(text.contains("agent v2 starting"), "{text}");
}

#[test]
fn without_graft_run_a_change_lands_and_goes_live_at_the_next_start() {
    let (t, port) = Target::agent();
    t.upgrade_edits(&release("v2", None), &[])
        .success()
        .stdout_has("goes live when `graft run` starts");
    t.graft(&["status"])
        .success()
        .stdout_has("graft run has not run yet");
    let _d = t.run_daemon();
    assert_eq!(hello(port), "hello from v2\n");
}
