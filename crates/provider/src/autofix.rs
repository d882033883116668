//! The autofix provider, the rule-based fallback: the ecosystem's own
//! fixers run on the staging worktree, whichever are installed, and what
//! they change is the change, gated like any other.
//!
//! | ecosystem (found by)        | fixers                                        |
//! |-----------------------------|-----------------------------------------------|
//! | Rust (`Cargo.toml`)         | `cargo clippy --fix`, `cargo fmt`             |
//! | Python (tracked `*.py`)     | `ruff check --fix`, `ruff format`             |
//! | JS/TS (`package.json`)      | `eslint --fix`, `prettier --write`            |
//! | Go (`go.mod`)               | `gofmt -w`, `go vet` (reports only)           |
//!
//! A fixer's exit code is recorded, not obeyed: fixers exit non-zero when
//! something is left that they cannot fix, and the gates judge the result.

use std::path::{Path, PathBuf};
use std::time::Duration;

use graft_pipeline::process::{self, CommandSpec};
use graft_pipeline::{
    Failure, FailureClass, GateFeedback, GenerateContext, Generated, Generator, Output, Usage,
};
use serde_json::json;

pub struct AutofixGenerator {
    timeout: Duration,
    /// Where to look for tools (the `PATH` at start).
    path: Vec<PathBuf>,
}

impl AutofixGenerator {
    pub fn new(timeout: Duration, path_var: Option<&std::ffi::OsStr>) -> AutofixGenerator {
        AutofixGenerator {
            timeout,
            path: path_var
                .map(|p| std::env::split_paths(p).collect())
                .unwrap_or_default(),
        }
    }

    fn find(&self, root: &Path, tool: &str) -> Option<PathBuf> {
        let local = root.join("node_modules/.bin").join(tool);
        if local.is_file() {
            return Some(local);
        }
        self.path.iter().map(|d| d.join(tool)).find(|p| is_executable(p))
    }

    /// The fixer commands for the repo at `root`, and what was looked for.
    pub fn plan(&self, root: &Path, tracked: &[String]) -> (Vec<(String, String)>, Vec<&'static str>) {
        let mut plan = Vec::new();
        let mut looked = Vec::new();
        let quote = |p: &Path| shell_words::quote(&p.to_string_lossy()).into_owned();
        if root.join("Cargo.toml").is_file() {
            looked.push("cargo clippy, cargo fmt");
            if let Some(cargo) = self.find(root, "cargo") {
                let c = quote(&cargo);
                if self.find(root, "cargo-clippy").is_some() {
                    plan.push((
                        "cargo clippy --fix".into(),
                        format!("{c} clippy --fix --allow-dirty --allow-staged --allow-no-vcs --all-targets --quiet"),
                    ));
                }
                if self.find(root, "cargo-fmt").is_some() {
                    plan.push(("cargo fmt".into(), format!("{c} fmt --all")));
                }
            }
        }
        if tracked.iter().any(|p| p.ends_with(".py")) {
            looked.push("ruff");
            if let Some(ruff) = self.find(root, "ruff") {
                let r = quote(&ruff);
                plan.push((
                    "ruff check --fix".into(),
                    format!("{r} check --fix --exit-zero --quiet ."),
                ));
                plan.push(("ruff format".into(), format!("{r} format --quiet .")));
            }
        }
        if root.join("package.json").is_file() {
            looked.push("eslint, prettier");
            if let Some(eslint) = self.find(root, "eslint") {
                plan.push(("eslint --fix".into(), format!("{} --fix .", quote(&eslint))));
            }
            if let Some(prettier) = self.find(root, "prettier") {
                plan.push((
                    "prettier --write".into(),
                    format!("{} --write .", quote(&prettier)),
                ));
            }
        }
        if root.join("go.mod").is_file() {
            looked.push("gofmt, go vet");
            if let Some(gofmt) = self.find(root, "gofmt") {
                plan.push(("gofmt -w".into(), format!("{} -w .", quote(&gofmt))));
            }
            if let Some(go) = self.find(root, "go") {
                plan.push(("go vet".into(), format!("{} vet ./...", quote(&go))));
            }
        }
        (plan, looked)
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Generator for AutofixGenerator {
    fn name(&self) -> &str {
        "autofix"
    }

    fn title(&self) -> String {
        "Autofix: the ecosystem's fixers".into()
    }

    fn describe(&self) -> serde_json::Value {
        json!({ "provider": "autofix" })
    }

    fn max_rounds(&self) -> u32 {
        1
    }

    fn generate(
        &mut self,
        ctx: &GenerateContext<'_>,
        _feedback: Option<&GateFeedback>,
    ) -> Result<Generated, Failure> {
        let (plan, looked) = self.plan(ctx.staging, ctx.tracked);
        if plan.is_empty() {
            let what = if looked.is_empty() {
                "no Rust, Python, JavaScript/TypeScript or Go project was found here".to_string()
            } else {
                format!(
                    "none of its fixers is installed (looked for: {})",
                    looked.join("; ")
                )
            };
            return Err(Failure::new(
                FailureClass::Provider,
                "no_autofixer",
                format!(
                    "the autofix provider has nothing to run: {what}; install one (e.g. `pip install ruff`, `rustup component add clippy rustfmt`)"
                ),
            ));
        }
        let mut log = String::new();
        for (label, command) in &plan {
            (ctx.message)(&format!("autofix: {label}"));
            let spec = CommandSpec {
                command,
                cwd: ctx.staging,
                env: vec![("GRAFT_STAGING".into(), "1".into())],
                timeout: self.timeout,
            };
            let r = process::run(
                &spec,
                &mut |pgid| (ctx.process)(Some(pgid)),
                &mut |_| {},
                &mut || (ctx.cancelled)(),
            );
            let _ = (ctx.process)(None);
            log.push_str(&format!("$ {label}\n"));
            match r {
                Ok(r) => {
                    let tail: Vec<&str> = r.tail.lines().collect();
                    for l in &tail[tail.len().saturating_sub(20)..] {
                        log.push_str(l);
                        log.push('\n');
                    }
                    if r.cancelled {
                        return Err(Failure::new(
                            FailureClass::Cancelled,
                            "cancelled",
                            "cancelled on request (`graft cancel`); nothing was landed",
                        ));
                    }
                    if r.timed_out {
                        log.push_str(&format!("[timed out after {:?}; killed]\n", self.timeout));
                    } else if let Some(c) = r.exit_code.filter(|c| *c != 0) {
                        log.push_str(&format!("[exit {c}]\n"));
                    }
                }
                Err(e) => log.push_str(&format!("[cannot run: {e}]\n")),
            }
        }
        Ok(Generated {
            output: Output::InPlace,
            usage: Usage::default(),
            edits: plan.len(),
            log,
        })
    }
}
