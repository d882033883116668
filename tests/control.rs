//! The control plane seen by its users' tools: Prometheus's parser on
//! `/metrics`, the README's curl + openssl example run as written, the
//! `graft` CLI against a daemon by URL, connection and body limits, and
//! schemathesis exercising the OpenAPI document.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::agent::*;
use crate::support::api::*;
use crate::support::*;

fn parse_metrics(text: &str) -> Vec<Value> {
    let python = tool_python("prometheus_client");
    let mut child = Command::new(python)
        .arg(script("parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The value of the sample `name` with these labels.
fn sample(families: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    families
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
}

#[test]
fn metrics_parse_as_openmetrics_and_count_what_happened() {
    let (t, _port) = api_target("");
    let d = start(&t);
    let api = Api::of(&d);
    let report = api.upgrade_wait(&edits_request(&version_edits("v2"), ""));
    assert_eq!(report["state"], "promoted");
    let id = report["id"].as_str().unwrap();
    api.signed("POST", &format!("/v1/upgrades/{id}/rollback"), "")
        .expect(200);
    let m = api.get("/metrics");
    m.expect(200);
    assert!(
        m.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{:?}",
        m.header("content-type")
    );
    let f = parse_metrics(&m.body);
    let kind = |name: &str| {
        f.iter()
            .find(|x| x["name"] == name)
            .map(|x| x["type"].as_str().unwrap().to_string())
    };
    assert_eq!(kind("graft_upgrades").as_deref(), Some("gauge"));
    assert_eq!(kind("graft_gate_duration_seconds").as_deref(), Some("histogram"));
    assert_eq!(kind("graft_http_requests").as_deref(), Some("counter"));
    assert_eq!(kind("graft_live_release").as_deref(), Some("info"));
    assert_eq!(
        sample(
            &f,
            "graft_upgrades",
            &[("state", "rolled_back"), ("dry_run", "false")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&f, "graft_gate_duration_seconds_count", &[("gate", "check")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &f,
            "graft_gate_duration_seconds_bucket",
            &[("gate", "check"), ("le", "+Inf")]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&f, "graft_deploys_total", &[]), Some(1.0));
    assert_eq!(
        sample(&f, "graft_release_switches_total", &[("cause", "rollback")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&f, "graft_rollbacks_total", &[("cause", "manual")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&f, "graft_live_release_info", &[("commit", &t.head())]),
        Some(1.0)
    );
    assert_eq!(sample(&f, "graft_live_release_ready", &[]), Some(1.0));
    assert_eq!(
        sample(
            &f,
            "graft_http_requests_total",
            &[("method", "POST"), ("route", "/v1/upgrades"), ("status", "200")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&f, "graft_upgrades_accepted_total", &[("kind", "edits")]),
        Some(1.0)
    );
    drop(d);
}

/// The shell block of the README after `<!-- signed-request-example -->`.
fn readme_example() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (_, after) = readme
        .split_once("<!-- signed-request-example -->")
        .expect("the README marks its signed-request example");
    let block = after.split_once("```sh\n").expect("a sh block").1;
    block.split_once("```").expect("the block ends").0.to_string()
}

#[test]
fn the_readme_curl_example_signs_a_request_that_goes_through() {
    let (t, port) = api_target("");
    let d = start(&t);
    let api = Api::of(&d);
    let example = readme_example();
    assert!(example.contains("openssl dgst -sha256 -hmac"), "{example}");
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &example])
        .env("GRAFT_URL", &api.url)
        .env("GRAFT_API_SECRET", SECRET)
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the README example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("the example's answer is not JSON ({e}): {stdout}"));
    let id = answer["id"].as_str().unwrap_or_else(|| panic!("no id: {stdout}"));
    assert_eq!(api.wait_ended(id)["upgrade"]["state"], "promoted");
    assert_eq!(hello(port), "hello from v2\n");
    drop(d);
}

#[test]
fn the_cli_signs_for_you_when_given_a_url() {
    let (t, port) = api_target("");
    let d = start(&t);
    let api = Api::of(&d);
    // From outside any repo: the URL and the secret are all it needs.
    let elsewhere = tempfile::tempdir().unwrap();
    let edits = t.input("v2.json", version_edits("v2").as_bytes());
    let graft = |args: &[&str], secret: &str| {
        let out = t
            .graft_command(args, &[("GRAFT_URL", &api.url), ("GRAFT_API_SECRET", secret)])
            .current_dir(elsewhere.path())
            .output()
            .unwrap();
        Run::from(out, args)
    };
    let run = graft(&["upgrade", "--edits", edits.to_str().unwrap(), "--json"], SECRET);
    run.success();
    let report = run.json();
    assert_eq!(report["state"], "promoted");
    assert_eq!(hello(port), "hello from v2\n");
    let id = report["id"].as_str().unwrap().to_string();
    assert!(t.upgrade_row(&id).0 == "promoted");
    let requested_by: String = t
        .ledger()
        .query_row("SELECT requested_by FROM upgrades WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(requested_by.starts_with("api:cli:"), "{requested_by}");
    let status = graft(&["status", "--json"], SECRET);
    status.success();
    assert_eq!(status.json()["recent"][0]["id"], id.as_str());
    graft(&["status"], SECRET).success().stdout_has(&id);
    // A wrong secret: refused, with the API's reason, and nothing changes.
    let before = t.snapshot();
    graft(&["rollback", &id], "a-wrong-secret-0123456789")
        .code(1)
        .stderr_has("the signature does not match");
    before.assert_same(&t.snapshot(), "wrong secret");
    graft(&["rollback", &id], SECRET)
        .success()
        .stdout_has("revert commit");
    assert_eq!(hello(port), "hello from v1\n");
    graft(&["cancel", &id], SECRET)
        .success()
        .stdout_has("rolled_back (it had ended already; nothing to do)");
    graft(&["cancel", "upg_20000101_000000_abcdef"], SECRET)
        .code(6)
        .stderr_has("no upgrade `upg_20000101_000000_abcdef`");
    // The whole upgrade, read through the API as from the ledger.
    graft(&["show", &id], SECRET)
        .success()
        .stdout_has(&format!("upgrade {id}  "))
        .stdout_has("  state      rolled_back  (manual_rollback)\n")
        .stdout_has("rollbacks\n");
    let shown = graft(&["show", &id, "--json"], SECRET);
    shown.success();
    assert_eq!(shown.json()["upgrade"]["id"], id.as_str());
    assert_eq!(shown.json()["rollbacks"][0]["cause"], "manual");
    graft(&["show", "upg_20000101_000000_abcdef"], SECRET)
        .code(6)
        .stderr_has("no upgrade `upg_20000101_000000_abcdef`");
    // A command the API does not serve takes no --url, and $GRAFT_URL is
    // not its business: here, outside any repo, it says there is none.
    graft(&["diff", &id, "--url", &api.url], SECRET)
        .code(2)
        .stderr_has("error: unexpected argument '--url' found");
    graft(&["diff", &id], SECRET)
        .code(5)
        .stderr_has("is not inside a git repository");
    // No secret at all.
    let args = ["status", "--url", &api.url];
    let out = t
        .graft_command(&args, &[])
        .current_dir(elsewhere.path())
        .env_remove("GRAFT_API_SECRET")
        .env_remove("GRAFT_API_SECRET_FILE")
        .output()
        .unwrap();
    let run = Run::from(out, &args);
    run.code(2)
        .stderr_has("--url needs the API's shared secret: set GRAFT_API_SECRET");
    drop(d);
}

#[test]
fn slow_clients_time_out_and_connections_are_capped() {
    let (t, _port) =
        api_target("[api]\nmax_connections = 2\nrequest_timeout = \"2s\"\nmax_body_bytes = 4096\n");
    let d = start(&t);
    let api = Api::of(&d);
    let addr = ("127.0.0.1", api.port());
    // A slow client: headers never finished. The server hangs up.
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    // An error here is the client's own read timeout: the server held on.
    let read = slow.read_to_end(&mut buf);
    assert!(read.is_ok(), "the server hung up on the slow client: {read:?}");
    let n = read.unwrap();
    assert!(
        n == 0 || String::from_utf8_lossy(&buf).contains("408"),
        "the slow client was cut off: {}",
        String::from_utf8_lossy(&buf)
    );
    // A body that never arrives in full: 408, nothing done.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let sig = api.signature("PUT", "/v1/agent/task", b"");
    write!(
        s,
        "PUT /v1/agent/task HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nX-Timestamp: {}\r\nX-Challenge: {}\r\nX-Signature: {}\r\n\r\n{{\"content\":",
        sig.timestamp, sig.challenge, sig.signature
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert_eq!(api.get("/v1/agent/task").code(), "no_task");

    // Two idle connections take both slots; a third waits until the
    // server drops one of them for idling.
    let mut held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let third = std::thread::spawn(move || {
        let r = get(addr.1, "/health");
        (r, Instant::now())
    });
    for h in &mut held {
        let mut b = [0u8; 16];
        let read = h.read(&mut b);
        assert!(
            matches!(read, Ok(0)),
            "an idle connection is closed by the server: {read:?}"
        );
    }
    let (r, answered) = third.join().unwrap();
    assert_eq!(r.unwrap().0, 200, "served once a slot was free");
    // Not a speed check: the slots were taken for the 2 s the idle
    // connections were allowed, so the third cannot have been served sooner.
    assert!(
        answered.duration_since(started) >= Duration::from_secs(1),
        "the third waited for a slot"
    );
    drop(d);
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Each operation of the OpenAPI document (`METHOD /path/{param}`) with
/// the statuses it documents (`None`: it has a `default`, any status).
fn documented_statuses(doc: &Value) -> BTreeMap<String, Option<BTreeSet<u16>>> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let statuses = (!responses.contains_key("default"))
                .then(|| responses.keys().map(|k| k.parse::<u16>().unwrap()).collect());
            ops.insert(format!("{} {path}", method.to_uppercase()), statuses);
        }
    }
    ops
}

/// The operation a request went to: the documented path whose segments
/// match the request's (a `{param}` matches any one segment; the most
/// literal segments wins, as a router would route it).
fn operation_of(ops: &BTreeMap<String, Option<BTreeSet<u16>>>, method: &str, target: &str) -> Option<String> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').collect();
    ops.keys()
        .filter_map(|op| {
            let (m, template) = op.split_once(' ')?;
            let parts: Vec<&str> = template.split('/').collect();
            if m != method || parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (t, s) in parts.iter().zip(&segments) {
                if t.starts_with('{') && t.ends_with('}') {
                    if s.is_empty() {
                        return None;
                    }
                } else if t == s {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, op.clone()))
        })
        .max()
        .map(|(_, op)| op)
}

/// What every documented operation answered, read from the signing
/// proxy's log (`METHOD PATH STATUS` a line): status → how many times.
/// Requests to no documented operation (schemathesis trying methods a
/// path does not have) are left out.
fn answers_by_operation(
    ops: &BTreeMap<String, Option<BTreeSet<u16>>>,
    log: &str,
) -> BTreeMap<String, BTreeMap<u16, usize>> {
    let mut answers: BTreeMap<String, BTreeMap<u16, usize>> = BTreeMap::new();
    for line in log.lines() {
        let mut parts = line.split(' ');
        let (Some(method), Some(target), Some(status)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let Some(op) = operation_of(ops, method, target) {
            *answers
                .entry(op)
                .or_default()
                .entry(status.parse().unwrap())
                .or_default() += 1;
        }
    }
    answers
}

/// Against the document, per operation: reached, at least once answered
/// with a documented success, and never with a status it does not list.
fn operations_untrue_to_the_document(
    ops: &BTreeMap<String, Option<BTreeSet<u16>>>,
    answers: &BTreeMap<String, BTreeMap<u16, usize>>,
    excluded: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    for (op, documented) in ops {
        if excluded.contains(&op.as_str()) {
            continue;
        }
        let Some(got) = answers.get(op) else {
            problems.push(format!("{op}: never reached"));
            continue;
        };
        let listed = |s: &u16| documented.as_ref().is_none_or(|d| d.contains(s));
        let undocumented: Vec<u16> = got.keys().copied().filter(|s| !listed(s)).collect();
        if !undocumented.is_empty() {
            problems.push(format!(
                "{op}: answered {undocumented:?}, which its document does not list ({documented:?})"
            ));
        }
        if !got.keys().any(|s| (200..300).contains(s) && listed(s)) {
            problems.push(format!(
                "{op}: never answered with a documented success, only {got:?}"
            ));
        }
    }
    problems
}

#[test]
fn schemathesis_finds_the_api_true_to_its_openapi_document() {
    // NOTES.md is high risk: an upgrade touching it waits for approval.
    let port = free_port();
    let t = Target::agent_with(
        &agent_config(port).replace("[target]\n", "[target]\nhigh_risk = [\"NOTES.md\"]\n"),
    );
    let d = start(&t);
    let api = Api::of(&d);
    // Something for each operation that acts on what exists to act on,
    // so that valid input can succeed: a promoted upgrade (read, its
    // diff, rolled back), three held for approval (approved, rejected,
    // cancelled), a scan, the agent's task, a tracked file, the login
    // link's one-time token.
    let promoted = api.upgrade_wait(&edits_request(&docs_edit("seen by schemathesis\n"), ""));
    assert_eq!(promoted["state"], "promoted", "{promoted}");
    let promoted = promoted["id"].as_str().unwrap().to_string();
    let held = |n: usize| {
        let r = api.signed(
            "POST",
            "/v1/upgrades",
            &edits_request(
                &serde_json::json!([{ "op": "create", "path": "NOTES.md", "content": format!("# notes {n}\n") }])
                    .to_string(),
                "",
            ),
        );
        r.expect(202);
        let id = r.json()["id"].as_str().unwrap().to_string();
        api.wait_state(&id, &["awaiting_approval"]);
        id
    };
    let (to_approve, to_reject, to_cancel) = (held(1), held(2), held(3));
    let scan = api.signed("POST", "/v1/scans", "");
    scan.expect(201);
    let scan = scan.json()["scan"]["id"].as_str().unwrap().to_string();
    api.signed("PUT", "/v1/agent/task", r#"{"content":"answer greetings"}"#)
        .expect(200);
    let login = d.info["dashboard_login"].as_str().unwrap();
    let login_token = login.split_once("#login=").unwrap().1.to_string();

    let python = tool_python("schemathesis");
    let (work, log) = {
        let work = tempfile::tempdir().unwrap();
        let log = work.path().join("exchanges.log");
        (work, log)
    };
    // Schemathesis cannot sign: a proxy that does (with its own code)
    // lets its requests reach the handlers instead of stopping at 401,
    // and logs what each one was answered.
    let mut proxy = Child(
        Command::new(&python)
            .arg(script("signing_proxy.py"))
            .arg(&api.url)
            .arg(SECRET)
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(proxy.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let proxy_url = format!("http://127.0.0.1:{}", line.trim());
    // Half the values drawn for an id (or a file's path, or the token)
    // are ones that exist; the other half are schemathesis's own, so unknown and
    // malformed ids are still tried.
    let mut config = String::new();
    for (name, value) in [
        ("promoted", &promoted),
        ("to_approve", &to_approve),
        ("to_reject", &to_reject),
        ("to_cancel", &to_cancel),
        ("scan", &scan),
        ("file", &"VERSION".to_string()),
        ("login_token", &login_token),
    ] {
        config += &format!("[dictionaries.{name}]\nvalues = [\"{value}\"]\n\n");
    }
    for (operation, parameter, dictionary) in [
        ("GET /v1/upgrades/{id}", "path.id", "promoted"),
        ("GET /v1/upgrades/{id}/diff", "path.id", "promoted"),
        ("POST /v1/upgrades/{id}/rollback", "path.id", "promoted"),
        ("POST /v1/upgrades/{id}/approve", "path.id", "to_approve"),
        ("POST /v1/upgrades/{id}/reject", "path.id", "to_reject"),
        ("POST /v1/upgrades/{id}/cancel", "path.id", "to_cancel"),
        ("GET /v1/scans/{id}", "path.id", "scan"),
        ("GET /v1/files", "query.path", "file"),
        ("POST /v1/session/link", "body.token", "login_token"),
    ] {
        config += &format!(
            "[[operations]]\ninclude-name = \"{operation}\"\nparameters = {{ \"{parameter}\" = {{ dictionary = \"{dictionary}\", probability = 0.5 }} }}\n\n"
        );
    }
    let config_file = work.path().join("schemathesis.toml");
    std::fs::write(&config_file, &config).unwrap();
    // The event stream never ends; its own test is in tests/api.rs.
    let excluded = ["GET /events"];
    let out = Command::new(&python)
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(&config_file)
        .arg("run")
        .arg(format!("{proxy_url}/openapi.json"))
        .args(["--url", &proxy_url])
        .args(["--checks", "all"])
        // The proxy signs everything, so "accepts a request without (or
        // with a wrong) signature" is the proxy's doing: those two are
        // tested without it in tests/api.rs.
        .args(["--exclude-checks", "ignored_auth,missing_required_header"])
        // Bounded: a fixed number of examples per operation, one worker.
        .args([
            "--max-examples",
            "10",
            "--seed",
            "7",
            "--workers",
            "1",
            "--no-shrink",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--generation-database", "none", "--suppress-health-check", "all"])
        .args(["--request-timeout", "120", "--no-color"])
        .args(["--exclude-path", "/events"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // Its caches of past cases stay out of the repo (and out of the next run).
        .current_dir(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{}\n--- graft run\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.stderr()
    );
    // Per operation of the document: what it answered.
    let doc: Value = serde_json::from_str(&api.get("/openapi.json").body).unwrap();
    let ops = documented_statuses(&doc);
    let answers = answers_by_operation(&ops, &std::fs::read_to_string(&log).unwrap());
    let table: String = answers
        .iter()
        .map(|(op, got)| format!("{op}: {got:?}\n"))
        .collect();
    let problems = operations_untrue_to_the_document(&ops, &answers, &excluded);
    assert!(
        problems.is_empty(),
        "{}\n--- what each operation answered\n{table}--- schemathesis\n{stdout}",
        problems.join("\n")
    );
    assert!(
        t.count("SELECT COUNT(*) FROM upgrades") > 4,
        "signed requests reached the handlers (the proxy signs them)"
    );
    assert_eq!(
        api.get("/health").json()["status"],
        "ok",
        "graft run still serves"
    );
    drop(d);
}
