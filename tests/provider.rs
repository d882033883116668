//! Providers end to end: `graft upgrade "instruction"` against a local
//! server speaking the Anthropic or OpenAI wire format, on real repos. The
//! tests check what Graft sent (headers, model, messages) as well as what
//! it did: what landed, what was refused, the rounds and costs in the
//! ledger.

use std::time::Duration;

use crate::support::llm::{Api, LlmServer};
use crate::support::*;

const KEY: &str = "sk-test-0123456789abcdef";
const KEY_ENV: &str = "GRAFT_TEST_KEY";

/// The Python target's config with a provider pointing at `server`.
/// `provider` goes under `[provider]`, `llm` under the endpoint's table.
fn config(server: &LlmServer, provider: &str, llm: &str) -> String {
    let (api, model) = match server.api {
        Api::Anthropic => ("anthropic", "claude-sonnet-4-5"),
        Api::Openai => ("openai", "gpt-4o-mini"),
    };
    format!(
        "{CONFIG}\n[provider]\ndefault = \"test\"\n{provider}\n\n[provider.llm.test]\napi = \"{api}\"\nmodel = \"{model}\"\nbase_url = \"{}\"\napi_key_env = \"{KEY_ENV}\"\n{}\n",
        server.base_url(),
        if llm.contains("timeout") {
            llm.to_string()
        } else {
            format!("timeout = \"20s\"\n{llm}")
        }
    )
}

fn target(server: &LlmServer, provider: &str, llm: &str) -> Target {
    let t = Target::python_with_config(&config(server, provider, llm));
    // A file where one line occurs twice, for ambiguous edits.
    t.write("dup.py", DUP_PY);
    t.commit("dup");
    t
}

const DUP_PY: &str = "x = 1\ny = 2\nx = 1\n";

/// A SEARCH/REPLACE block for dup.py whose SEARCH matches twice.
fn ambiguous() -> String {
    "dup.py\n```python\n<<<<<<< SEARCH\nx = 1\n=======\nx = 3\n>>>>>>> REPLACE\n```\n".to_string()
}

fn upgrade(t: &Target, instruction: &str, extra: &[&str]) -> Run {
    let mut args = vec!["upgrade", instruction];
    args.extend_from_slice(extra);
    t.graft_env(&args, &[(KEY_ENV, KEY)])
}

/// A SEARCH/REPLACE reply changing one line of app.py.
fn sr(search: &str, replace: &str) -> String {
    format!(
        "Here is the change.\n\napp.py\n```python\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```\n"
    )
}

const GREET: &str = "def greet(name):\n    return \"Hello, \" + name";
const WELCOME: &str = "def greet(name):\n    return \"Welcome, \" + name";
const ADD_OK: &str = "def add(a, b):\n    return a + b";
const ADD_BROKEN: &str = "def add(a, b):\n    return a - b";

