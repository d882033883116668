//! A Python project's gates: which interpreter they run, and what to say
//! when there is no virtualenv or no test runner.
//!
//! Gates run in the staging worktree (`.graft/staging`), which is a fresh
//! checkout: an untracked virtualenv is not in it. So they reach the main
//! checkout's through `$GRAFT_REPO_ROOT`, which every gate command gets.

use super::GateLine;

/// Where the project's Python lives, as `graft init` found it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PythonEnv {
    /// A virtualenv inside the repo, by its path from the root (`.venv`,
    /// `venv`); `made_by` names the tool whose lockfile is there (`uv`,
    /// `Poetry`).
    InRepo {
        dir: String,
        made_by: Option<&'static str>,
    },
    /// Poetry's own virtualenv outside the repo (`poetry env info -p`,
    /// asked again by each gate, from the main checkout).
    Poetry,
    /// `uv.lock` and uv installed but no `.venv`: `uv run --frozen` makes
    /// the staging worktree's own environment from the lockfile.
    UvRun,
    /// None found: `python3` from PATH, and why none was found.
    #[default]
    Missing,
    /// Poetry manages the project, but its virtualenv could not be found.
    PoetryNotFound { installed: bool },
    /// `uv.lock` without `.venv`, and uv is not on PATH.
    UvNotInstalled,
}

/// What `graft init` learned about a Python project (the binary looks).
#[derive(Debug, Clone, Default)]
pub struct PythonProbe {
    pub env: PythonEnv,
    /// pytest imports in the environment's Python.
    pub pytest: bool,
    /// `python -m unittest` finds at least one test.
    pub unittest_tests: bool,
    /// Programs the environment has that gates or recipes use (`ruff`,
    /// `pip-audit`, `gunicorn`, `uvicorn`): in its `bin/`, or for `uv run`
    /// in uv.lock.
    pub env_tools: Vec<String>,
}

impl PythonEnv {
    /// The shell words that run `program` from the environment's `bin/`,
    /// from any directory.
    pub fn program(&self, program: &str) -> String {
        match self {
            PythonEnv::InRepo { dir, .. } => format!("\"$GRAFT_REPO_ROOT/{dir}/bin/{program}\""),
            PythonEnv::Poetry => {
                format!("\"$(cd \"$GRAFT_REPO_ROOT\" && poetry env info -p)/bin/{program}\"")
            }
            PythonEnv::UvRun => format!("uv run --frozen {program}"),
            _ if program == "python" => "python3".to_string(),
            _ => program.to_string(),
        }
    }

    /// The environment's name for people: `.venv`, `Poetry's virtualenv`.
    pub fn describe(&self) -> Option<String> {
        match self {
            PythonEnv::InRepo { dir, made_by: None } => Some(dir.clone()),
            PythonEnv::InRepo {
                dir,
                made_by: Some(tool),
            } => Some(format!("{dir} ({tool})")),
            PythonEnv::Poetry => Some("Poetry's virtualenv".to_string()),
            PythonEnv::UvRun => Some("uv run".to_string()),
            _ => None,
        }
    }

    /// How to install `package` into this environment.
    fn install(&self, package: &str) -> String {
        match self {
            PythonEnv::InRepo {
                made_by: Some("uv"), ..
            }
            | PythonEnv::UvRun
            | PythonEnv::UvNotInstalled => {
                format!("uv add --dev {package}")
            }
            PythonEnv::Poetry
            | PythonEnv::PoetryNotFound { .. }
            | PythonEnv::InRepo {
                made_by: Some("Poetry"),
                ..
            } => {
                format!("poetry add --group dev {package}")
            }
            PythonEnv::InRepo { dir, .. } => format!("{dir}/bin/pip install {package}"),
            _ => format!("pip install {package}"),
        }
    }

    fn has_own_bin(&self) -> bool {
        matches!(self, PythonEnv::InRepo { .. } | PythonEnv::Poetry)
    }
}

