//! The web dashboard of a real `graft run`, driven by headless Chromium
//! (Debian's `chromium`, through Playwright for Python: tests/dashboard/
//! drive.py): sign in (a wrong secret refused), give an instruction and
//! watch it go live, read its diff, roll it back and find the rollback in
//! the ledger's chart, approve an upgrade held for approval with the
//! keyboard, scan and queue a finding; no console error on any page;
//! every page's layout measured at 1280 and 390 px (nothing wider than
//! the screen, every action button shown whole), with screenshots of
//! each. And, without a
//! browser, the reads and the sign-in the dashboard adds to the API, with
//! their refusals.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::agent::*;
use crate::support::api::*;
use crate::support::llm::{Api as Wire, LlmServer};
use crate::support::*;

/// Python sources the scan finds things in: an import cycle and a
/// duplicated function.
const CYCLE_A: &str = "from pkg import b\n\n\ndef ping():\n    return b.pong()\n";
const CYCLE_B: &str = "from pkg import a\n\n\ndef pong():\n    return a.ping\n";
const TWIN: &str = "def total(rows):
    out = 0
    seen = set()
    for row in rows:
        if row.get(\"skip\"):
            continue
        key = (row[\"sku\"], row[\"day\"])
        if key in seen:
            continue
        seen.add(key)
        price = row[\"price\"] * row[\"count\"]
        if price > 100:
            price = price * 0.9
        elif price < 5:
            price = price + 1
        tax = price * row.get(\"tax\", 0.2)
        out += price + tax
    return round(out, 2)
";

/// A reply turning VERSION v1 into v2, as a unified diff.
fn v2_reply() -> String {
    "Here it is.\n\n```diff\n--- a/VERSION\n+++ b/VERSION\n@@ -1 +1 @@\n-v1\n+v2\n```\n".to_string()
}

/// The agent target with an LLM at `server`, NOTES.md high risk (an
/// upgrade touching it waits for approval), and code for the scan.
fn dashboard_target(server: &LlmServer) -> (Target, u16) {
    let port = free_port();
    let config = agent_config(port).replace("[target]\n", "[target]\nhigh_risk = [\"NOTES.md\"]\n")
        + &format!(
            "\n[provider.llm.test]\napi = \"openai\"\nmodel = \"gpt-4o-mini\"\nbase_url = \"{}\"\ntimeout = \"20s\"\n",
            server.base_url()
        );
    let t = Target::agent_with(&config);
    t.write("pkg/__init__.py", "");
    t.write("pkg/a.py", CYCLE_A);
    t.write("pkg/b.py", CYCLE_B);
    t.write("billing.py", TWIN);
    t.write(
        "invoices.py",
        &TWIN.replace("total", "invoice_total").replace("rows", "items"),
    );
    t.commit("code to scan");
    (t, port)
}

fn chromium() -> PathBuf {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        })
    });
    found.unwrap_or_else(|| {
        panic!(
            "Chromium is missing: the dashboard tests drive Debian's `chromium` headless. Install it with `apt-get install -y chromium` (scripts/test.sh does when run as root)"
        )
    })
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_browser_signs_in_upgrades_rolls_back_and_approves_on_the_dashboard() {
    let browser = chromium();
    let python = tool_python("playwright");
    let server = LlmServer::start(Wire::Openai);
    let (t, port) = dashboard_target(&server);
    let d = start(&t);
    let api = Api::of(&d);
    let login = d.info["dashboard_login"]
        .as_str()
        .expect("graft run --json prints the dashboard's login link")
        .to_string();
    assert!(login.starts_with(&format!("{}/#login=", api.url)), "{login}");

    // Agent state to show, and an upgrade held for approval (NOTES.md is
    // high risk).
    api.signed(
        "PUT",
        "/v1/agent/task",
        r#"{"content":"answer greetings with the version"}"#,
    )
    .expect(200);
    api.signed(
        "POST",
        "/v1/agent/history",
        r#"{"role":"user","content":"which version are you?"}"#,
    )
    .expect(201);
    api.signed(
        "POST",
        "/v1/agent/history",
        r#"{"role":"assistant","content":"hello from v1"}"#,
    )
    .expect(201);
    let held = api.signed(
        "POST",
        "/v1/upgrades",
        &edits_request(
            &json!([{ "op": "create", "path": "NOTES.md", "content": "# notes\n" }]).to_string(),
            r#""title":"add notes""#,
        ),
    );
    held.expect(202);
    let held = held.json()["id"].as_str().unwrap().to_string();
    let waiting = api.wait_state(&held, &["awaiting_approval"]);
    assert_eq!(waiting["upgrade"]["risk"], "high", "{waiting}");

    // The LLM stand-in answers the preview, then the execution.
    server.reply(&v2_reply());
    server.reply(&v2_reply());

    let shots = screenshots_dir();
    println!("dashboard screenshots: {}", shots.display());
    let out = std::process::Command::new(&python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard/drive.py"))
        .args([
            "--url", &api.url, "--secret", SECRET, "--login", &login, "--held", &held,
        ])
        .arg("--chromium")
        .arg(&browser)
        .arg("--shots")
        .arg(&shots)
        .output()
        .expect("run the browser driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser driver failed:\n{stdout}\n{stderr}\n--- upgrades\n{}\n--- graft run\n{}",
        api.get("/v1/upgrades?limit=10").body,
        d.stderr()
    );
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("the driver's last line is not JSON ({e}):\n{stdout}\n{stderr}"));

    // Sign-in: the wrong secret refused with the page's words, then in.
    assert_eq!(
        r["wrong_secret"],
        "Wrong secret: the server refused the signature. Check $GRAFT_API_SECRET (or .graft/api-secret) of this graft run."
    );
    assert_eq!(r["signed_in"], true);
    // The instruction: previewed, executed, seen going live.
    assert_eq!(r["preview"], "passed");
    let id = r["executed"].as_str().unwrap().to_string();
    let seen: Vec<&str> = r["states_seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(seen.last(), Some(&"promoted"), "{seen:?}");
    assert!(
        seen.len() >= 2,
        "the live view should move through states, saw {seen:?}"
    );
    // Its diff, both views.
    assert!(r["diff_unified"].as_str().unwrap().contains("v2"), "{r}");
    assert_eq!(r["diff_split_rows"].as_u64().map(|n| n >= 1), Some(true), "{r}");
    // Rolled back, and the ledger's chart shows it.
    assert_eq!(r["rolled_back_state"], "rolled_back");
    assert_eq!(r["rollback_chart"], json!([{ "cause": "manual", "count": "1" }]));
    // Approved with the keyboard: it ran and went live.
    assert_eq!(r["approved_state"], "promoted");
    // The scan: a cycle drawn, the duplicates side by side.
    assert!(
        r["cycle_nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("pkg")),
        "{r}"
    );
    assert_eq!(r["duplicate_paths"], json!(["billing.py", "invoices.py"]));
    assert!(r["duplicate_first_line"].as_str().unwrap().contains("def"), "{r}");
    let (suggestion, from_scan) = (
        r["queued_suggestion"][0].as_str().unwrap().to_string(),
        r["queued_suggestion"][1].as_str().unwrap().to_string(),
    );
    // A medium-risk finding: it waits for approval.
    let queued = api.wait_state(&from_scan, &["awaiting_approval"]);
    assert_eq!(queued["upgrade"]["kind"], "suggestion", "{queued}");
    assert_eq!(queued["upgrade"]["requested_by"], "dashboard:dashboard");
    assert_eq!(
        queued["upgrade"]["request"]["submission"]["suggestion"],
        suggestion.as_str()
    );
    assert_eq!(r["agent_task"], "answer greetings with the version");
    assert_eq!(r["console_errors"], json!([]));
    assert_eq!(r["phone_login_link"], true);
    // Every page at 1280 and 390 px: nothing wider than the screen, and
    // the action buttons each must show, shown whole (drive.py's LAYOUT
    // says what is measured).
    let must_show: &[(&str, &[&str])] = &[
        ("live", &["preview-button", "execute"]),
        ("queue", &["approve", "reject", "cancel", "rollback"]),
        ("upgrade", &["unified", "split"]),
        ("upgrade-waiting", &["approve", "reject", "cancel"]),
        ("upgrade-promoted", &["rollback"]),
        ("ledger", &[]),
        ("scan", &["start-scan"]),
        ("agent", &[]),
    ];
    let mut wrong = Vec::new();
    for width in ["desktop", "phone"] {
        for (page, buttons) in must_show {
            let measured = &r["layout"][width][page];
            for problem in measured["problems"]
                .as_array()
                .unwrap_or_else(|| panic!("no layout of {page} at {width}: {r}"))
            {
                wrong.push(format!("{page} ({width}): {}", problem.as_str().unwrap()));
            }
            let shown: Vec<&str> = measured["buttons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_str().unwrap())
                .collect();
            for b in buttons.iter().chain(&["sign-out"]) {
                if !shown.contains(b) {
                    wrong.push(format!("{page} ({width}): no `{b}` button among {shown:?}"));
                }
            }
            let f = shots.join(format!("{page}-{width}.png"));
            assert!(f.is_file(), "screenshot {} missing", f.display());
        }
    }
    assert!(wrong.is_empty(), "the dashboard's layout:\n{}", wrong.join("\n"));

    // What the browser did is what the ledger and the target say.
    let u = api.get(&format!("/v1/upgrades/{id}")).json();
    assert_eq!(u["upgrade"]["state"], "rolled_back");
    assert_eq!(u["upgrade"]["requested_by"], "dashboard:dashboard");
    assert_eq!(u["rollbacks"][0]["requested_by"], "dashboard:dashboard");
    let approved = api.get(&format!("/v1/upgrades/{held}")).json();
    assert_eq!(
        approved["approvals"][0]["approved_by"], "dashboard:dashboard",
        "{approved}"
    );
    assert_eq!(hello(port), "hello from v1\n");
    assert_eq!(t.read("NOTES.md"), "# notes\n");
    // The login link was used by the phone's browser: it works once.
    let token = login.rsplit('=').next().unwrap();
    let again = api.send(
        "POST",
        "/v1/session/link",
        &[("content-type", "application/json")],
        json!({ "token": token }).to_string().as_bytes(),
    );
    assert_eq!((again.status, again.code().as_str()), (401, "bad_login_link"));
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn the_dashboards_reads_and_sign_in_refuse_what_they_must() {
    let (t, _port) = api_target("");
    t.write("lib/util.py", "a = 1\nb = 2\nc = 3\n");
    t.write(".env", "TOKEN=hunter2\n");
    t.commit("files");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "outside\n").unwrap();
    symlink(&outside.path().join("secret.txt"), &t.path("escape.txt"));
    let d = start(&t);
    let api = Api::of(&d);

    // The page and its files, under a strict Content-Security-Policy.
    let page = api.get("/");
    page.expect(200);
    assert!(
        page.body
            .contains("<script type=\"module\" src=\"/dashboard/app.js\">"),
        "{}",
        page.body
    );
    let csp = page
        .header("content-security-policy")
        .unwrap_or_default()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let js = api.get("/dashboard/app.js");
    js.expect(200);
    assert!(js.header("content-type").unwrap().starts_with("text/javascript"));
    let nope = api.get("/dashboard/nope.js");
    assert_eq!(
        (nope.status, nope.body.as_str()),
        (404, "no dashboard file `nope.js`")
    );

    // File excerpts: lines of a file inside the repo, nothing else.
    let f = api.get("/v1/files?path=lib/util.py&start=2&count=2");
    f.expect(200);
    assert_eq!(
        f.json(),
        json!({ "path": "lib/util.py", "start": 2, "end": 3, "total_lines": 3, "lines": ["b = 2", "c = 3"] })
    );
    let past = api.get("/v1/files?path=lib/util.py&start=9").json();
    assert_eq!(
        (past["lines"].clone(), past["total_lines"].clone()),
        (json!([]), json!(3))
    );
    let refused = [
        (
            "/v1/files?path=../x",
            400,
            "bad_path",
            "the path `../x` contains `..`",
        ),
        (
            "/v1/files?path=/etc/passwd",
            400,
            "bad_path",
            "the path `/etc/passwd` is absolute",
        ),
        (
            "/v1/files?path=.git/config",
            400,
            "bad_path",
            "the path `.git/config` is inside `.git`",
        ),
        (
            "/v1/files?path=graft.toml",
            403,
            "protected",
            "`graft.toml` is protected (pattern `graft.toml`): the dashboard does not show it",
        ),
        ("/v1/files?path=.env", 403, "protected", "`.env` is protected"),
        (
            "/v1/files?path=.graft/ledger.db",
            403,
            "protected",
            "is protected",
        ),
        (
            "/v1/files?path=escape.txt",
            403,
            "symlink_escape",
            "`escape.txt` goes through the symbolic link `escape.txt`",
        ),
        (
            "/v1/files?path=lib/none.py",
            404,
            "not_found",
            "no file `lib/none.py` in the repository",
        ),
        (
            "/v1/files?path=lib",
            404,
            "not_a_file",
            "`lib` is not a regular file",
        ),
        (
            "/v1/files?path=lib/util.py&count=501",
            400,
            "bad_query",
            "`count` must be from 1 to 500, got 501",
        ),
        (
            "/v1/files?path=lib/util.py&start=0",
            400,
            "bad_query",
            "`start` must be from 1",
        ),
    ];
    for (path, status, code, words) in refused {
        let r = api.get(path);
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, code),
            "{path}: {}",
            r.body
        );
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(words), "{path}: {message}");
    }

    // Chart series.
    let s = api.get("/v1/ledger/series");
    s.expect(200);
    assert_eq!(
        s.json(),
        json!({ "by_day": [], "by_kind": [], "gates": [], "rollbacks": [], "cost": [] })
    );
    assert_eq!(api.get("/v1/ledger/series?limit=0").code(), "bad_query");

    // Sessions: none yet; a bad login token is refused and opens nothing.
    assert_eq!(api.get("/v1/session").json(), json!({ "signed_in": false }));
    let bad = api.send(
        "POST",
        "/v1/session/link",
        &[("content-type", "application/json")],
        br#"{"token":"00"}"#,
    );
    assert_eq!((bad.status, bad.code().as_str()), (401, "bad_login_link"));
    assert!(bad.header("set-cookie").is_none());
    let garbage = api.send("POST", "/v1/session/link", &[], b"\xff\xfe");
    assert_eq!((garbage.status, garbage.code().as_str()), (400, "bad_body"));
    // A signed session: the cookie gives its CSRF token back to the page.
    let opened = api.signed("POST", "/v1/session", "");
    opened.expect(201);
    let csrf = opened.json()["csrf_token"].as_str().unwrap().to_string();
    let cookie = opened
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let back = api.send("GET", "/v1/session", &[("cookie", &cookie)], b"").json();
    assert_eq!(
        (back["signed_in"].as_bool(), back["csrf_token"].as_str()),
        (Some(true), Some(csrf.as_str()))
    );

    // Reject: only an upgrade awaiting approval; by session, with the token.
    let waiting = "upg_20261121_103001_a1b2c3";
    t.insert_awaiting_approval(waiting);
    let path = format!("/v1/upgrades/{waiting}/reject");
    let no_token = api.send("POST", &path, &[("cookie", &cookie)], b"");
    assert_eq!((no_token.status, no_token.code().as_str()), (401, "bad_csrf"));
    assert_eq!(t.upgrade_row(waiting).0, "awaiting_approval");
    let r = api.send(
        "POST",
        &path,
        &[
            ("cookie", &cookie),
            ("x-csrf-token", &csrf),
            ("content-type", "application/json"),
        ],
        br#"{"requested_by":"ada","reason":"not now"}"#,
    );
    r.expect(200);
    assert_eq!(
        r.json(),
        json!({ "id": waiting, "state": "cancelled", "rejected_by": "dashboard:ada" })
    );
    assert_eq!(t.upgrade_row(waiting).0, "cancelled");
    let again = api.send(
        "POST",
        &path,
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        b"",
    );
    assert_eq!(
        (again.status, again.code().as_str()),
        (409, "not_awaiting_approval")
    );
    assert_eq!(
        again.json()["error"]["message"],
        format!("upgrade {waiting} is cancelled; only an upgrade awaiting approval can be rejected")
    );
    let list = api.send(
        "POST",
        &path,
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        b"[null, null]",
    );
    assert_eq!((list.status, list.code().as_str()), (400, "bad_body"));
    let missing = api.signed("POST", "/v1/upgrades/upg_20000101_000000_abcdef/reject", "");
    assert_eq!((missing.status, missing.code().as_str()), (404, "not_found"));
}

#[test]
fn a_file_excerpt_never_follows_a_link_to_a_protected_file() {
    let (t, _port) = api_target("");
    t.write(".env", "TOKEN=hunter2\n");
    t.write("keys/server.pem", "-----BEGIN PRIVATE KEY-----\nsecretkeybytes\n");
    t.write("lib/util.py", "a = 1\n");
    t.commit("files");
    // Links inside the repo, each named like a harmless file: to `.env`,
    // to `graft.toml`, to a key, and a folder leading into `.graft`.
    symlink(Path::new(".env"), &t.path("notes.txt"));
    symlink(Path::new("graft.toml"), &t.path("settings.txt"));
    symlink(Path::new("keys/server.pem"), &t.path("cert.txt"));
    symlink(Path::new(".graft"), &t.path("state"));
    symlink(Path::new("lib"), &t.path("alias"));
    let config_line = "no_restart = [\"docs/**\"]";
    assert!(t.read("graft.toml").contains(config_line));
    let d = start(&t);
    let api = Api::of(&d);

    let refused = [
        (
            "notes.txt",
            "`notes.txt` goes through the symbolic link `notes.txt`",
        ),
        (
            "settings.txt",
            "`settings.txt` goes through the symbolic link `settings.txt`",
        ),
        ("cert.txt", "`cert.txt` goes through the symbolic link `cert.txt`"),
        (
            "state/ledger.db",
            "`state/ledger.db` goes through the symbolic link `state`",
        ),
        // A link to an open file is refused too: what is shown is always
        // the file at the path that was checked.
        (
            "alias/util.py",
            "`alias/util.py` goes through the symbolic link `alias`",
        ),
    ];
    for (path, words) in refused {
        let r = api.get(&format!("/v1/files?path={path}"));
        assert_eq!(
            (r.status, r.code().as_str()),
            (403, "symlink_escape"),
            "{path}: {}",
            r.body
        );
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(words), "{path}: {message}");
        assert!(message.contains("never through a link"), "{path}: {message}");
        for secret in ["hunter2", "secretkeybytes", "SQLite format", config_line] {
            assert!(!r.body.contains(secret), "{path} showed `{secret}`: {}", r.body);
        }
    }
    // The real places answer as before: the open file is shown, the
    // protected ones are refused for what they are.
    let util = api.get("/v1/files?path=lib/util.py");
    util.expect(200);
    assert_eq!(util.json()["lines"], json!(["a = 1"]));
    for path in [".env", "graft.toml", "keys/server.pem"] {
        let r = api.get(&format!("/v1/files?path={path}"));
        assert_eq!(
            (r.status, r.code().as_str()),
            (403, "protected"),
            "{path}: {}",
            r.body
        );
    }
}

#[test]
fn a_file_git_ignores_is_not_shown_and_a_tracked_one_is() {
    let (t, _port) = api_target("");
    t.write(".gitignore", &(t.read(".gitignore") + "local/\n*.secret\n"));
    t.write("lib/util.py", "a = 1\n");
    t.write("kept.secret", "shipped on purpose\n");
    t.commit("files");
    t.git(&["add", "--force", "kept.secret"]);
    t.commit("a tracked file an ignore pattern matches");
    t.write("local/creds.txt", "password=hunter2\n");
    t.write("api.secret", "sk-live-bytes\n");
    t.write(".git/info/exclude", "scratch.txt\n");
    t.write("scratch.txt", "draft: hunter3\n");
    let d = start(&t);
    let api = Api::of(&d);

    for path in ["local/creds.txt", "api.secret", "scratch.txt", "local/none.txt"] {
        let r = api.get(&format!("/v1/files?path={path}"));
        assert_eq!(
            (r.status, r.code().as_str()),
            (403, "ignored"),
            "{path}: {}",
            r.body
        );
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            message.contains(&format!("`{path}` is ignored by git")),
            "{message}"
        );
        for secret in ["hunter2", "sk-live", "hunter3"] {
            assert!(!r.body.contains(secret), "{path} showed `{secret}`: {}", r.body);
        }
    }
    let tracked = api.get("/v1/files?path=kept.secret");
    tracked.expect(200);
    assert_eq!(tracked.json()["lines"], json!(["shipped on purpose"]));
    let util = api.get("/v1/files?path=lib/util.py");
    util.expect(200);
    assert_eq!(util.json()["lines"], json!(["a = 1"]));
}