fn rounds(t: &Target, id: &str) -> Vec<(i64, String, Option<String>)> {
    let conn = t.ledger();
    let mut stmt = conn
        .prepare("SELECT round, outcome, reason FROM generation_rounds WHERE upgrade_id = ?1 ORDER BY round")
        .unwrap();
    stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Every byte of the ledger (database and WAL) as text, to prove a secret
/// is not in it.
fn ledger_bytes(t: &Target) -> String {
    let mut all = Vec::new();
    for f in ["ledger.db", "ledger.db-wal"] {
        if let Ok(b) = std::fs::read(t.path(".graft").join(f)) {
            all.extend(b);
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn anthropic_edit_lands_and_the_request_is_the_messages_api() {
    let server = LlmServer::start(Api::Anthropic);
    let t = target(&server, "", "");
    server.reply(&sr(GREET, WELCOME));
    let run = upgrade(&t, "Greet people with Welcome instead of Hello", &["--json"]);
    run.success();
    let report = run.json();
    let id = report["id"].as_str().unwrap().to_string();
    assert_eq!(report["state"], "promoted");
    assert!(t.read("app.py").contains("return \"Welcome, \" + name"));
    assert_eq!(t.git(&["status", "--porcelain"]), "");

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/messages"));
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), None);
    assert_eq!(r.body["model"], "claude-sonnet-4-5");
    assert_eq!(r.body["max_tokens"], 8192);
    let system = r.body["system"].as_str().unwrap();
    assert!(
        system.contains("<<<<<<< SEARCH"),
        "the edit format's rules: {system}"
    );
    let msgs = r.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0, "user");
    let prompt = &msgs[0].1;
    assert!(prompt.contains("Greet people with Welcome instead of Hello"));
    assert!(prompt.contains("# Repository map"), "{prompt}");
    assert!(prompt.contains("app.py: fn add, fn greet"), "{prompt}");
    assert!(prompt.contains(APP_PY), "app.py in full: {prompt}");

    // The ledger: one round, its tokens and estimated cost.
    assert_eq!(rounds(&t, &id), [(1, "passed".to_string(), None)]);
    let (provider, model, input, cost, known): (String, String, i64, f64, bool) = t
        .ledger()
        .query_row(
            "SELECT provider, model, input_tokens, cost_usd, cost_known FROM upgrades WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (provider.as_str(), model.as_str(), input),
        ("test", "claude-sonnet-4-5", 1200)
    );
    assert!(known && cost > 0.0036 && cost < 0.01, "{cost}");
    assert!(!ledger_bytes(&t).contains(KEY), "the API key reached the ledger");
    assert!(!run.stdout.contains(KEY) && !run.stderr.contains(KEY));

    let ledger = t.graft(&["ledger"]);
    ledger
        .success()
        .stdout_has("generation cost")
        .stdout_has("1 upgrade(s), 1 round(s)");
    let json = t.graft(&["ledger", "--json"]).json();
    assert_eq!(json["generation"]["rounds"], 1);
    assert_eq!(json["generation"]["recent"][0]["model"], "claude-sonnet-4-5");
}

#[test]
fn failing_test_is_repaired_in_round_two() {
    let server = LlmServer::start(Api::Openai);
    let t = target(&server, "", "");
    // Round 1 changes the greeting but breaks add(); round 2 repairs it.
    server.reply(&format!(
        "{}\napp.py\n```\n<<<<<<< SEARCH\n{ADD_OK}\n=======\n{ADD_BROKEN}\n>>>>>>> REPLACE\n```\n",
        sr(GREET, WELCOME)
    ));
    server.reply(&sr(ADD_BROKEN, ADD_OK));
    let run = upgrade(&t, "Greet people with Welcome", &["--json"]);
    run.success();
    let id = run.json()["id"].as_str().unwrap().to_string();
    let app = t.read("app.py");
    assert!(app.contains("return a + b") && app.contains("Welcome, "), "{app}");

    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
        assert_eq!(r.body["model"], "gpt-4o-mini");
    }
    let second = reqs[1].messages();
    let roles: Vec<&str> = second.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert!(second[2].1.contains(ADD_BROKEN), "the model's own reply is kept");
    let feedback = &second[3].1;
    assert!(feedback.contains("The required gate `test` failed"), "{feedback}");
    assert!(
        feedback.contains("FAIL: test_add"),
        "the gate's output: {feedback}"
    );
    assert!(
        feedback.contains("return a - b"),
        "the files as they now are: {feedback}"
    );

    assert_eq!(
        rounds(&t, &id),
        [
            (1, "gate_failed".to_string(), Some("gate_failed:test".to_string())),
            (2, "passed".to_string(), None)
        ]
    );
    let gate_rounds = t.count(&format!(
        "SELECT COUNT(DISTINCT round) FROM gate_runs WHERE upgrade_id = '{id}' AND name = 'test'"
    ));
    assert_eq!(gate_rounds, 2);
    for step in ["generate:2", "stage:2", "gate:parse:2", "gate:test:2"] {
        let n = t.count(&format!(
            "SELECT COUNT(*) FROM steps WHERE upgrade_id = '{id}' AND step = '{step}'"
        ));
        assert_eq!(n, 2, "{step} begin and end");
    }
    let files = t.count(&format!(
        "SELECT COUNT(*) FROM file_changes WHERE upgrade_id = '{id}'"
    ));
    assert_eq!(files, 1, "file changes of the last round only");
}

#[test]
fn stuck_loop_stops_when_the_same_error_comes_back() {
    let server = LlmServer::start(Api::Anthropic);
    let t = target(&server, "max_retries = 3", "");
    let before = t.snapshot();
    server.reply(&sr(ADD_OK, ADD_BROKEN));
    // A different edit that leaves the same test failing.
    server.reply(&sr(GREET, WELCOME));
    server.reply(&sr(WELCOME, GREET));
    let run = upgrade(&t, "Make add subtract", &[]);
    run.code(4)
        .stdout_has("stopped after round 2 of 3: the same error came back twice in a row");
    assert_eq!(server.requests().len(), 2, "no third round");
    let id = t.last_upgrade();
    assert_eq!(
        rounds(&t, &id).iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["gate_failed", "stuck"]
    );
    t.snapshot().assert_same(&before, "stuck loop");
}

