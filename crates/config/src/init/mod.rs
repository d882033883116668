//! What `graft init` writes: the ecosystems found at the repo root and a
//! commented `graft.toml` with gates that suit them.
//!
//! The caller looks (which tools are installed, where the virtualenv is,
//! which lockfile): a `Probe`. This module only decides, so it stays pure
//! and testable: a gate whose tool is missing is written commented out, with
//! the command to install it, rather than left to fail on the first
//! upgrade, and what the user must know or do comes back as notes to say
//! on the terminal. The `[run]` recipes are in `recipes`.

mod node;
mod python;
pub mod recipes;

use std::fmt::Write as _;
use std::path::Path;

pub use node::{NodeLock, NodeProbe};
pub use python::{PythonEnv, PythonProbe};

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

/// The package name in Cargo.toml, the program a Rust recipe runs.
pub fn cargo_package(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    let value: toml::Table = text.parse().ok()?;
    Some(value.get("package")?.get("name")?.as_str()?.to_string())
}

/// One gate as `graft init` writes it.
pub(crate) struct GateLine {
    name: &'static str,
    kind: &'static str,
    command: String,
    timeout: &'static str,
    required: bool,
    /// The tool the command needs on PATH, and how to install it.
    needs: Option<(&'static str, &'static str)>,
    /// Why it is written commented out, when the probe already knows.
    missing: Option<String>,
    /// Its module already told the user why it cannot run yet.
    said: bool,
}

impl GateLine {
    fn new(
        name: &'static str,
        kind: &'static str,
        command: impl Into<String>,
        timeout: &'static str,
    ) -> GateLine {
        GateLine {
            name,
            kind,
            command: command.into(),
            timeout,
            required: true,
            needs: None,
            missing: None,
            said: false,
        }
    }

    fn needs(mut self, tool: &'static str, how: &'static str) -> GateLine {
        self.needs = Some((tool, how));
        self
    }

    /// Written commented out for `why`.
    fn missing(mut self, why: String) -> GateLine {
        self.missing = Some(why);
        self
    }

    /// The caller has told the user why it may not run.
    fn said(mut self) -> GateLine {
        self.said = true;
        self
    }

    fn advisory(mut self) -> GateLine {
        self.required = false;
        self
    }

    /// Why it cannot run yet, if it cannot.
    fn why_missing(&self, installed: &dyn Fn(&str) -> bool) -> Option<String> {
        self.missing.clone().or_else(|| {
            self.needs
                .filter(|(tool, _)| !installed(tool))
                .map(|(tool, how)| format!("`{tool}` was not found on PATH ({how})"))
        })
    }
}

/// The gates of the ecosystems without a module of their own.
fn gates_for(eco: Ecosystem) -> Vec<GateLine> {
    let rust = |line: GateLine| line.needs("cargo", "https://rustup.rs");
    let go = |line: GateLine| line.needs("go", "https://go.dev/dl");
    match eco {
        Ecosystem::Cargo => vec![
            rust(GateLine::new(
                "build",
                "build",
                "cargo build --all-targets",
                "15m",
            )),
            GateLine::new("lint", "lint", "cargo clippy --all-targets -- -D warnings", "15m")
                .needs("cargo-clippy", "rustup component add clippy"),
            rust(GateLine::new("test", "test", "cargo test", "20m")),
            GateLine::new("audit", "audit", "cargo audit", "5m")
                .needs("cargo-audit", "cargo install cargo-audit")
                .advisory(),
        ],
        Ecosystem::Go => vec![
            go(GateLine::new("build", "build", "go build ./...", "15m")),
            go(GateLine::new("lint", "lint", "go vet ./...", "10m")),
            go(GateLine::new("test", "test", "go test ./...", "20m")),
        ],
        Ecosystem::Python | Ecosystem::Node => Vec::new(),
    }
}

/// What `graft init` found at the repo root. The binary looks (files,
/// processes); this module decides what to write and what to say.
pub struct Probe<'a> {
    pub ecosystems: &'a [Ecosystem],
    /// The branch upgrades land on.
    pub branch: &'a str,
    pub python: PythonProbe,
    pub node: NodeProbe,
    /// The Cargo package's name, the program a Rust recipe runs.
    pub cargo_bin: Option<String>,
    /// Whether a program is on PATH.
    pub installed: &'a dyn Fn(&str) -> bool,
}

/// A graft.toml to write, and what to tell the user about it.
pub struct InitFile {
    pub text: String,
    /// Things the user should know or do: said on the terminal and in
    /// `--json`, not only in the file's comments.
    pub notes: Vec<String>,
}

/// A commented `graft.toml` for what `probe` found.
pub fn render_template(probe: &Probe<'_>) -> InitFile {
    let installed = probe.installed;
    let (ecosystems, branch) = (probe.ecosystems, probe.branch);
    let mut notes = Vec::new();
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
    let mut gates: Vec<GateLine> = Vec::new();
    for &eco in ecosystems {
        let lines = match eco {
            Ecosystem::Python => probe.python.gates(installed, &mut notes),
            Ecosystem::Node => probe.node.gates(installed, &mut notes),
            other => gates_for(other),
        };
        for gate in lines {
            if gates.iter().any(|g| g.name == gate.name) {
                continue;
            }
            // An audit gate is only useful when its tool is there.
            if gate.kind == "audit" && gate.why_missing(installed).is_some() {
                continue;
            }
            gates.push(gate);
        }
    }
    for gate in &gates {
        let missing = gate.why_missing(installed);
        let p = if missing.is_some() { "# " } else { "" };
        out.push('\n');
        if let Some(why) = &missing {
            let _ = writeln!(out, "# {why}; uncomment once installed.");
            if !gate.said {
                notes.push(format!(
                    "gate `{}` is written commented out: {why}; uncomment it once installed",
                    gate.name
                ));
            }
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
    out.push_str(&recipes::render(&recipes::recipes(
        ecosystems,
        &probe.python.env,
        probe.node.main.as_deref(),
        probe.cargo_bin.as_deref(),
    )));
    InitFile { text: out, notes }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests;
