//! `graft mcp` driven by the official MCP Python SDK (a client nobody here
//! wrote): it connects over stdio, lists the tools with their schemas, and
//! plans, executes, inspects and rolls back upgrades, locally and through
//! a running `graft run`.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::agent::*;
use crate::support::api::*;
use crate::support::*;

/// Run one MCP session making `calls`; the script's JSON.
pub fn session(t: &Target, calls: Value) -> Value {
    let python = tool_python("mcp");
    let file = t.input("calls.json", calls.to_string().as_bytes());
    let out = Command::new(python)
        .arg(script("mcp_session.py"))
        .arg(GRAFT)
        .arg(&t.root)
        .arg(file)
        .output()
        .expect("run the MCP client");
    assert!(
        out.status.success(),
        "the MCP session failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

pub fn call(tool: &str, arguments: Value) -> Value {
    json!({ "tool": tool, "arguments": arguments })
}

fn text(r: &Value) -> String {
    r["text"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn an_agent_plans_executes_inspects_and_rolls_back_over_mcp() {
    let t = Target::python();
    let base = t.head();
    let before = t.snapshot();
    let out = session(
        &t,
        json!([call(
            "self_improve",
            json!({ "action": "plan", "patch": good_patch(), "title": "warmer greeting" })
        ),]),
    );
    // The server, and its tools with their schemas.
    assert_eq!(out["server"]["name"], "graft");
    assert!(
        out["server"]["instructions"]
            .as_str()
            .unwrap()
            .contains("action=plan")
    );
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for name in [
        "self_improve",
        "rollback",
        "diff",
        "scan",
        "ledger",
        "get_task",
        "save_task",
        "append_history",
        "get_history",
    ] {
        assert!(tools.contains(&name), "{name} in {tools:?}");
    }
    let si = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "self_improve")
        .unwrap();
    let schema = &si["input_schema"];
    assert_eq!(schema["required"], json!(["action"]));
    let action = serde_json::to_string(&schema).unwrap();
    for a in ["plan", "execute", "status", "cancel"] {
        assert!(
            action.contains(&format!("\"{a}\"")),
            "{a} in the schema: {action}"
        );
    }
    // plan: the diff and the gates, nothing changed.
    let plan = &out["results"][0];
    assert_eq!(plan["is_error"], false, "{plan}");
    assert!(text(plan).starts_with("plan upg_"), "{}", text(plan));
    assert!(
        text(plan).contains("every required gate passed (parse passed, test passed)"),
        "{}",
        text(plan)
    );
    assert_eq!(plan["structured"]["dry_run"], true);
    assert!(
        plan["structured"]["diff"]
            .as_str()
            .unwrap()
            .contains("+    return \"Welcome, \" + name")
    );
    assert_eq!(plan["structured"]["via"], "local");
    before.assert_same(&t.snapshot(), "after plan");

    // execute, status, diff, rollback, and the errors.
    let out = session(
        &t,
        json!([
            call(
                "self_improve",
                json!({ "action": "execute", "patch": good_patch() })
            ),
            call(
                "self_improve",
                json!({ "action": "status", "upgrade_id": "$upgrade" })
            ),
            call("diff", json!({ "upgrade_id": "$upgrade" })),
            call("rollback", json!({ "upgrade_id": "$upgrade" })),
            call("self_improve", json!({ "action": "status" })),
            call("self_improve", json!({ "action": "plan" })),
            call(
                "self_improve",
                json!({ "action": "execute", "patch": failing_add_patch() })
            ),
            call("rollback", json!({ "upgrade_id": "not-an-id" })),
            call("self_improve", json!({ "action": "cancel" })),
            call("self_improve", json!({ "action": "launch" })),
        ]),
    );
    let r = &out["results"];
    assert_eq!(r[0]["is_error"], false, "{}", r[0]);
    assert!(text(&r[0]).contains(" promoted: "), "{}", text(&r[0]));
    let id = r[0]["structured"]["id"].as_str().unwrap().to_string();
    assert_eq!(r[0]["structured"]["state"], "promoted");
    assert_eq!(r[1]["structured"]["upgrade"]["state"], "promoted");
    assert_eq!(
        text(&r[1]).lines().next().unwrap(),
        format!("upgrade {id}: promoted")
    );
    assert!(
        text(&r[2]).contains("+    return \"Welcome, \" + name"),
        "{}",
        text(&r[2])
    );
    assert_eq!(r[3]["is_error"], false, "{}", r[3]);
    assert!(text(&r[3]).starts_with(&format!("rolled back {id}: revert commit")));
    assert_eq!(t.upgrade_row(&id).0, "rolled_back");
    assert_eq!(t.read("app.py"), APP_PY, "the rollback restored the code");
    assert_ne!(t.head(), base);
    assert_eq!(r[4]["structured"]["recent"][0]["id"], id.as_str());
    // Tool errors, with what to do.
    assert_eq!(r[5]["is_error"], true);
    assert!(text(&r[5]).contains("`plan` and `execute` need exactly one of `instruction`, `patch`, `edits`, `suggestion` or `autofix: true` (got none)"), "{}", text(&r[5]));
    assert_eq!(r[6]["is_error"], true, "a failed upgrade is an error");
    assert!(text(&r[6]).contains("[gate_failed:test]"), "{}", text(&r[6]));
    assert_eq!(r[6]["structured"]["failure"]["class"], "gate");
    assert_eq!(r[7]["is_error"], true);
    assert!(text(&r[7]).contains("not-an-id"), "{}", text(&r[7]));
    assert_eq!(r[8]["is_error"], true);
    assert!(text(&r[8]).contains("`cancel` needs `upgrade_id`"));
    assert_eq!(
        r[9]["is_error"], true,
        "an unknown action is refused by the schema: {}",
        r[9]
    );
    assert!(text(&r[9]).contains("launch"), "{}", text(&r[9]));

    // Agent state, the ledger, scans.
    let out = session(
        &t,
        json!([
            call("get_task", json!({})),
            call("save_task", json!({ "content": "ship v2" })),
            call("get_task", json!({})),
            call(
                "append_history",
                json!({ "role": "user", "content": "hello", "meta": { "turn": 1 } })
            ),
            call("append_history", json!({ "role": "", "content": "x" })),
            call("get_history", json!({})),
            call("ledger", json!({ "recent": 5 })),
            call("scan", json!({})),
        ]),
    );
    let r = &out["results"];
    assert_eq!(text(&r[0]).lines().next().unwrap(), "no task has been saved yet");
    assert_eq!(r[1]["structured"]["version"], 1);
    assert_eq!(r[2]["structured"]["content"], "ship v2");
    assert_eq!(r[3]["is_error"], false);
    assert_eq!(r[4]["is_error"], true);
    assert_eq!(r[5]["structured"]["entries"][0]["meta"]["turn"], 1);
    assert_eq!(
        r[5]["structured"]["entries"].as_array().unwrap().len(),
        1,
        "the refused entry was not added: {}",
        r[5]
    );
    assert_eq!(r[6]["structured"]["total"], 2);
    assert!(
        text(&r[6]).starts_with("2 upgrade(s); success rate 0 %; 1 rollback(s)"),
        "{}",
        text(&r[6])
    );
    // The same report as `graft ledger --json`, which adds what it learnt.
    let mut cli = t.graft(&["ledger", "--json", "--recent", "5"]).json();
    cli.as_object_mut().unwrap().remove("learning");
    assert_eq!(r[6]["structured"], cli);
    assert_eq!(cli["rollbacks_by_cause"][0]["count"], 1, "{cli}");
    // A real scan of the repo, stored in the ledger.
    assert_eq!(r[7]["is_error"], false, "{}", r[7]);
    let scan_id = r[7]["structured"]["scan"]["id"].as_str().unwrap();
    assert!(
        text(&r[7]).starts_with(&format!("scan {scan_id}: ")),
        "{}",
        text(&r[7])
    );
    assert_eq!(
        t.count(&format!("SELECT COUNT(*) FROM scans WHERE id = '{scan_id}'")),
        1
    );
}

#[test]
fn over_mcp_changes_go_through_graft_run_and_deploy() {
    let (t, port) = api_target("[api]\nupgrades_per_window = 1\n");
    let d = start(&t);
    let out = session(
        &t,
        json!([
            call(
                "self_improve",
                json!({ "action": "execute", "edits": version_edits("v2") })
            ),
            call("self_improve", json!({ "action": "status" })),
            call(
                "self_improve",
                json!({ "action": "execute", "edits": version_edits("v3") })
            ),
            call(
                "self_improve",
                json!({ "action": "plan", "edits": version_edits("v3") })
            ),
        ]),
    );
    let r = &out["results"];
    assert_eq!(r[0]["is_error"], false, "{}", r[0]);
    assert_eq!(r[0]["structured"]["via"], "graft run");
    let id = r[0]["structured"]["id"].as_str().unwrap().to_string();
    assert_eq!(hello(port), "hello from v2\n", "deployed for real");
    assert_eq!(r[1]["structured"]["graft_run"]["live_commit"], t.head().as_str());
    // The rate limit holds over MCP too; a plan is not limited.
    assert_eq!(r[2]["is_error"], true);
    assert!(text(&r[2]).contains("[rate_limited]"), "{}", text(&r[2]));
    assert_eq!(r[3]["is_error"], false, "{}", r[3]);
    let out = session(&t, json!([call("rollback", json!({ "upgrade_id": id }))]));
    assert_eq!(out["results"][0]["is_error"], false, "{}", out["results"][0]);
    assert_eq!(
        hello(port),
        "hello from v1\n",
        "the previous release serves again"
    );
    drop(d);
}

#[test]
fn over_mcp_a_risky_change_waits_for_a_person() {
    let (t, _port) = api_target("");
    let edits = json!([{ "op": "create", "path": "build.rs", "content": "fn main() {}\n" }]).to_string();
    let before = t.snapshot();
    let out = session(
        &t,
        json!([call(
            "self_improve",
            json!({ "action": "execute", "edits": edits })
        )]),
    );
    let r = &out["results"];
    assert_eq!(r[0]["is_error"], false, "{}", r[0]);
    assert_eq!(r[0]["structured"]["state"], "awaiting_approval", "{}", r[0]);
    assert!(
        text(&r[0]).contains("waits for approval (risk medium: medium: changes build file `build.rs`)"),
        "{}",
        text(&r[0])
    );
    assert!(!t.path("build.rs").exists(), "nothing ran");
    before.assert_same(&t.snapshot(), "a change waiting for approval");
    let id = r[0]["structured"]["id"].as_str().unwrap();
    assert_eq!(t.upgrade_row(id).0, "awaiting_approval");
}