#[test]
fn malformed_replies_are_refused_with_nothing_applied() {
    let junk = "x".repeat(5 * 1024 * 1024);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "no blocks",
            "The code looks fine to me; no change is needed.".into(),
            "no_edits",
        ),
        ("ambiguous search", ambiguous(), "search_ambiguous"),
        (
            "path escape",
            "../outside.py\n```python\n<<<<<<< SEARCH\n=======\nimport os\n>>>>>>> REPLACE\n```\n".into(),
            "path_traversal",
        ),
        (
            "partial fence",
            "app.py\n```python\ndef add(a, b):\n    return a + b\n\n\ndef greet(name):\n".into(),
            "truncated_reply",
        ),
        ("5 MB of junk", junk, "reply_too_large"),
    ];
    for (what, reply, reason) in cases {
        let server = LlmServer::start(Api::Anthropic);
        let t = target(&server, "max_retries = 1", "");
        let before = t.snapshot();
        server.reply(&reply);
        let run = upgrade(&t, "Improve the greeting", &["--json"]);
        run.code(3);
        let report = run.json();
        assert_eq!(
            report["failure"]["reason"], reason,
            "{what}: {}",
            report["failure"]
        );
        assert_eq!(report["state"], "failed", "{what}");
        t.snapshot().assert_same(&before, what);
        assert!(!t.root.parent().unwrap().join("outside.py").exists(), "{what}");
        let id = report["id"].as_str().unwrap();
        assert_eq!(
            rounds(&t, id),
            [(1, "refused".to_string(), Some(reason.to_string()))],
            "{what}"
        );
    }
}

#[test]
fn a_refused_edit_is_reported_back_with_its_reason() {
    let server = LlmServer::start(Api::Anthropic);
    let t = target(&server, "", "");
    server.reply(&ambiguous());
    server.reply(&sr(GREET, WELCOME));
    upgrade(&t, "Improve the greeting", &[]).success();
    let second = server.requests()[1].messages();
    let told = &second[2].1;
    assert!(
        told.contains("Graft could not apply your reply, so nothing of it was applied:\nSEARCH/REPLACE block 1 for `dup.py`: the SEARCH text starting `x = 1` matches 2 places (lines 1, 3); Graft never guesses between them"),
        "{told}"
    );
    assert!(t.read("app.py").contains("Welcome, "));
}

#[test]
fn rate_limit_then_success() {
    let server = LlmServer::start(Api::Anthropic);
    let t = target(&server, "", "");
    server.rate_limited(1);
    server.reply(&sr(GREET, WELCOME));
    let run = upgrade(&t, "Greet with Welcome", &[]);
    run.success()
        .stderr_has("HTTP 429; retrying in 1s (attempt 2 of 5)");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let waited = reqs[1].at - reqs[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After was not honoured: {waited:?}"
    );
    assert_eq!(reqs[0].body, reqs[1].body, "the same request again");
    assert!(t.read("app.py").contains("Welcome, "));
}

#[test]
fn timeout_fails_cleanly() {
    let server = LlmServer::start(Api::Openai);
    let t = target(&server, "", "timeout = \"1s\"\nretries = 1\n");
    let before = t.snapshot();
    server.slow_reply(&sr(GREET, WELCOME), Duration::from_secs(4));
    server.slow_reply(&sr(GREET, WELCOME), Duration::from_secs(4));
    let run = upgrade(&t, "Greet with Welcome", &[]);
    run.code(9).stdout_has(&format!(
        "provider `test` (openai API, model gpt-4o-mini): {}/chat/completions did not answer within 1s (2 attempts); raise `timeout` if the model is slow",
        server.base_url()
    ));
    assert_eq!(server.requests().len(), 2);
    t.snapshot().assert_same(&before, "timeout");
    let (state, reason, _) = t.upgrade_row(&t.last_upgrade());
    assert_eq!(
        (state.as_str(), reason.as_deref()),
        ("failed", Some("provider_timeout"))
    );
}

