//! Webhooks received by a real local HTTP receiver: every state change of
//! an upgrade, in order, in Slack-compatible or plain JSON; and all of
//! them, still in order, after the receiver was down for a while, whether
//! `graft run` or the CLI sends them.

use serde_json::json;

use crate::support::agent::eventually;
use crate::support::api::*;
use crate::support::*;

fn hooks(r: &Receiver) -> String {
    format!(
        r#"
[[webhooks]]
name = "plain"
url = "{}"
format = "json"
max_backoff = "1s"

[[webhooks]]
name = "chat"
url = "{}"
events = ["promoted", "rolled_back", "gates_failed"]
max_backoff = "1s"
"#,
        r.url("/plain"),
        r.url("/chat")
    )
}

fn events(d: &[Delivery]) -> Vec<String> {
    d.iter().map(|d| d.event.clone()).collect()
}

/// Each webhook got its notifications in the order they were queued.
fn in_order(d: &[Delivery]) {
    for pair in d.windows(2) {
        assert!(pair[0].delivery < pair[1].delivery, "out of order: {pair:?}");
    }
}

#[test]
fn webhooks_arrive_in_order_even_after_the_receiver_was_down() {
    let receiver = Receiver::start();
    let (t, _port) = api_target(&hooks(&receiver));
    let d = start(&t);
    let api = Api::of(&d);

    let v2 = api.upgrade_wait(&edits_request(&version_edits("v2"), r#""title":"to v2""#));
    assert_eq!(v2["state"], "promoted");
    let v2 = v2["id"].as_str().unwrap().to_string();
    let plain = receiver.wait_at("/plain", 4, 30);
    assert_eq!(
        events(&plain),
        ["planned", "gates_passed", "deployed", "promoted"]
    );
    let p = &plain[0].body;
    assert_eq!(p["event"], "planned");
    assert_eq!(p["upgrade"]["id"], v2.as_str());
    assert_eq!(p["upgrade"]["title"], "to v2");
    assert!(p["summary"].as_str().unwrap().contains("1 file(s), +1 -1"), "{p}");
    assert_eq!(p["facts"]["files"], "VERSION +1 -1");
    assert_eq!(plain[3].body["upgrade"]["landed_commit"], t.head().as_str());
    let chat = receiver.wait_at("/chat", 1, 30);
    assert_eq!(events(&chat), ["promoted"]);
    let slack = &chat[0].body;
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .contains(&format!("promoted {v2}")),
        "{slack}"
    );
    assert_eq!(slack["blocks"][0]["type"], "section");
    assert!(
        slack["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("to v2"),
        "{slack}"
    );

    // The receiver goes down; three more things happen.
    let (port, got) = receiver.down();
    let v3 = api.upgrade_wait(&edits_request(&version_edits("v3"), ""));
    assert_eq!(v3["state"], "promoted");
    let v3 = v3["id"].as_str().unwrap().to_string();
    let broken = api.upgrade_wait(&edits_request(
        r#"[{"op":"replace","path":"VERSION","content":""}]"#,
        "",
    ));
    assert_eq!(broken["failure"]["reason"], "gate_failed:check", "{broken}");
    api.signed("POST", &format!("/v1/upgrades/{v3}/rollback"), "")
        .expect(200);
    eventually(20, "a delivery attempt failed", || {
        let w = api.get("/v1/webhooks").json();
        w["outbox"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| !r["last_error"].is_null())
    });
    let w = api.get("/v1/webhooks").json();
    assert!(w["counts"]["pending"].as_i64().unwrap() >= 10, "{w}");
    assert_eq!(
        w["webhooks"][0],
        json!({ "name": "plain", "format": "json", "events": ["planned", "needs_approval", "gates_passed", "gates_failed", "deployed", "promoted", "rolled_back", "failed", "cancelled"] })
    );
    // Down for a while: a notification was tried again after its back-off
    // and failed again.
    eventually(20, "a notification failed twice", || {
        let w = api.get("/v1/webhooks").json();
        w["outbox"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["attempts"].as_i64().unwrap() >= 2 && r["delivered_at"].is_null())
    });

    // Back up: everything arrives, in order, once.
    let receiver = Receiver::up(port, got);
    let plain = receiver.wait_at("/plain", 4 + 7, 60);
    assert_eq!(
        events(&plain),
        [
            "planned",
            "gates_passed",
            "deployed",
            "promoted", // v2
            "planned",
            "gates_passed",
            "deployed",
            "promoted", // v3
            "planned",
            "gates_failed", // broken
            "rolled_back",  // v3
        ]
    );
    in_order(&plain);
    assert_eq!(plain[4].body["upgrade"]["id"], v3.as_str());
    assert_eq!(plain[9].body["facts"]["reason"], "gate_failed:check");
    assert_eq!(plain[10].body["upgrade"]["id"], v3.as_str());
    assert_eq!(plain[10].body["facts"]["cause"], "manual");
    let chat = receiver.wait_at("/chat", 4, 30);
    assert_eq!(
        events(&chat),
        ["promoted", "promoted", "gates_failed", "rolled_back"]
    );
    in_order(&chat);
    // Once nothing waits, nothing is sent again: all that arrived, once each.
    eventually(10, "the outbox is empty", || {
        api.get("/v1/webhooks").json()["counts"]["pending"] == 0
    });
    assert_eq!(receiver.at("/plain").len(), 11, "nothing sent twice");
    in_order(&receiver.at("/plain"));
    assert_eq!(receiver.at("/chat").len(), 4, "nothing sent twice");
    in_order(&receiver.at("/chat"));
    drop(d);
}

#[test]
fn without_a_daemon_each_command_sends_what_it_can_and_the_rest_waits() {
    let receiver = Receiver::start();
    let config = format!(
        "{CONFIG}\n[[webhooks]]\nurl = \"{}\"\nformat = \"json\"\nmax_backoff = \"1s\"\n",
        receiver.url("/hook")
    );
    let t = Target::python_with_config(&config);
    t.upgrade_patch(&good_patch(), &[]).success();
    let got = receiver.wait_at("/hook", 4, 10);
    assert_eq!(
        events(&got),
        ["planned", "gates_passed", "deployed", "promoted"],
        "sent before graft exited"
    );

    let (port, got) = receiver.down();
    let run = t.upgrade_patch(&failing_add_patch(), &[]);
    run.code(4).stderr_has(
        "webhook notification(s) could not be sent yet; they wait in the ledger for the next graft command or graft run",
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL"),
        2
    );
    let last_error: String = t
        .ledger()
        .query_row(
            "SELECT last_error FROM webhook_outbox WHERE delivered_at IS NULL ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!last_error.is_empty());

    // Back up: the next command sends what waited, then its own, in order.
    let receiver = Receiver::up(port, got);
    // A command sends only what is due: wait out the back-off of the failed
    // notifications.
    eventually(10, "the waiting notifications are due", || {
        let conn = t.ledger();
        let mut stmt = conn
            .prepare("SELECT next_attempt_at FROM webhook_outbox WHERE delivered_at IS NULL")
            .unwrap();
        let due: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        due.iter().all(|at| {
            chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("next_attempt_at {at}: {e}"))
                <= chrono::Utc::now()
        })
    });
    t.upgrade_edits(
        r#"[{"op":"create","path":"notes.txt","content":"x\n"}]"#,
        &["--dry-run"],
    )
    .success();
    let got = receiver.wait_at("/hook", 8, 10);
    assert_eq!(
        events(&got),
        [
            "planned",
            "gates_passed",
            "deployed",
            "promoted",
            "planned",
            "gates_failed",
            "planned",
            "gates_passed"
        ]
    );
    in_order(&got);
    assert_eq!(got[7].body["upgrade"]["dry_run"], true);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL"),
        0
    );
}

/// An upgrade whose process was killed is ended by the next command's
/// recovery, and the webhooks hear of that end as they would have of the
/// run's own: after what the run had queued before it died.
/// A target whose webhook is `receiver`'s `/hook`, and the id of an
/// upgrade of it killed at `point`.
fn killed_upgrade(receiver: &Receiver, point: &str) -> (Target, String) {
    let config = format!(
        "{CONFIG}\n[[webhooks]]\nurl = \"{}\"\nformat = \"json\"\nmax_backoff = \"1s\"\n",
        receiver.url("/hook")
    );
    let t = Target::python_with_config(&config);
    let p = t.input("change.diff", good_patch().as_bytes());
    t.graft_env(
        &["upgrade", "--patch", p.to_str().unwrap()],
        &[("GRAFT_TEST_KILL_AT", point)],
    )
    .killed();
    let id = t.last_upgrade();
    (t, id)
}

#[test]
fn an_end_brought_about_by_recovery_is_announced() {
    for (point, end) in [("gate:test:after", "failed"), ("deploy:after", "promoted")] {
        let receiver = Receiver::start();
        let (t, id) = killed_upgrade(&receiver, point);
        assert!(
            receiver.at("/hook").is_empty(),
            "{point}: the killed run sent nothing"
        );

        t.graft(&["status"]).success().stderr_has("graft: recovered");
        let expected: &[&str] = if end == "failed" {
            &["planned", "failed"]
        } else {
            &["planned", "gates_passed", "promoted"]
        };
        let got = receiver.wait_at("/hook", expected.len(), 10);
        assert_eq!(events(&got), expected, "{point}");
        in_order(&got);
        let last = &got.last().unwrap().body;
        assert_eq!(last["upgrade"]["id"], id.as_str(), "{point}");
        assert_eq!(last["upgrade"]["state"], end, "{point}");
        if end == "failed" {
            assert_eq!(last["upgrade"]["reason"], "interrupted", "{point}");
        }
        assert_eq!(
            t.count("SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL"),
            0,
            "{point}"
        );
        // Announced once: the next command has nothing more to say.
        t.graft(&["status"]).success();
        assert_eq!(
            t.count("SELECT COUNT(*) FROM webhook_outbox"),
            expected.len() as i64,
            "{point}"
        );
    }
}

#[test]
fn an_end_recovered_by_an_mcp_tool_is_announced() {
    let receiver = Receiver::start();
    let (t, killed) = killed_upgrade(&receiver, "gate:test:after");
    // The MCP server's upgrade takes the pipeline lock, and so recovers
    // the killed one first: that end is announced before its own.
    let out = crate::mcp::session(
        &t,
        json!([crate::mcp::call(
            "self_improve",
            json!({ "action": "execute", "patch": good_patch() })
        )]),
    );
    assert_eq!(out["results"][0]["is_error"], false, "{out}");
    let got = receiver.wait_at("/hook", 6, 10);
    assert_eq!(
        events(&got),
        [
            "planned",
            "failed",
            "planned",
            "gates_passed",
            "deployed",
            "promoted"
        ]
    );
    in_order(&got);
    assert_eq!(got[1].body["upgrade"]["id"], killed.as_str());
    assert_eq!(got[1].body["upgrade"]["reason"], "interrupted");
    assert_ne!(got[5].body["upgrade"]["id"], killed.as_str());
}
