//! What `graft init` writes: the ecosystems found at the repo root and a
//! commented `graft.toml` with gates that suit them.
//!
//! Tools are looked up by the caller (`installed`), so this stays pure and
//! testable: a gate whose tool is missing is written commented out, with the
//! command to install it, rather than left to fail on the first upgrade.

use std::fmt::Write as _;
use std::path::Path;

/// A build ecosystem recognised by its manifest file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ecosystem {
    Cargo,
    Python,
    Node,
    Go,
}

impl Ecosystem {
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Cargo => "rust (Cargo.toml)",
            Ecosystem::Python => "python (pyproject.toml / requirements.txt)",
            Ecosystem::Node => "javascript (package.json)",
            Ecosystem::Go => "go (go.mod)",
        }
    }
}

/// The ecosystems whose manifest is at `root`.
pub fn detect_ecosystems(root: &Path) -> Vec<Ecosystem> {
    let has = |f: &str| root.join(f).is_file();
    let mut found = Vec::new();
    if has("Cargo.toml") {
        found.push(Ecosystem::Cargo);
    }
    if has("pyproject.toml") || has("requirements.txt") || has("setup.py") {
        found.push(Ecosystem::Python);
    }
    if has("package.json") {
        found.push(Ecosystem::Node);
    }
    if has("go.mod") {
        found.push(Ecosystem::Go);
    }
    found
}

struct GateLine<'a> {
    name: &'a str,
    kind: &'a str,
    command: String,
    timeout: &'a str,
    required: bool,
    /// The tool the command needs, and how to install it when it is missing.
    needs: Option<(&'a str, &'a str)>,
}

/// The gates for one ecosystem. `node_scripts` are the `scripts` keys of
/// package.json.
fn gates_for(eco: Ecosystem, node_scripts: &[String]) -> Vec<GateLine<'static>> {
    let g = |name, kind, command: &str, timeout, required, needs| GateLine {
        name,
        kind,
        command: command.to_string(),
        timeout,
        required,
        needs,
    };
    match eco {
        Ecosystem::Cargo => vec![
            g(
                "build",
                "build",
                "cargo build --all-targets",
                "15m",
                true,
                Some(("cargo", "https://rustup.rs")),
            ),
            g(
                "lint",
                "lint",
                "cargo clippy --all-targets -- -D warnings",
                "15m",
                true,
                Some(("cargo-clippy", "rustup component add clippy")),
            ),
            g(
                "test",
                "test",
                "cargo test",
                "20m",
                true,
                Some(("cargo", "https://rustup.rs")),
            ),
            g(
                "audit",
                "audit",
                "cargo audit",
                "5m",
                false,
                Some(("cargo-audit", "cargo install cargo-audit")),
            ),
        ],
        Ecosystem::Python => vec![
            g(
                "lint",
                "lint",
                "ruff check .",
                "5m",
                true,
                Some(("ruff", "pip install ruff")),
            ),
            g(
                "test",
                "test",
                "python3 -m pytest -q",
                "20m",
                true,
                Some(("pytest", "pip install pytest")),
            ),
            g(
                "audit",
                "audit",
                "pip-audit",
                "5m",
                false,
                Some(("pip-audit", "pip install pip-audit")),
            ),
        ],
        Ecosystem::Node => {
            let has = |s: &str| node_scripts.iter().any(|x| x == s);
            let mut v = vec![g(
                "install",
                "build",
                "npm ci --no-audit --no-fund",
                "15m",
                true,
                Some(("npm", "https://nodejs.org")),
            )];
            if has("build") {
                v.push(g("build", "build", "npm run build", "15m", true, None));
            }
            if has("lint") {
                v.push(g("lint", "lint", "npm run lint", "10m", true, None));
            }
            if has("test") {
                v.push(g("test", "test", "npm test", "20m", true, None));
            }
            v.push(g(
                "audit",
                "audit",
                "npm audit --audit-level=high",
                "5m",
                false,
                Some(("npm", "https://nodejs.org")),
            ));
            v
        }
        Ecosystem::Go => vec![
            g(
                "build",
                "build",
                "go build ./...",
                "15m",
                true,
                Some(("go", "https://go.dev/dl")),
            ),
            g(
                "lint",
                "lint",
                "go vet ./...",
                "10m",
                true,
                Some(("go", "https://go.dev/dl")),
            ),
            g(
                "test",
                "test",
                "go test ./...",
                "20m",
                true,
                Some(("go", "https://go.dev/dl")),
            ),
        ],
    }
}