#[test]
fn the_token_budget_stops_a_costly_repair() {
    let server = LlmServer::start(Api::Anthropic);
    let t = target(&server, "[provider.budget]\nmax_tokens = 2000", "");
    let before = t.snapshot();
    server.reply(&sr(ADD_OK, ADD_BROKEN));
    server.reply(&sr(ADD_BROKEN, ADD_OK));
    let run = upgrade(&t, "Make add subtract", &["--json"]);
    run.code(9);
    let failure = &run.json()["failure"];
    assert_eq!(failure["reason"], "budget_exceeded");
    let message = failure["message"].as_str().unwrap();
    let used = 1200 + (sr(ADD_OK, ADD_BROKEN).len() as u64).div_ceil(4);
    assert!(
        message.starts_with(&format!(
            "the token budget of this upgrade is spent: {used} tokens used, the next prompt needs about "
        )),
        "{message}"
    );
    assert!(
        message.ends_with("the limit is 2000 (`[provider.budget] max_tokens`)"),
        "{message}"
    );
    assert_eq!(server.requests().len(), 1, "no call over the budget");
    t.snapshot().assert_same(&before, "over budget");
}

#[test]
fn missing_api_key_names_the_variable() {
    let server = LlmServer::start(Api::Anthropic);
    let t = target(&server, "", "");
    let before = t.snapshot();
    let run = t.graft(&["upgrade", "Greet with Welcome"]);
    run.code(9).stderr_has(
        "error: provider `test` needs an API key in the environment variable GRAFT_TEST_KEY, which is not set; export it (`export GRAFT_TEST_KEY=...`) and run again",
    );
    let json = t.graft(&["upgrade", "Greet with Welcome", "--json"]);
    json.code(9);
    assert_eq!(json.json()["error"]["code"], "missing_api_key");
    assert!(server.requests().is_empty());
    assert_eq!(t.count("SELECT COUNT(*) FROM upgrades"), 0);
    t.snapshot().assert_same(&before, "missing key");
}

#[test]
fn dry_run_prints_prompt_size_diff_and_gates() {
    let server = LlmServer::start(Api::Anthropic);
    let t = target(&server, "", "");
    let before = t.snapshot();
    server.reply(&sr(GREET, WELCOME));
    let run = upgrade(&t, "Greet with Welcome", &["--dry-run"]);
    run.success()
        .stdout_has("round 1  test (claude-sonnet-4-5)  prompt ")
        .stdout_has(" chars (~")
        .stdout_has("+    return \"Welcome, \" + name")
        .stdout_has("✓ gate test")
        .stdout_has("dry run");
    t.snapshot().assert_same(&before, "dry run");
}

#[test]
fn provider_setup_errors() {
    let t = Target::python();
    t.graft(&["upgrade", "Do something"])
        .code(5)
        .stderr_has("no provider is configured");
    let server = LlmServer::start(Api::Anthropic);
    let t = target(&server, "", "");
    t.graft_env(&["upgrade", "x", "--provider", "gpt"], &[(KEY_ENV, KEY)])
        .code(2)
        .stderr_has("no provider named `gpt` in graft.toml (configured: test)");
    t.graft(&["upgrade", ""])
        .code(2)
        .stderr_has("the instruction is empty");
    t.graft(&["upgrade", "--suggestion", "sug_nope"])
        .code(6)
        .stderr_has("no suggestion `sug_nope` in the ledger");
}

#[test]
fn a_suggestion_becomes_an_instruction_and_is_linked() {
    let server = LlmServer::start(Api::Anthropic);
    let t = target(&server, "", "");
    t.graft(&["status"]).success();
    let ledger = graft_ledger::Ledger::open(&t.path(".graft/ledger.db")).unwrap();
    ledger
        .insert_scan(
            &graft_ledger::Scan {
                id: "scan_20261121_100000_aaaaaa".into(),
                created_at: graft_ledger::now(),
                root: t.root.display().to_string(),
                scope: None,
                commit_id: None,
                duration_ms: 5,
                summary: serde_json::json!({}),
                suggestions_pruned_at: None,
            },
            [graft_ledger::NewSuggestion {
                id: "sug_20261121_100000_aaaaaa_01",
                kind: "duplicate",
                title: "Warmer greeting",
                files: &["app.py".to_string()],
                risk: "low",
                priority: 5,
                instruction: "Make greet() say Welcome instead of Hello.",
                detail: &serde_json::json!({}),
            }],
            20,
        )
        .unwrap();
    server.reply(&sr(GREET, WELCOME));
    let run = t.graft_env(
        &[
            "upgrade",
            "--suggestion",
            "sug_20261121_100000_aaaaaa_01",
            "--json",
        ],
        &[(KEY_ENV, KEY)],
    );
    run.success();
    let report = run.json();
    assert_eq!(report["title"], "Warmer greeting");
    let id = report["id"].as_str().unwrap();
    let prompt = &server.requests()[0].messages()[0].1;
    assert!(
        prompt.contains("Make greet() say Welcome instead of Hello."),
        "{prompt}"
    );
    assert!(
        prompt.contains("suggestion sug_20261121_100000_aaaaaa_01"),
        "{prompt}"
    );
    let s = ledger
        .suggestion("sug_20261121_100000_aaaaaa_01")
        .unwrap()
        .unwrap();
    assert_eq!(s.upgrade_id.as_deref(), Some(id));
    let kind: String = t
        .ledger()
        .query_row("SELECT kind FROM upgrades WHERE id = ?1", [id], |r| r.get(0))
        .unwrap();
    assert_eq!(kind, "suggestion");
}

