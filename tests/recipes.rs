//! The README's recipes for taking the socket from Graft, run as `graft
//! init` writes them: a real app (gunicorn and uvicorn from the tools
//! venv scripts/test.sh makes, plain Node) served through Graft's socket
//! under `graft run`, upgraded under keep-alive load with no failed
//! request. And what `graft init` finds and says for a new Python or Node
//! project: the virtualenv its gates run from the staging worktree, a
//! missing test runner, a missing lockfile.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::agent::{free_port, get, hello, load};
use crate::support::api::tool_python;
use crate::support::*;

const WSGI_APP: &str = r#"VERSION = "v1"


def app(environ, start_response):
    body = f"hello from {VERSION}\n".encode()
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
        ("X-Agent-Version", VERSION),
    ])
    return [body]
"#;

/// The README's uvicorn app, with a version in its answers.
const ASGI_APP: &str = r#"import os
import signal
import socket
import threading

VERSION = "v1"
draining = False


def notify(message):
    """A line on Graft's notify socket (systemd's protocol)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if address:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(message, address)


def drain_then(uvicorn_exit):
    """On SIGTERM, answer with `connection: close` for half a second, then let uvicorn stop."""

    def on_sigterm(sig, frame):
        global draining
        draining = True
        threading.Timer(0.5, uvicorn_exit, (sig, frame)).start()

    return on_sigterm


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                signal.signal(signal.SIGTERM, drain_then(signal.getsignal(signal.SIGTERM)))
                notify(b"READY=1")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = f"hello from {VERSION}\n".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()),
               (b"x-agent-version", VERSION.encode())]
    if draining:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"#;

/// A pytest test for either app: the gate that runs in the virtualenv.
const PY_TEST: &str = "import app\n\n\ndef test_version():\n    assert app.VERSION.startswith(\"v\")\n";

/// The README's Node server, with a version in its answers.
const NODE_SERVER: &str = r#"const http = require("node:http");
const net = require("node:net");

const VERSION = "v1";
let draining = false;
const server = http.createServer((req, res) => {
  if (draining) res.setHeader("Connection", "close");
  res.setHeader("X-Agent-Version", VERSION);
  res.end(`hello from ${VERSION}\n`);
});
server.listen({ fd: 3 });
const health = http.createServer((req, res) => res.end("ok\n"));
health.listen({ fd: 4 });

process.on("SIGTERM", () => {
  draining = true;
  net.Server.prototype.close.call(server); // stop accepting, keep connections
  health.close();
  setTimeout(() => server.closeIdleConnections(), 1000).unref();
});
"#;

const NODE_TEST: &str = r#"const test = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");

test("the server has a version", () => {
  assert.match(fs.readFileSync(__dirname + "/server.js", "utf8"), /const VERSION = "v\d+";/);
});
"#;

const NODE_PACKAGE: &str = r#"{"name": "app", "version": "1.0.0", "main": "server.js", "scripts": {"test": "node --test"}}
"#;

const NODE_LOCK: &str = r#"{"name": "app", "version": "1.0.0", "lockfileVersion": 3, "requires": true, "packages": {"": {"name": "app", "version": "1.0.0"}}}
"#;

/// The Python of the tools venv, with gunicorn and uvicorn.
fn python() -> PathBuf {
    tool_python("gunicorn, uvicorn, pytest")
}

/// Give the target a `.venv` with the tools venv's Python, gunicorn,
/// uvicorn and pytest: the venv itself when it is one, else small scripts
/// that exec its Python (a Python without the venv module: scripts/test.sh
/// installs into a plain folder on PYTHONPATH).
fn give_venv(t: &Target) {
    let python = python();
    let bin = python.parent().unwrap();
    if bin.join("gunicorn").is_file() && bin.join("uvicorn").is_file() {
        std::os::unix::fs::symlink(bin.parent().unwrap(), t.path(".venv")).unwrap();
        return;
    }
    let py = python.display();
    for (name, args) in [
        ("python", ""),
        ("gunicorn", " -m gunicorn"),
        ("uvicorn", " -m uvicorn"),
    ] {
        let path = t.path(&format!(".venv/bin/{name}"));
        t.write(
            &format!(".venv/bin/{name}"),
            &format!("#!/bin/sh\nexec \"{py}\"{args} \"$@\"\n"),
        );
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The recipe `name` from the graft.toml `graft init` wrote, uncommented,
/// on `port`.
fn recipe(t: &Target, name: &str, port: u16) -> String {
    let text = t.read("graft.toml");
    let heading = format!("# --- {name}:");
    let start = text
        .find(&heading)
        .unwrap_or_else(|| panic!("graft init wrote no {name} recipe:\n{text}"));
    let recipe: Vec<&str> = text[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
        .collect();
    let recipe = recipe.join("\n");
    let default = ["8000", "3000", "8080"]
        .into_iter()
        .find(|p| recipe.contains(&format!("127.0.0.1:{p}")))
        .unwrap_or_else(|| panic!("no address in the {name} recipe:\n{recipe}"));
    recipe.replace(&format!("127.0.0.1:{default}"), &format!("127.0.0.1:{port}"))
}

/// `graft init` in `t`, then the recipe `name` uncommented, a short watch
/// window, committed. Returns the port and what init printed as JSON.
fn init_with_recipe(t: &Target, name: &str, env: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let run = t.graft_env(&["init", "--json"], env);
    run.success();
    let port = free_port();
    // The upgrades here change an entry point (medium risk): no approval.
    let config = format!(
        "{}\n{}\n\n[watch]\nwindow = \"1s\"\n\n[policy]\nauto_approve_medium_risk = true\n",
        t.read("graft.toml"),
        recipe(t, name, port)
    );
    t.write("graft.toml", &config);
    t.commit("graft.toml with the recipe");
    (port, run.json())
}

/// The app answers `hello from v1` through Graft's socket; an upgrade to
/// v2 under keep-alive load switches with no failed request; the old
/// release is gone.
fn serves_and_upgrades_without_a_failed_request(t: &Target, port: u16, file: &str, env: &[(&str, &str)]) {
    let d = t.run_daemon_env(env);
    crate::support::agent::eventually(30, "the app answers through Graft's socket", || {
        get(port, "/").is_ok_and(|(s, b)| s == 200 && b == "hello from v1\n")
    });
    let first = d.first_release_pid();
    let l = load(port, 2, true);
    std::thread::sleep(Duration::from_millis(300));
    let edits = format!(
        r#"[{{"op":"modify","path":"{file}","edits":[{{"search":"VERSION = \"v1\"","replace":"VERSION = \"v2\""}}]}}]"#
    );
    t.upgrade_edits(&edits, &[])
        .success()
        .stderr_has("sending the upgrade to the running `graft run`");
    std::thread::sleep(Duration::from_millis(300));
    let r = l.stop();
    assert_eq!(r.failed(), 0, "{:?}\n{}", r.all(), d.stderr());
    let versions: Vec<String> = r.versions().into_iter().map(|(v, _)| v).collect();
    assert_eq!(versions.first().map(String::as_str), Some("v1"), "{versions:?}");
    assert_eq!(versions.last().map(String::as_str), Some("v2"), "{versions:?}");
    assert_eq!(hello(port), "hello from v2\n");
    crate::support::agent::eventually(15, "the first release drained and exited", || {
        !crate::support::agent::alive(first)
    });
    drop(d);
}

fn python_app(app: &str) -> Target {
    let t = Target::with_files(&[
        ("app.py", app),
        ("test_app.py", PY_TEST),
        ("requirements.txt", "gunicorn\nuvicorn\n"),
        (".gitignore", ".venv\n__pycache__/\n"),
    ]);
    give_venv(&t);
    t
}

/// `GRAFT_TEST_PYTHON` for the commands the tests run: the `.venv`'s
/// scripts may exec it.
fn python_env() -> [(&'static str, &'static str); 1] {
    static PYTHON: OnceLock<String> = OnceLock::new();
    [(
        "GRAFT_TEST_PYTHON",
        PYTHON.get_or_init(|| python().display().to_string()),
    )]
}
/// The Python recipe `name` as `graft init` writes it (`command`), run
/// with `app`.
fn python_recipe_serves_and_upgrades(app: &str, name: &str, command: &str) {
    let t = python_app(app);
    let env = python_env();
    let (port, init) = init_with_recipe(&t, name, &env);
    assert_eq!(init["python_env"], ".venv");
    let config = t.read("graft.toml");
    assert!(config.contains(command), "{config}");
    serves_and_upgrades_without_a_failed_request(&t, port, "app.py", &env);
}

#[test]
fn gunicorn_recipe_serves_through_grafts_socket_and_upgrades_without_a_failed_request() {
    python_recipe_serves_and_upgrades(
        WSGI_APP,
        "gunicorn",
        "command = '\"$GRAFT_REPO_ROOT/.venv/bin/gunicorn\" app:app'",
    );
}

#[test]
fn uvicorn_recipe_serves_through_grafts_socket_and_upgrades_without_a_failed_request() {
    python_recipe_serves_and_upgrades(
        ASGI_APP,
        "uvicorn",
        "command = '\"$GRAFT_REPO_ROOT/.venv/bin/uvicorn\" --fd 3 app:app'",
    );
}

#[test]
fn node_recipe_serves_through_grafts_socket_and_upgrades_without_a_failed_request() {
    let t = Target::with_files(&[
        ("server.js", NODE_SERVER),
        ("server.test.js", NODE_TEST),
        ("package.json", NODE_PACKAGE),
        ("package-lock.json", NODE_LOCK),
        (".gitignore", "node_modules/\n"),
    ]);
    let (port, init) = init_with_recipe(&t, "node", &[]);
    let gates: Vec<&str> = init["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["command"].as_str().unwrap())
        .collect();
    assert_eq!(gates[..2], ["npm ci --no-audit --no-fund", "npm test"], "{init}");
    assert!(t.read("graft.toml").contains("command = \"node server.js\""));
    serves_and_upgrades_without_a_failed_request(&t, port, "server.js", &[]);
}

/// A new user's Python project: pytest in `.venv`, which git does not
/// track. `graft init` writes gates that run `.venv`'s Python from the
/// staging worktree (through `GRAFT_REPO_ROOT`), and a dry run passes
/// them; a failing change is caught by the same gate.
#[test]
fn init_finds_the_virtualenv_and_its_gates_run_it_from_staging() {
    let t = python_app(WSGI_APP);
    let env = python_env();
    let run = t.graft_env(&["init"], &env);
    run.success()
        .stdout_has("gates: parse (built in), ")
        .stdout_has("test (\"$GRAFT_REPO_ROOT/.venv/bin/python\" -m pytest -q)")
        .stdout_has("python: gates run .venv's python from the staging worktree")
        .stdout_has(
            "to serve it with `graft run`: uncomment a [run] recipe in graft.toml (gunicorn, uvicorn)",
        );
    t.commit("graft.toml");
    let good = r#"[{"op":"modify","path":"app.py","edits":[{"search":"VERSION = \"v1\"","replace":"VERSION = \"v2\""}]}]"#;
    let p = t.input("good.json", good.as_bytes());
    t.graft_env(
        &["upgrade", "--edits", p.to_str().unwrap(), "--dry-run", "--json"],
        &env,
    )
    .success();
    let bad = r#"[{"op":"modify","path":"app.py","edits":[{"search":"VERSION = \"v1\"","replace":"VERSION = \"x1\""}]}]"#;
    let p = t.input("bad.json", bad.as_bytes());
    let run = t.graft_env(&["upgrade", "--edits", p.to_str().unwrap(), "--dry-run"], &env);
    run.code(4).says("gate `test` failed");
    // The gate saw where the main checkout is.
    let t2 = Target::with_files(&[
        ("requirements.txt", ""),
        (
            "graft.toml",
            "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"where\"\nkind = \"test\"\ncommand = 'test \"$GRAFT_REPO_ROOT\" = \"$EXPECTED\" && test \"$PWD\" != \"$GRAFT_REPO_ROOT\"'\n",
        ),
    ]);
    let root = t2.root.canonicalize().unwrap();
    let root = root.to_str().unwrap();
    let p = t2.input(
        "notes.diff",
        b"--- /dev/null\n+++ b/notes.txt\n@@ -0,0 +1 @@\n+hello\n",
    );
    t2.graft_env(
        &["upgrade", "--patch", p.to_str().unwrap(), "--dry-run"],
        &[("EXPECTED", root)],
    )
    .success();
}

/// No test runner in the virtualenv: said on the terminal and in --json,
/// with what to do, and the test gate is written commented out.
#[test]
fn init_says_when_no_test_runner_is_found() {
    let t = Target::with_files(&[
        ("app.py", "print('hi')\n"),
        (
            "pyproject.toml",
            "[project]\nname = \"app\"\nversion = \"0.1.0\"\n",
        ),
        (".gitignore", ".venv\n"),
    ]);
    // A virtualenv with nothing installed: Python without site-packages.
    t.write(".venv/bin/python", "#!/bin/sh\nexec python3 -S \"$@\"\n");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(t.path(".venv/bin/python"), std::fs::Permissions::from_mode(0o755)).unwrap();
    t.graft(&["init"]).success().stdout_has(
        "no test runner found: pytest is not installed in .venv and `python -m unittest` finds no tests, so the test gate is written commented out and no test runs before an upgrade lands; install pytest (`.venv/bin/pip install pytest`) or add unittest tests, then run `graft init --force`",
    );
    assert!(t.read("graft.toml").contains(
        "# no test runner was found (pytest, or tests `python -m unittest` finds); uncomment once installed.\n# [[gates]]\n# name = \"test\"\n# kind = \"test\"\n# command = '\"$GRAFT_REPO_ROOT/.venv/bin/python\" -m pytest -q'"
    ));
    let json = t.graft(&["init", "--force", "--json"]).json();
    assert_eq!(json["python_env"], ".venv");
    let notes: Vec<&str> = json["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes.iter().any(|n| n.starts_with("no test runner found")),
        "{notes:?}"
    );
    // unittest tests are a test runner.
    t.write(
        "test_app.py",
        "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_it(self):\n        self.assertTrue(True)\n",
    );
    let json = t.graft(&["init", "--force", "--json"]).json();
    assert_eq!(
        json["gates"].as_array().unwrap().last().unwrap()["command"],
        "\"$GRAFT_REPO_ROOT/.venv/bin/python\" -m unittest -q"
    );
}

/// Without a lockfile, `npm install` (and why); with one, `npm ci`.
#[test]
fn init_installs_node_packages_by_the_lockfile() {
    let t = Target::with_files(&[("package.json", NODE_PACKAGE), ("server.js", NODE_SERVER)]);
    t.graft(&["init"])
        .success()
        .stdout_has("install (npm install --no-audit --no-fund)")
        .stdout_has("node: no package-lock.json, so the install gate runs `npm install` (`npm ci` needs a lockfile and fails without one)");
    t.write("package-lock.json", NODE_LOCK);
    let json = t.graft(&["init", "--force", "--json"]).json();
    assert_eq!(json["gates"][0]["command"], "npm ci --no-audit --no-fund");
    assert_eq!(json["notes"], serde_json::json!([]));
}
