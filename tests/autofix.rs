//! The providers that edit the staging tree themselves: the autofixers
//! (real ruff on a Python target, real cargo clippy and fmt on a Rust
//! target) and an external command. What they change goes through the
//! same read-back, policy and gates as a patch.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::*;

/// The ruff that scripts/test.sh installs (or one on PATH).
fn ruff_dir() -> PathBuf {
    let candidates = [
        std::env::var_os("GRAFT_TEST_RUFF").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/venv/bin/ruff")),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/pip/bin/ruff")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.is_file() {
            return c.parent().unwrap().to_path_buf();
        }
    }
    if let Some(dir) = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|d| d.join("ruff").is_file())
    {
        return dir;
    }
    panic!(
        "ruff is needed by the autofix tests and was not found: run scripts/test.sh (it installs ruff into target/tools/venv), or `pip install ruff`"
    );
}

/// PATH with ruff's directory first.
fn path_with_ruff() -> String {
    let mut dirs = vec![ruff_dir()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap().to_string_lossy().into_owned()
}

/// APP_PY with an unused import and unformatted code.
const MESSY_PY: &str =
    "import os\n\n\ndef add(a,b):\n    return a+b\n\n\ndef greet(name):\n    return \"Hello, \" + name\n";

fn messy_python(extra_config: &str) -> Target {
    let t = Target::python_with_config(&format!("{CONFIG}\n{extra_config}"));
    t.write("app.py", MESSY_PY);
    t.commit("messy");
    t
}

#[test]
fn autofix_runs_ruff_and_lands_what_passes_the_gates() {
    let t = messy_python("");
    let path = path_with_ruff();
    let run = t.graft_env(&["upgrade", "--autofix", "--json"], &[("PATH", &path)]);
    run.success();
    let report = run.json();
    assert_eq!(report["state"], "promoted");
    // ruff check --fix dropped the unused import; ruff format did the rest.
    assert_eq!(t.read("app.py"), APP_PY);
    let id = report["id"].as_str().unwrap();
    let (kind, provider): (String, String) = t
        .ledger()
        .query_row("SELECT kind, provider FROM upgrades WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((kind.as_str(), provider.as_str()), ("autofix", "autofix"));
    let tail: String = t
        .ledger()
        .query_row(
            "SELECT output_tail FROM generation_rounds WHERE upgrade_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        tail.contains("$ ruff check --fix") && tail.contains("$ ruff format"),
        "{tail}"
    );

    // Nothing left to fix: refused, nothing changes.
    let before = t.snapshot();
    t.graft_env(&["upgrade", "--autofix"], &[("PATH", &path)])
        .code(3)
        .stdout_has("the provider changed no file in the staging tree; nothing to upgrade");
    t.snapshot().assert_same(&before, "nothing to fix");
}

#[test]
fn autofix_without_any_fixer_says_what_to_install() {
    let t = messy_python("");
    let before = t.snapshot();
    t.graft_env(&["upgrade", "--autofix"], &[("PATH", "/usr/bin:/bin")])
        .code(9)
        .stdout_has(
            "the autofix provider has nothing to run: none of its fixers is installed (looked for: ruff)",
        );
    t.snapshot().assert_same(&before, "no fixer");
}

#[test]
fn autofix_runs_clippy_fix_and_fmt_on_a_rust_target() {
    let t = Target::with_files(&[
        (
            "Cargo.toml",
            "[package]\nname = \"demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        ),
        (
            "src/main.rs",
            "fn main() {\n    let v: Vec<i32> = Vec::new();\n    if v.len() == 0 {\n        println!(\"empty {}\", helper( 1 ));\n    }\n}\n\nfn helper( x:i32 )->i32{ x+1 }\n",
        ),
        (".gitignore", "target/\n"),
        (
            "graft.toml",
            "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"build\"\nkind = \"build\"\ncommand = \"cargo build --quiet\"\n",
        ),
    ]);
    let lock = std::process::Command::new("cargo")
        .args(["generate-lockfile", "--offline"])
        .current_dir(&t.root)
        .output()
        .unwrap();
    assert!(lock.status.success(), "{}", String::from_utf8_lossy(&lock.stderr));
    t.commit("lockfile");
    // It rewrites src/main.rs, an entry point: policy asks for approval.
    let run = t.graft(&["upgrade", "--autofix", "--json"]);
    run.code(11);
    let held = run.json();
    assert_eq!(held["state"], "awaiting_approval");
    assert!(
        held["risk_reasons"]
            .to_string()
            .contains("changes entry point `src/main.rs`"),
        "{held}"
    );
    let id = held["id"].as_str().unwrap().to_string();
    t.graft(&["approve", &id]).success().stdout_has("promoted");
    let main = t.read("src/main.rs");
    assert!(main.contains("if v.is_empty() {"), "clippy --fix: {main}");
    assert!(
        main.contains("fn helper(x: i32) -> i32 {\n    x + 1\n}"),
        "cargo fmt: {main}"
    );
    assert_eq!(t.git(&["status", "--porcelain"]), "");
    assert_eq!(
        t.git(&["diff", "--name-only", "HEAD~1", "HEAD"]),
        "src/main.rs",
        "build output stays out of the change"
    );
}

/// A command provider: a script that edits the staging tree.
fn command_target(script: &str, extra: &str) -> Target {
    let t = Target::python();
    let s = t.input("agent.sh", script.as_bytes());
    let config = format!(
        "{CONFIG}\n[provider]\ndefault = \"agent\"\n\n[provider.command.agent]\ncommand = \"sh {} {{instruction}}\"\n{extra}\n",
        s.display()
    );
    t.write("graft.toml", &config);
    t.commit("config");
    t
}

#[test]
fn command_provider_changes_become_the_change() {
    let t = command_target(
        "printf '%s\\n' \"$1\" > NOTES.md\nsed -i 's/Hello, /Welcome, /' app.py\necho \"agent: round $GRAFT_ROUND done\"\n",
        "",
    );
    let instruction = "Say Welcome; don't `rm -rf` $(anything)";
    let run = t.graft(&["upgrade", instruction, "--json"]);
    run.success();
    let id = run.json()["id"].as_str().unwrap().to_string();
    assert!(t.read("app.py").contains("Welcome, "));
    assert_eq!(
        t.read("NOTES.md"),
        format!("{instruction}\n"),
        "the instruction arrives intact"
    );
    let tail: String = t
        .ledger()
        .query_row(
            "SELECT output_tail FROM generation_rounds WHERE upgrade_id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tail, "agent: round 1 done\n");
}

#[test]
fn command_provider_symlink_is_refused() {
    let t = command_target("ln -s /etc/passwd leak.txt\n", "");
    let before = t.snapshot();
    let run = t.graft(&["upgrade", "Leak a file", "--json"]);
    run.code(3);
    assert_eq!(run.json()["failure"]["reason"], "symlink_escape");
    t.snapshot().assert_same(&before, "symlink");
}

#[test]
fn command_provider_output_over_the_limits_is_refused_before_git_stores_it() {
    let t = command_target(
        "case \"$1\" in\n  huge) head -c 200000000 /dev/urandom > huge.bin ;;\n  many) mkdir many && cd many && seq 50000 | xargs touch ;;\nesac\n",
        "max_rounds = 1\n",
    );
    let before = t.snapshot();
    for (instruction, reason, says) in [
        ("huge", "too_large", "raise `[limits] max_file_bytes`"),
        ("many", "too_many_files", "raise `[limits] max_files`"),
    ] {
        let objects = bytes_under(&t.path(".git/objects"));
        let run = t.graft(&["upgrade", instruction, "--json"]);
        run.code(3);
        let failure = &run.json()["failure"];
        assert_eq!(failure["reason"], reason, "{failure}");
        assert!(failure["message"].as_str().unwrap().contains(says), "{failure}");
        let grown = bytes_under(&t.path(".git/objects")).saturating_sub(objects);
        assert!(grown < 1_000_000, "{instruction}: git stored {grown} bytes of it");
        t.snapshot().assert_same(&before, instruction);
    }
    assert!(
        !t.path(".graft/staging/huge.bin").exists(),
        "the staging tree is clean again"
    );
    assert!(
        !t.path(".graft/staging/many").exists(),
        "the staging tree is clean again"
    );
}

#[test]
fn command_provider_timeout_kills_its_group() {
    let t = command_target(
        "(sleep 3; touch ../agent-survived) & sleep 30\n",
        "timeout = \"1s\"\n",
    );
    let before = t.snapshot();
    let run = t.graft(&["upgrade", "Take forever"]);
    run.code(9).stdout_has(
        "provider `agent` ran past its timeout of 1s and was killed with its whole process group",
    );
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        !t.path(".graft/agent-survived").exists(),
        "a process of the agent's group survived"
    );
    t.snapshot().assert_same(&before, "command timeout");
    assert!(t.open_steps(&t.last_upgrade()).is_empty());
}

#[test]
fn unreachable_llm_falls_back_to_autofix_when_allowed() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = messy_python(&format!(
        "[provider]\nautofix_when_unreachable = true\n\n[provider.llm.local]\napi = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"qwen2.5-coder\"\nretries = 0\n"
    ));
    let run = t.graft_env(&["upgrade", "Tidy the code"], &[("PATH", &path_with_ruff())]);
    run.success()
        .stderr_has("is unreachable")
        .stderr_has("running the autofixers instead");
    assert_eq!(t.read("app.py"), APP_PY);
}

#[test]
fn a_fallback_that_fails_a_gate_is_not_repaired() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Target::python_with_config(&format!(
        "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"strict\"\nkind = \"lint\"\ncommand = \"echo never good enough; exit 1\"\n\n[provider]\nautofix_when_unreachable = true\n\n[provider.llm.local]\napi = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"m\"\nretries = 0\n"
    ));
    t.write("app.py", MESSY_PY);
    t.commit("messy");
    let before = t.snapshot();
    let run = t.graft_env(
        &["upgrade", "Tidy the code", "--json"],
        &[("PATH", &path_with_ruff())],
    );
    run.code(4);
    assert_eq!(run.json()["failure"]["reason"], "gate_failed:strict");
    let id = t.last_upgrade();
    let rounds: Vec<(String, String)> = {
        let conn = t.ledger();
        let mut stmt = conn
            .prepare("SELECT provider, outcome FROM generation_rounds WHERE upgrade_id = ?1 ORDER BY round")
            .unwrap();
        stmt.query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(rounds, [("autofix".to_string(), "gate_failed".to_string())]);
    t.snapshot().assert_same(&before, "fallback failed a gate");
}