/// Killed in the middle of a repair round: recovery leaves the repo as it
/// was and the journal closed.
#[test]
fn kill_during_a_repair_round_recovers() {
    for point in ["generate:2:after", "gate:test:2:before"] {
        let server = LlmServer::start(Api::Anthropic);
        let t = target(&server, "", "");
        let before = t.snapshot();
        server.reply(&sr(ADD_OK, ADD_BROKEN));
        server.reply(&sr(ADD_BROKEN, "def add(a, b):\n    return b + a"));
        t.graft_env(
            &["upgrade", "Swap the operands of add"],
            &[(KEY_ENV, KEY), ("GRAFT_TEST_KILL_AT", point)],
        )
        .killed();
        let id = t.last_upgrade();
        t.assert_recovered_interrupted(&id, &before, point);
        assert_eq!(
            std::fs::read_to_string(t.path(".graft/staging/app.py")).unwrap(),
            APP_PY,
            "{point}"
        );
        // And it works again.
        t.upgrade_patch(&good_patch(), &[]).success();
    }
}

/// Ollama and friends: a local OpenAI-compatible endpoint with no key and
/// a model without a known price.
#[test]
fn local_endpoint_without_key_or_price() {
    let server = LlmServer::start(Api::Openai);
    let t = Target::python_with_config(&format!(
        "{CONFIG}\n[provider.llm.local]\napi = \"openai\"\nbase_url = \"{}\"\nmodel = \"qwen2.5-coder:7b\"\n",
        server.base_url()
    ));
    // A protected file: listed in the map at most, its content never sent.
    t.write(".env", "API_TOKEN=hunter2\n");
    t.commit("env");
    server.reply(&sr(GREET, WELCOME));
    let run = t.graft(&["upgrade", "Greet with Welcome; the token in .env stays", "--json"]);
    run.success();
    let id = run.json()["id"].as_str().unwrap().to_string();
    let r = &server.requests()[0];
    assert_eq!(r.header("authorization"), None, "no key, no Authorization header");
    assert_eq!(r.body["model"], "qwen2.5-coder:7b");
    assert_eq!(r.body["max_tokens"], 8192);
    assert!(
        !r.body.to_string().contains("hunter2"),
        "a protected file's content was sent"
    );
    let (cost, known): (f64, bool) = t
        .ledger()
        .query_row(
            "SELECT cost_usd, cost_known FROM upgrades WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((cost, known), (0.0, false));
    t.graft(&["ledger"])
        .success()
        .stdout_has("1 upgrade(s) used a model without a known price, counted as $0")
        .stdout_has("unpriced");
}

#[test]
fn a_rejected_key_fails_at_once_with_the_apis_words() {
    let server = LlmServer::start(Api::Anthropic);
    let t = target(&server, "", "");
    let before = t.snapshot();
    server.push(crate::support::llm::Scripted {
        status: 401,
        headers: vec![],
        body: r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#
            .into(),
        delay: Duration::ZERO,
    });
    upgrade(&t, "Greet with Welcome", &[]).code(9).stdout_has(&format!(
        "provider `test` (anthropic API, model claude-sonnet-4-5): {}/v1/messages answered HTTP 401: authentication_error: invalid x-api-key (1 attempt); check the key in $GRAFT_TEST_KEY",
        server.base_url()
    ));
    assert_eq!(server.requests().len(), 1, "a 401 is not retried");
    t.snapshot().assert_same(&before, "rejected key");
}