impl PythonProbe {
    /// The command that runs `tool` (found in the environment, or on
    /// PATH), if it is anywhere.
    fn tool(&self, tool: &str, installed: &dyn Fn(&str) -> bool) -> Option<String> {
        if self.env_tools.iter().any(|t| t == tool) {
            Some(self.env.program(tool))
        } else if installed(tool) {
            Some(tool.to_string())
        } else {
            None
        }
    }

    /// The lint, test and audit gates, and what to tell the user.
    pub(super) fn gates(&self, installed: &dyn Fn(&str) -> bool, notes: &mut Vec<String>) -> Vec<GateLine> {
        let env = &self.env;
        let python = env.program("python");
        let mut gates = Vec::new();
        let missing = |what: &str, package: &str| {
            let place = match env.describe() {
                Some(name) if env.has_own_bin() => format!("in {name} or on PATH"),
                _ => "on PATH".to_string(),
            };
            format!("{what} was not found {place} ({})", env.install(package))
        };
        gates.push(match self.tool("ruff", installed) {
            Some(ruff) => GateLine::new("lint", "lint", format!("{ruff} check ."), "5m"),
            None => GateLine::new("lint", "lint", "ruff check .", "5m").missing(missing("`ruff`", "ruff")),
        });
        let test = if self.pytest {
            GateLine::new("test", "test", format!("{python} -m pytest -q"), "20m")
        } else if self.unittest_tests {
            GateLine::new("test", "test", format!("{python} -m unittest -q"), "20m")
        } else {
            let place = match env {
                PythonEnv::UvRun => "uv.lock".to_string(),
                _ => env.describe().unwrap_or_else(|| "python3".to_string()),
            };
            notes.push(format!(
                "no test runner found: pytest is not installed in {place} and `python -m unittest` finds no tests, so the test gate is written commented out and no test runs before an upgrade lands; install pytest (`{}`) or add unittest tests, then run `graft init --force`",
                env.install("pytest")
            ));
            GateLine::new("test", "test", format!("{python} -m pytest -q"), "20m")
                .missing("no test runner was found (pytest, or tests `python -m unittest` finds)".to_string())
                .said()
        };
        gates.push(test);
        if let Some(audit) = self.tool("pip-audit", installed) {
            gates.push(GateLine::new("audit", "audit", audit, "5m").advisory());
        }
        notes.push(self.env_note());
        gates
    }

    /// Where the gates' Python comes from, said once.
    fn env_note(&self) -> String {
        match &self.env {
            PythonEnv::InRepo { dir, .. } => format!(
                "python: gates run {dir}'s python from the staging worktree, as \"$GRAFT_REPO_ROOT/{dir}/bin/python\" ({dir} is not in git, so the staging checkout has none of its own)"
            ),
            PythonEnv::Poetry => "python: gates run Poetry's virtualenv of the main checkout (`poetry env info -p` there), from the staging worktree".to_string(),
            PythonEnv::UvRun => "python: uv.lock and no .venv: gates run `uv run --frozen`, which makes the staging worktree's own environment from uv.lock (in .graft/staging/.venv) at the first upgrade; `uv sync` here makes .venv, and `graft init --force` then uses it".to_string(),
            PythonEnv::Missing => "python: no virtualenv found (.venv, venv, Poetry, uv): gates use python3 from PATH; to use one, make it (`python3 -m venv .venv`, then install your project and pytest into it) and run `graft init --force`".to_string(),
            PythonEnv::PoetryNotFound { installed: false } => "python: pyproject.toml uses Poetry, but `poetry` is not on PATH, so its virtualenv cannot be found and gates use python3 from PATH; install Poetry and run `poetry install` (with `poetry config virtualenvs.in-project true` it makes .venv in the repo), then `graft init --force`".to_string(),
            PythonEnv::PoetryNotFound { installed: true } => "python: pyproject.toml uses Poetry, but `poetry env info -p` names no virtualenv yet, so gates use python3 from PATH; run `poetry install`, then `graft init --force`".to_string(),
            PythonEnv::UvNotInstalled => "python: uv.lock found, but no .venv and `uv` is not on PATH, so gates use python3 from PATH; install uv and run `uv sync` (it makes .venv), then `graft init --force`".to_string(),
        }
    }
}
