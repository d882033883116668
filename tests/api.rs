//! The HTTP API of a real `graft run` on loopback, driven by a real HTTP
//! client: every endpoint, signed upgrades and rollbacks, each way a
//! request can fail authentication (refused, nothing changed), the rate
//! limit across restarts, sessions, server-sent events, metrics, limits.

use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::agent::*;
use crate::support::api::*;
use crate::support::*;

fn upgrades_in_ledger(t: &Target) -> i64 {
    t.count("SELECT COUNT(*) FROM upgrades")
}

#[test]
fn every_endpoint_answers_and_a_signed_upgrade_goes_through() {
    let (t, port) = api_target("");
    let d = start(&t);
    let api = Api::of(&d);
    assert!(
        api.url.starts_with("http://127.0.0.1:"),
        "loopback by default: {}",
        api.url
    );
    assert_eq!(d.info["endpoints"]["api_secret"], "$GRAFT_API_SECRET");

    // Reads.
    let h = api.get("/health");
    h.expect(200);
    assert_eq!(h.json()["status"], "ok");
    assert_eq!(h.json()["live_commit"], t.head().as_str());
    let doc = api.get("/openapi.json");
    doc.expect(200);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let c = api.get("/challenge").json();
    assert_eq!(c["challenge"].as_str().unwrap().len(), 48);
    let plain = api.send("GET", "/challenge", &[("accept", "text/plain")], b"");
    assert_eq!(plain.body.trim().len(), 48, "{}", plain.body);
    assert_eq!(plain.header("cache-control"), Some("no-store"));

    // Every documented operation is routed (unsigned changes: 401, not 404).
    let some_id = "upg_20000101_000000_abcdef";
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if path == "/events" {
                continue; // a stream that never ends; tested below
            }
            let p = path.replace("{id}", some_id);
            let r = api.send(&method.to_uppercase(), &p, &[], b"");
            assert!(
                r.status != 405 && r.code() != "no_route",
                "{method} {path}: {} {}",
                r.status,
                r.body
            );
            if path == "/v1/session/link" {
                // Needs no signature: the body's login token is the credential.
                assert_eq!(
                    (r.status, r.code().as_str()),
                    (400, "bad_body"),
                    "{method} {path}"
                );
            } else if method != "get" {
                assert_eq!(
                    (r.status, r.code().as_str()),
                    (401, "missing_header"),
                    "{method} {path}"
                );
            }
        }
    }
    let r = api.get("/v1/nothing-here");
    assert_eq!((r.status, r.code().as_str()), (404, "no_route"));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GET /openapi.json lists them")
    );

    // A signed upgrade: accepted, then promoted and live.
    let r = api.signed(
        "POST",
        "/v1/upgrades",
        &edits_request(&version_edits("v2"), r#""title":"to v2""#),
    );
    r.expect(202);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.header("location"), Some(format!("/v1/upgrades/{id}").as_str()));
    assert_eq!(r.json()["state"], "queued");
    let done = api.wait_ended(&id);
    assert_eq!(done["upgrade"]["state"], "promoted", "{done}");
    assert_eq!(done["upgrade"]["requested_by"], "api");
    assert_eq!(done["upgrade"]["title"], "to v2");
    assert_eq!(hello(port), "hello from v2\n");
    let gates: Vec<&str> = done["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(gates, ["parse", "check"]);
    assert!(
        done["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "deploy")
    );
    let diff = api.get(&format!("/v1/upgrades/{id}/diff")).json();
    assert!(diff["diff"].as_str().unwrap().contains("+v2"), "{diff}");
    assert_eq!(diff["files"][0]["path"], "VERSION");
    let list = api.get("/v1/upgrades?state=promoted&limit=5").json();
    assert_eq!(list["upgrades"][0]["id"], id.as_str());
    let r = api.get("/v1/upgrades?state=bogus");
    assert_eq!((r.status, r.code().as_str()), (400, "bad_query"));
    let status = api.get("/v1/status").json();
    assert_eq!(status["supervisor"]["live_commit"], t.head().as_str());
    assert_eq!(status["recent"][0]["id"], id.as_str());
    assert_eq!(status["endpoints"]["api"], api.url.as_str());
    let ledger = api.get("/v1/ledger").json();
    assert_eq!(ledger["total"], 1);
    assert_eq!(ledger["by_state"]["promoted"], 1);
    assert_eq!(api.get("/v1/webhooks").json()["webhooks"], json!([]));

    // `?wait=true` answers with the report; a refused change is a report too
    // (the one upgrade recorded below). Bad requests change nothing.
    let before = t.snapshot();
    let upgrades_before = upgrades_in_ledger(&t);
    let report = api.upgrade_wait(&edits_request(r#"[{"op":"delete","path":"../etc/passwd"}]"#, ""));
    assert_eq!(report["state"], "failed");
    assert_eq!(report["failure"]["class"], "refused");
    let r = api.signed("POST", "/v1/upgrades", r#"{"title":"nothing"}"#);
    assert_eq!((r.status, r.code().as_str()), (400, "bad_request"));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("say what to change")
    );
    let r = api.signed("POST", "/v1/upgrades", r#"{"patch":"x","autofix":true}"#);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not several (patch, autofix)"),
        "{}",
        r.body
    );
    let r = api.signed("POST", "/v1/upgrades", r#"{"edits":[],"priority":11}"#);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("from 1 (lowest) to 10, got 11")
    );
    let r = api.signed("POST", "/v1/upgrades", "not json");
    assert_eq!((r.status, r.code().as_str()), (400, "bad_body"));
    before.assert_same(&t.snapshot(), "after bad upgrade requests");
    assert_eq!(
        upgrades_in_ledger(&t),
        upgrades_before + 1,
        "only the refused change's report was recorded"
    );
    let refused = t.upgrade_row(report["id"].as_str().unwrap());
    assert_eq!(refused.0, "failed", "{refused:?}");

    // Agent state.
    assert_eq!(api.get("/v1/agent/task").code(), "no_task");
    let r = api.signed("PUT", "/v1/agent/task", r#"{"content":"write the report"}"#);
    r.expect(200);
    assert_eq!(r.json()["version"], 1);
    assert_eq!(api.get("/v1/agent/task").json()["content"], "write the report");
    let r = api.signed(
        "POST",
        "/v1/agent/history",
        r#"{"role":"user","content":"hi","meta":{"n":1}}"#,
    );
    r.expect(201);
    let r = api.signed("POST", "/v1/agent/history", r#"{"role":"","content":"x"}"#);
    assert_eq!(r.code(), "bad_role");
    let h = api.get("/v1/agent/history?after=0").json();
    assert_eq!(h["entries"][0]["content"], "hi");
    assert_eq!(h["entries"][0]["meta"]["n"], 1);

    // Scans: stored ones are read; starting one needs the analyzer.
    assert_eq!(api.get("/v1/scans").json()["scans"], json!([]));
    t.ledger()
        .execute_batch(
            "INSERT INTO scans (id, created_at, root, summary) VALUES ('scan_1', '2026-11-21T10:00:00.000Z', '/r', '{\"files\":3}');
             INSERT INTO suggestion_bodies (id, kind, title, risk, priority, instruction) VALUES (1, 'god_class', 'Split X', 'medium', 6, 'split X');
             INSERT INTO suggestions (id, scan_id, body_id) VALUES ('sug_1', 'scan_1', 1);",
        )
        .unwrap();
    let s = api.get("/v1/scans/scan_1").json();
    assert_eq!(s["scan"]["summary"]["files"], 3);
    assert_eq!(s["suggestions"][0]["title"], "Split X");
    assert_eq!(api.get("/v1/scans").json()["scans"][0]["id"], "scan_1");
    assert_eq!(api.get("/v1/scans/scan_nope").code(), "not_found");
    let r = api.signed("POST", "/v1/scans", r#"{"path":"../x"}"#);
    assert_eq!((r.status, r.code().as_str()), (400, "bad_scope"));
    // A real scan of the example agent, stored and readable.
    let r = api.signed("POST", "/v1/scans", "");
    assert_eq!(r.status, 201, "{}", r.body);
    let scanned = r.json();
    let scan_id = scanned["scan"]["id"].as_str().unwrap().to_string();
    assert!(scan_id.starts_with("scan_"), "{scanned}");
    assert_eq!(scanned["scan"]["summary"]["by_language"]["rust"], 1, "{scanned}");
    assert_eq!(scanned["suggestions"][0]["files"][0], "src/main.rs", "{scanned}");
    assert_eq!(
        api.get(&format!("/v1/scans/{scan_id}")).json()["scan"]["id"],
        scan_id.as_str()
    );

    // Approve: only an upgrade that awaits approval.
    let waiting = "upg_20261121_103001_a1b2c3";
    t.insert_awaiting_approval(waiting);
    let r = api.signed(
        "POST",
        &format!("/v1/upgrades/{waiting}/approve"),
        r#"{"requested_by":"ada"}"#,
    );
    r.expect(200);
    assert_eq!(r.json()["approved_by"], "api:ada");
    assert_eq!(t.upgrade_row(waiting).0, "queued");
    let r = api.signed("POST", &format!("/v1/upgrades/{waiting}/approve"), "");
    assert_eq!((r.status, r.code().as_str()), (409, "not_awaiting_approval"));
    assert_eq!(
        r.json()["error"]["message"],
        format!("upgrade {waiting} is queued; only an upgrade awaiting approval can be approved")
    );
    assert_eq!(
        api.get(&format!("/v1/upgrades/{waiting}")).json()["approvals"][0]["approved_by"],
        "api:ada"
    );
    // Cancel it before it starts.
    let r = api.signed("POST", &format!("/v1/upgrades/{waiting}/cancel"), "");
    r.expect(200);
    assert_eq!(r.json()["cancel"]["state"], "cancelled");
    let r = api.signed("POST", &format!("/v1/upgrades/{id}/cancel"), "");
    assert_eq!((r.status, r.code().as_str()), (409, "landed"), "{}", r.body);
    let r = api.signed("POST", "/v1/upgrades/upg_20000101_000000_abcdef/cancel", "");
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    let r = api.signed("POST", "/v1/upgrades/not-an-id/rollback", "");
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));

    // Roll the upgrade back: v1 serves again.
    let r = api.signed(
        "POST",
        &format!("/v1/upgrades/{id}/rollback"),
        r#"{"requested_by":"ada"}"#,
    );
    r.expect(200);
    assert_eq!(r.json()["rollback"]["action"], "reverted");
    assert_eq!(hello(port), "hello from v1\n");
    assert_eq!(t.upgrade_row(&id).0, "rolled_back");
    let r = api.signed("POST", &format!("/v1/upgrades/{id}/rollback"), "");
    assert_eq!((r.status, r.code().as_str()), (409, "already_rolled_back"));
    drop(d);
}

#[test]
fn auth_failures_are_refused_and_change_nothing() {
    let (t, _port) = api_target("[api]\nchallenge_ttl = \"1s\"\nmax_body_bytes = 4096\n");
    let d = start(&t);
    let api = Api::of(&d);
    let before = t.snapshot();
    let body = edits_request(&version_edits("v9"), "");
    let path = "/v1/upgrades?wait=true";
    let refused = |what: &str, r: Resp, code: &str| {
        assert_eq!((r.status, r.code().as_str()), (401, code), "{what}: {}", r.body);
    };

    // No signature at all, and each header missing in turn.
    let r = api.send(
        "POST",
        path,
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    refused("no headers", r, "missing_header");
    for skip in ["X-Timestamp", "X-Challenge", "X-Signature"] {
        let sig = api.signature("POST", path, body.as_bytes());
        let headers: Vec<(&str, &str)> = sig.headers().into_iter().filter(|(k, _)| *k != skip).collect();
        let r = api.send("POST", path, &headers, body.as_bytes());
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("missing {skip}")),
            "{}",
            r.body
        );
        refused(skip, r, "missing_header");
    }

    // Signed with another secret.
    let forged = |forgery: Forgery| api.send_forged("POST", path, body.as_bytes(), forgery);
    let r = forged(Forgery {
        secret: Some("another-secret-0123456789"),
        ..Forgery::default()
    });
    refused("bad signature", r, "bad_signature");

    // Right secret, body changed after signing.
    let changed = body.replace("v9", "v8");
    let r = api.send_forged(
        "POST",
        path,
        changed.as_bytes(),
        Forgery {
            signed_body: Some(body.as_bytes()),
            ..Forgery::default()
        },
    );
    refused("body changed", r, "bad_signature");

    // Signed for another path.
    let r = forged(Forgery {
        signed_path: Some("/v1/upgrades"),
        ..Forgery::default()
    });
    refused("path", r, "bad_signature");

    // Timestamps too old, too far ahead, not a number.
    for (what, ts) in [("old", now() - 301), ("ahead", now() + 301)] {
        let ts = ts.to_string();
        let r = forged(Forgery {
            timestamp: Some(&ts),
            ..Forgery::default()
        });
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("it must be within 300 s"),
            "{}",
            r.body
        );
        refused(what, r, "stale_timestamp");
    }
    let r = forged(Forgery {
        timestamp: Some("yesterday"),
        ..Forgery::default()
    });
    refused("timestamp text", r, "bad_timestamp");

    // A challenge the server never issued, and one that expired.
    let r = forged(Forgery {
        challenge: Some("made-up"),
        ..Forgery::default()
    });
    refused("unknown challenge", r, "unknown_challenge");
    let ch = api.challenge();
    std::thread::sleep(Duration::from_millis(1300));
    let r = forged(Forgery {
        challenge: Some(&ch),
        ..Forgery::default()
    });
    refused("expired challenge", r, "expired_challenge");

    // Too big a body: refused before anything else.
    let big = format!(r#"{{"patch":"{}"}}"#, "x".repeat(5000));
    let r = api.signed("POST", "/v1/upgrades", &big);
    assert_eq!((r.status, r.code().as_str()), (413, "too_large"));

    before.assert_same(&t.snapshot(), "after refused requests");
    assert_eq!(upgrades_in_ledger(&t), 0, "no upgrade was even recorded");

    // A refused request does not burn its challenge: its headers on
    // another body are refused, then on the body they signed, done once;
    // the replay is refused.
    let task = r#"{"content":"first"}"#;
    let sig = api.signature("PUT", "/v1/agent/task", task.as_bytes());
    let headers = sig.headers();
    let other = api.send("PUT", "/v1/agent/task", &headers, br#"{"content":"other"}"#);
    refused("another body", other, "bad_signature");
    assert_eq!(api.get("/v1/agent/task").code(), "no_task", "nothing saved");
    api.send("PUT", "/v1/agent/task", &headers, task.as_bytes())
        .expect(200);
    let replay = api.send("PUT", "/v1/agent/task", &headers, task.as_bytes());
    refused("replay", replay, "used_challenge");
    assert_eq!(
        api.get("/v1/agent/task").json()["version"],
        1,
        "the replay changed nothing"
    );
    before.assert_same(&t.snapshot(), "after the replay");
    drop(d);
}

#[test]
fn a_dashboard_session_needs_its_csrf_token_and_origin() {
    let (t, _port) = api_target("");
    let d = start(&t);
    let api = Api::of(&d);
    // Only a signed request opens a session.
    let r = api.send("POST", "/v1/session", &[], b"");
    assert_eq!(r.code(), "missing_header");
    let r = api.signed("POST", "/v1/session", "");
    r.expect(201);
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
    let host = format!("127.0.0.1:{}", api.port());
    let origin = format!("http://{host}");
    let body = br#"{"content":"from the dashboard"}"#;
    // Cookie without the CSRF token, with a wrong one, from another origin.
    let r = api.send("PUT", "/v1/agent/task", &[("cookie", &session)], body);
    assert_eq!((r.status, r.code().as_str()), (401, "bad_csrf"));
    let r = api.send(
        "PUT",
        "/v1/agent/task",
        &[("cookie", &session), ("x-csrf-token", "nope")],
        body,
    );
    assert_eq!(r.code(), "bad_csrf");
    let r = api.send(
        "PUT",
        "/v1/agent/task",
        &[
            ("cookie", &session),
            ("x-csrf-token", &csrf),
            ("origin", "http://evil.example"),
        ],
        body,
    );
    assert_eq!(r.code(), "bad_origin");
    assert_eq!(api.get("/v1/agent/task").code(), "no_task", "nothing changed");
    // All three right: done, and recorded as the dashboard's.
    let r = api.send(
        "PUT",
        "/v1/agent/task",
        &[("cookie", &session), ("x-csrf-token", &csrf), ("origin", &origin)],
        body,
    );
    r.expect(200);
    let r = api.send(
        "POST",
        "/v1/upgrades",
        &[("cookie", &session), ("x-csrf-token", &csrf)],
        edits_request(&version_edits("v2"), r#""dry_run":true,"requested_by":"ada""#).as_bytes(),
    );
    r.expect(202);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(api.wait_ended(&id)["upgrade"]["requested_by"], "dashboard:ada");
    // A session cannot open another.
    let r = api.send(
        "POST",
        "/v1/session",
        &[("cookie", &session), ("x-csrf-token", &csrf)],
        b"",
    );
    assert_eq!(r.code(), "signature_required");
    // Signed out: the cookie is worthless.
    let r = api.send(
        "DELETE",
        "/v1/session",
        &[("cookie", &session), ("x-csrf-token", &csrf)],
        b"",
    );
    r.expect(200);
    assert_eq!(r.json()["ended"], true);
    let r = api.send(
        "PUT",
        "/v1/agent/task",
        &[("cookie", &session), ("x-csrf-token", &csrf)],
        body,
    );
    assert_eq!(r.code(), "bad_session");
    drop(d);
}

#[test]
fn the_sixth_upgrade_in_an_hour_is_refused_even_after_a_restart() {
    let (t, _port) = api_target("");
    let mut d = start(&t);
    let api = Api::of(&d);
    // Five upgrades (docs only: promoted without a restart), accepted at once.
    let mut ids = Vec::new();
    for i in 0..5 {
        let edits = docs_edit(&format!("# agent {i}\n"));
        let r = api.signed("POST", "/v1/upgrades", &edits_request(&edits, ""));
        r.expect(202);
        ids.push(r.json()["id"].as_str().unwrap().to_string());
    }
    let sixth = edits_request(&docs_edit("# six\n"), "");
    let r = api.signed("POST", "/v1/upgrades", &sixth);
    assert_eq!((r.status, r.code().as_str()), (429, "rate_limited"), "{}", r.body);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((3000..=3600).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.json()["error"]["retry_after"], retry);
    assert!(
        r.json()["error"]["message"].as_str().unwrap().starts_with(
            "5 upgrades in the last 1h already (the limit, `[api] upgrades_per_window`); try again in"
        ),
        "{}",
        r.body
    );
    // A dry run is not limited.
    let r = api.signed(
        "POST",
        "/v1/upgrades",
        &edits_request(&docs_edit("# dry\n"), r#""dry_run":true"#),
    );
    r.expect(202);
    for id in &ids {
        assert_eq!(api.wait_ended(id)["upgrade"]["state"], "promoted");
    }
    // The window is the ledger's: a restarted graft run grants nothing new.
    d.kill9();
    let d = start(&t);
    let api = Api::of(&d);
    let r = api.signed("POST", "/v1/upgrades", &sixth);
    assert_eq!(
        (r.status, r.code().as_str()),
        (429, "rate_limited"),
        "after a restart: {}",
        r.body
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM upgrades WHERE dry_run = 0"), 5);
    drop(d);
}

/// Read SSE events from a stream until `done` says stop.
fn read_sse(reader: &mut impl BufRead, mut done: impl FnMut(&str, &Value) -> bool) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let (mut name, mut data) = (String::new(), String::new());
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("the event stream broke");
        assert!(n > 0, "the event stream ended; got {out:?}");
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            if !data.is_empty() {
                let v: Value = serde_json::from_str(&data).unwrap();
                let stop = done(&name, &v);
                out.push((std::mem::take(&mut name), v));
                if stop {
                    return out;
                }
            }
            data.clear();
        } else if let Some(v) = l.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = l.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
}

/// An SSE subscription on a raw socket, past its `ready` event.
fn subscribe(api: &Api, query: &str) -> BufReader<std::net::TcpStream> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", api.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET /events{query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    let first = read_sse(&mut r, |_, _| true);
    assert_eq!(first[0].0, "ready");
    r
}

#[test]
fn server_sent_events_deliver_an_upgrades_events_in_order() {
    let (t, _port) = api_target("");
    let d = start(&t);
    let api = Api::of(&d);
    let mut all = subscribe(&api, "");
    let mut other = subscribe(&api, "?upgrade=upg_20000101_000000_abcdef");
    // The same upgrade streamed as NDJSON to its requester.
    let body = edits_request(&version_edits("v2"), "");
    let sig = api.signature("POST", "/v1/upgrades", body.as_bytes());
    let mut headers = sig.headers();
    headers.push(("accept", "application/x-ndjson"));
    let streamed = api.send("POST", "/v1/upgrades", &headers, body.as_bytes());
    streamed.expect(200);
    let lines: Vec<Value> = streamed
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let report = &lines.last().unwrap()["report"];
    assert_eq!(report["state"], "promoted", "{}", streamed.body);
    let id = report["id"].as_str().unwrap().to_string();
    let ndjson_events: Vec<Value> = lines.iter().filter_map(|l| l.get("event").cloned()).collect();

    let events = read_sse(&mut all, |name, v| {
        name == "state_changed" && v["id"] == id.as_str() && v["state"] == "promoted"
    });
    let events: Vec<(String, Value)> = events
        .into_iter()
        .filter(|(_, v)| v["id"] == id.as_str())
        .collect();
    // In order: exactly what the pipeline sent its requester.
    let sse_values: Vec<Value> = events.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(sse_values, ndjson_events);
    assert_eq!(events[0].0, "upgrade_created");
    for (name, v) in &events {
        assert_eq!(
            name,
            v["type"].as_str().unwrap(),
            "each event is named by its type"
        );
    }
    let states: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "state_changed")
        .map(|(_, v)| v["state"].as_str().unwrap())
        .collect();
    // Queued in the ledger first (the daemon's queue runs it).
    assert_eq!(
        states,
        [
            "queued",
            "staging",
            "validating",
            "deploying",
            "watching",
            "promoted"
        ]
    );
    let gate = events
        .iter()
        .position(|(n, v)| n == "gate_started" && v["gate"] == "check")
        .unwrap();
    let finished = events
        .iter()
        .position(|(n, v)| n == "gate_finished" && v["gate"] == "check")
        .unwrap();
    assert!(gate < finished);
    // A subscription to another upgrade saw none of it: its next event is
    // the keep-alive comment at most, so read what is buffered only.
    other
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 4096];
    match other.read(&mut buf) {
        Ok(n) => assert!(!String::from_utf8_lossy(&buf[..n]).contains(&id), "filtered out"),
        Err(e) => assert!(matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
    }
    drop(d);
}

#[test]
fn a_list_for_a_body_is_refused_and_changes_nothing() {
    let (t, _port) = api_target("");
    let d = start(&t);
    let api = Api::of(&d);
    let waiting = "upg_20261121_103001_a1b2c3";
    t.insert_awaiting_approval(waiting);
    let before = t.snapshot();
    let rows = |t: &Target| {
        t.ledger()
            .query_row(
                "SELECT state, requested_by, approval, approved_by FROM upgrades WHERE id = ?1",
                [waiting],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                },
            )
            .unwrap()
    };
    let row = rows(&t);
    assert_eq!(row.0, "awaiting_approval");
    let counts = |t: &Target| {
        [
            "SELECT COUNT(*) FROM upgrades",
            "SELECT COUNT(*) FROM approvals",
            "SELECT COUNT(*) FROM requests",
            "SELECT COUNT(*) FROM scans",
            "SELECT COUNT(*) FROM agent_task",
        ]
        .map(|q| t.count(q))
    };
    let counted = counts(&t);

    // Each of these, read field by field from the list, would ask for
    // something: an approval by "mallory", an instruction, a scan of
    // `docs`, a task.
    let everything = json!([
        "make it say v2",
        null,
        null,
        null,
        null,
        null,
        false,
        false,
        null,
        null,
        "mallory"
    ]);
    let asked = [
        (
            "POST",
            format!("/v1/upgrades/{waiting}/approve"),
            json!(["mallory"]),
        ),
        (
            "POST",
            format!("/v1/upgrades/{waiting}/reject"),
            json!(["mallory", "no"]),
        ),
        (
            "POST",
            format!("/v1/upgrades/{waiting}/cancel"),
            json!(["mallory"]),
        ),
        (
            "POST",
            format!("/v1/upgrades/{waiting}/rollback"),
            json!(["mallory"]),
        ),
        ("POST", "/v1/upgrades".to_string(), everything.clone()),
        ("POST", "/v1/upgrades?wait=true".to_string(), everything),
        ("POST", "/v1/scans".to_string(), json!(["docs"])),
        ("PUT", "/v1/agent/task".to_string(), json!(["write the report"])),
    ];
    for (method, path, body) in asked {
        let r = api.signed(method, &path, &body.to_string());
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "bad_body"),
            "{method} {path}: {}",
            r.body
        );
        assert_eq!(
            r.json()["error"]["message"],
            "the request body must be a JSON object (`{...}` with named fields), not a list",
            "{method} {path}"
        );
    }
    // Other bodies that are JSON but not an object are refused the same way.
    let r = api.signed("POST", "/v1/upgrades", "\"make it say v2\"");
    assert_eq!((r.status, r.code().as_str()), (400, "bad_body"));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("not a string"),
        "{}",
        r.body
    );

    assert_eq!(rows(&t), row, "the waiting upgrade is as it was");
    assert_eq!(counts(&t), counted, "no upgrade, approval, request, scan or task");
    t.snapshot().assert_same(&before, "a list for a body");
    drop(d);
}
