//! `graft demo`: Graft's main job on a built-in target, start to finish.
//!
//! A small Python service with a unittest suite and a data file is written
//! to a temporary git repo; then a good change lands, a change that breaks
//! the tests is stopped by the test gate, a syntax error is stopped by the
//! parse gate before any test runs, a hostile path is refused, and the good
//! change is rolled back with its data file restored. Only git and
//! python3 are needed.

use std::path::Path;
use std::process::Command;

use console::style;
use graft_ledger::{RequestKind, UpgradeState};
use graft_pipeline::{ChangeSource, Pipeline, RecordOnly, UpgradeRequest, Workspace, recover, rollback};
use serde_json::json;

use super::Ctx;
use crate::output::{CliError, EXIT_INTERNAL, EXIT_OK, Progress, print_json};

const APP: &str = r#""""A tiny greeting service."""
import json
import pathlib

STATE = pathlib.Path(__file__).parent / "data" / "state.json"


def greet(name):
    return "Hello, " + name


def visits():
    return json.loads(STATE.read_text())["visits"]
"#;

const TEST: &str = r#"import unittest

import app


class GreetTest(unittest.TestCase):
    def test_greets_by_name(self):
        self.assertTrue(app.greet("Ada").endswith("Ada"))

    def test_greeting_is_polite(self):
        self.assertIn(app.greet("Ada").split(",")[0], ("Hello", "Welcome back"))


if __name__ == "__main__":
    unittest.main()
"#;

const CONFIG: &str = r#"[target]
name = "greeter"
branch = "main"
data = ["data/state.json"]

[[gates]]
name = "test"
kind = "test"
command = "python3 -m unittest -q"
timeout = "2m"
"#;

/// A good change: a friendlier greeting, and a new version of the data.
const GOOD: &str = r#"--- a/app.py
+++ b/app.py
@@ -7,7 +7,7 @@ STATE = pathlib.Path(__file__).parent / "data" / "state.json"
 
 
 def greet(name):
-    return "Hello, " + name
+    return "Welcome back, " + name
 
 
 def visits():
"#;

/// Breaks the tests (the greeting no longer ends with the name), though
/// the module still parses.
const BREAKS_TESTS: &str = r#"--- a/app.py
+++ b/app.py
@@ -7,7 +7,7 @@ STATE = pathlib.Path(__file__).parent / "data" / "state.json"
 
 
 def greet(name):
-    return "Welcome back, " + name
+    return "Welcome back, " + name.upper() + "!"
 
 
 def visits():
"#;

/// Does not parse.
const SYNTAX_ERROR: &str =
    r#"[{"op": "modify", "path": "app.py", "search": "def greet(name):", "replace": "def greet(name:"}]"#;

/// Tries to write outside the repo.
const HOSTILE: &str = r#"--- a/../outside.txt
+++ b/../outside.txt
@@ -1 +1 @@
-x
+y
"#;