/// A commented `graft.toml` for a repo with `ecosystems`, landing on
/// `branch`. `installed(tool)` says whether a command is on PATH.
pub fn render_template(
    ecosystems: &[Ecosystem],
    branch: &str,
    node_scripts: &[String],
    installed: &dyn Fn(&str) -> bool,
) -> String {
    let mut out = String::new();
    let eco_names: Vec<&str> = ecosystems.iter().map(|e| e.as_str()).collect();
    let _ = writeln!(
        out,
        "# Graft configuration. Reference: README.md, section \"graft.toml\"."
    );
    if eco_names.is_empty() {
        let _ = writeln!(
            out,
            "# No known ecosystem was found; add the gates your project needs below."
        );
    } else {
        let _ = writeln!(out, "# Detected: {}.", eco_names.join(", "));
    }
    let _ = writeln!(
        out,
        r#"
[target]
# The branch upgrades land on.
branch = "{branch}"
# Data files copied before an upgrade lands, restored by `graft rollback`.
data = []
# Paths a change may touch only with --approve-protected (graft.toml,
# .graft/, .env and key files are always protected).
protected = []

[limits]
max_change_bytes = 1048576   # a whole change
max_file_bytes = 524288      # any one file it writes
max_files = 1000             # files it touches
allow_binary = false

# Gates run in order in the staging worktree, after the built-in `parse` gate
# (tree-sitter and config-file syntax). The first failing required gate stops
# the upgrade; `required = false` gates are advisory."#
    );
    let mut gates = Vec::new();
    for &eco in ecosystems {
        for gate in gates_for(eco, node_scripts) {
            if gates.iter().any(|g: &GateLine| g.name == gate.name) {
                continue;
            }
            // An audit gate is only useful when its tool is there.
            if gate.kind == "audit" && !gate.needs.is_none_or(|(tool, _)| installed(tool)) {
                continue;
            }
            gates.push(gate);
        }
    }
    for gate in &gates {
        let missing = gate.needs.filter(|(tool, _)| !installed(tool));
        let p = if missing.is_some() { "# " } else { "" };
        out.push('\n');
        if let Some((tool, how)) = missing {
            let _ = writeln!(
                out,
                "# `{tool}` was not found on PATH ({how}); uncomment once installed."
            );
        }
        let _ = writeln!(out, "{p}[[gates]]");
        let _ = writeln!(out, "{p}name = \"{}\"", gate.name);
        let _ = writeln!(out, "{p}kind = \"{}\"", gate.kind);
        let _ = writeln!(out, "{p}command = {}", toml_string(&gate.command));
        let _ = writeln!(out, "{p}timeout = \"{}\"", gate.timeout);
        let _ = writeln!(out, "{p}required = {}", gate.required);
    }
    let _ = writeln!(
        out,
        r#"
# A performance gate: the command prints a figure, compared with the live
# release's; the first run records the baseline.
# [[gates]]
# name = "bench"
# kind = "perf"
# command = "./bench.sh"
# pattern = '([0-9.]+) requests/s'
# better = "higher"
# tolerance = 0.10

# Providers turn `graft upgrade "instruction"` into a change. API keys are
# read from the environment variable named here, never written in this file.
# [provider.llm.claude]
# api = "anthropic"                 # or "openai": any Chat Completions endpoint
# model = "claude-sonnet-4-5"
# api_key_env = "ANTHROPIC_API_KEY"
# [provider.llm.local]
# api = "openai"
# base_url = "http://127.0.0.1:11434/v1"   # Ollama, llama.cpp, vLLM, LM Studio
# model = "qwen2.5-coder:7b""#
    );
    out
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