pub fn run(ctx: &Ctx, keep: bool) -> Result<i32, CliError> {
    let dir = tempfile::Builder::new()
        .prefix("graft-demo-")
        .tempdir()
        .map_err(|e| CliError::new(EXIT_INTERNAL, "io", format!("cannot create a temp dir: {e}")))?;
    let root = dir.path().join("greeter");
    say(ctx, &format!("building a demo target in {}", root.display()));
    make_target(&root).map_err(|e| CliError::new(EXIT_INTERNAL, "demo_setup", e))?;
    let ws = Workspace::open(&root)?;
    let progress = Progress::new(ctx.json);
    let pipeline = Pipeline {
        ws: &ws,
        observer: &progress,
        deploy: &RecordOnly,
    };
    let upgrade = |title: &str, source: ChangeSource, kind| {
        pipeline.run(UpgradeRequest {
            kind,
            title: Some(title.into()),
            source,
            requested_by: "demo".into(),
            priority: 5,
            dry_run: false,
            approve_protected: false,
        })
    };
    let patch = |name: &str, text: &str| ChangeSource::Patch {
        name: name.into(),
        bytes: text.as_bytes().to_vec(),
    };

    say(
        ctx,
        "\n1. a good change: every gate passes, it lands on main with a tag",
    );
    let good = upgrade(
        "Friendlier greeting",
        patch("friendly.diff", GOOD),
        RequestKind::Patch,
    )?;
    expect(
        good.state == UpgradeState::Promoted,
        "the good change should land",
        &good,
    )?;
    // The service runs on and writes its data file.
    std::fs::write(root.join("data/state.json"), "{\"visits\": 42}\n")
        .map_err(|e| CliError::new(EXIT_INTERNAL, "io", e.to_string()))?;

    say(
        ctx,
        "\n2. a change that breaks the tests: the test gate stops it, nothing lands",
    );
    let broken = upgrade(
        "Shout the name",
        patch("shout.diff", BREAKS_TESTS),
        RequestKind::Patch,
    )?;
    expect(
        broken.state == UpgradeState::Failed,
        "the breaking change should fail its gate",
        &broken,
    )?;

    say(
        ctx,
        "\n3. a syntax error: the parse gate stops it before any test runs",
    );
    let syntax = upgrade(
        "Half-finished edit",
        ChangeSource::Edits {
            name: "edit.json".into(),
            bytes: SYNTAX_ERROR.as_bytes().to_vec(),
        },
        RequestKind::Edits,
    )?;
    expect(
        syntax.state == UpgradeState::Failed,
        "the syntax error should be caught",
        &syntax,
    )?;

    say(
        ctx,
        "\n4. a patch that reaches outside the repo: refused before anything is staged",
    );
    let hostile = upgrade(
        "Escape attempt",
        patch("escape.diff", HOSTILE),
        RequestKind::Patch,
    )?;
    expect(
        hostile.state == UpgradeState::Failed,
        "the hostile patch should be refused",
        &hostile,
    )?;

    say(
        ctx,
        "\n5. roll back the good change: a revert commit, and the data file as it was",
    );
    let held = recover::exclusive(&ws, &RecordOnly, true)?.expect("a blocking lock is always taken");
    let rb = rollback::rollback(&ws, &RecordOnly, &held, &good.id, "demo", &progress)?;
    drop(held);
    progress.finish();
    let greeting_back = std::fs::read_to_string(root.join("app.py")).unwrap_or_default() == APP;
    let data_back =
        std::fs::read_to_string(root.join("data/state.json")).unwrap_or_default() == "{\"visits\": 0}\n";

    let stats = ws.ledger.stats(10)?;
    if ctx.json {
        print_json(&json!({
            "repo": root,
            "upgrades": [&good, &broken, &syntax, &hostile],
            "rollback": rb,
            "code_restored": greeting_back,
            "data_restored": data_back,
            "ledger": stats,
        }));
    } else {
        println!("\n{}", style("what happened").bold());
        for (what, r) in [
            ("good change", &good),
            ("breaks tests", &broken),
            ("syntax error", &syntax),
            ("hostile path", &hostile),
        ] {
            let why = r.failure.as_ref().map(|f| f.reason.clone()).unwrap_or_default();
            println!("  {what:<14} {:<10} {why}", r.state);
        }
        println!(
            "  rollback       revert {}  code restored: {}  data restored: {}",
            rb.revert_commit
                .as_deref()
                .map(crate::output::short)
                .unwrap_or("-"),
            yes(greeting_back),
            yes(data_back)
        );
        println!(
            "\nledger: {} upgrades, {} promoted, {} failed, {} rolled back, {} rollback(s) recorded",
            stats.total,
            stats.by_state.get("promoted").copied().unwrap_or(0),
            stats.by_state.get("failed").copied().unwrap_or(0),
            stats.by_state.get("rolled_back").copied().unwrap_or(0),
            stats.rollbacks
        );
    }
    if keep {
        let path = dir.keep();
        say(
            ctx,
            &format!(
                "\nthe demo repo is kept at {}: try `graft -C {} ledger`",
                path.display(),
                root.display()
            ),
        );
    }
    if !(greeting_back && data_back) {
        return Err(CliError::new(
            EXIT_INTERNAL,
            "demo_failed",
            "the rollback did not restore the code and the data",
        ));
    }
    Ok(EXIT_OK)
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

fn say(ctx: &Ctx, text: &str) {
    if !ctx.json {
        eprintln!("{}", style(text).bold());
    }
}

fn expect(ok: bool, what: &str, r: &graft_pipeline::UpgradeReport) -> Result<(), CliError> {
    if ok {
        Ok(())
    } else {
        Err(CliError::new(
            EXIT_INTERNAL,
            "demo_failed",
            format!(
                "demo step went wrong: {what}, but {} ended {} ({})",
                r.id,
                r.state,
                r.failure.as_ref().map(|f| f.message.as_str()).unwrap_or("")
            ),
        ))
    }
}

fn make_target(root: &Path) -> Result<(), String> {
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("has a parent")).map_err(|e| e.to_string())?;
        std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    write("app.py", APP)?;
    write("test_app.py", TEST)?;
    write("data/state.json", "{\"visits\": 0}\n")?;
    write("graft.toml", CONFIG)?;
    write(".gitignore", "__pycache__/\ndata/\n")?;
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
    git(&["commit", "--quiet", "-m", "greeter v1"])?;
    Ok(())
}
