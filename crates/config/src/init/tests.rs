use std::path::Path;

use super::*;
use crate::{Config, ConfigError, GateKind};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("graft.toml"), text)
}

fn venv() -> PythonProbe {
    PythonProbe {
        env: PythonEnv::InRepo {
            dir: ".venv".into(),
            made_by: None,
        },
        pytest: true,
        ..PythonProbe::default()
    }
}

fn probe<'a>(ecosystems: &'a [Ecosystem], installed: &'a dyn Fn(&str) -> bool) -> Probe<'a> {
    Probe {
        ecosystems,
        branch: "main",
        python: venv(),
        node: NodeProbe {
            scripts: vec!["build".into(), "lint".into(), "test".into()],
            main: None,
            lock: NodeLock::Npm,
        },
        cargo_bin: Some("greeter".into()),
        installed,
    }
}

fn gate_names(c: &Config) -> Vec<&str> {
    c.gates.iter().map(|g| g.name.as_str()).collect()
}

/// The recipe `name` in a rendered graft.toml, uncommented.
fn recipe_in(text: &str, name: &str) -> String {
    let start = text
        .find(&recipes::heading(name))
        .unwrap_or_else(|| panic!("no {name} recipe in\n{text}"));
    text[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_template_parses_back_and_so_does_each_recipe_uncommented() {
    let all = [
        Ecosystem::Cargo,
        Ecosystem::Python,
        Ecosystem::Node,
        Ecosystem::Go,
    ];
    for installed in [true, false] {
        let installed = move |_: &str| installed;
        for eco in all {
            let file = render_template(&probe(&[eco], &installed));
            let c = parse(&file.text).unwrap_or_else(|e| panic!("{eco:?} template: {e}\n{}", file.text));
            assert_eq!(c.target.branch.as_deref(), Some("main"));
            assert!(
                c.gates.iter().all(|g| g.kind != GateKind::Audit) || installed(""),
                "{eco:?}"
            );
            assert!(c.run.is_none(), "recipes are commented out");
        }
        let file = render_template(&probe(&all, &installed));
        parse(&file.text).unwrap_or_else(|e| panic!("combined template: {e}\n{}", file.text));
        let none = render_template(&probe(&[], &installed));
        parse(&none.text).unwrap();
        // With no ecosystem found, every recipe is offered; each one,
        // uncommented, is a valid [run] section.
        for name in ["gunicorn", "uvicorn", "node", "go", "rust"] {
            let text = format!("{}\n{}", none.text, recipe_in(&none.text, name));
            let c = parse(&text).unwrap_or_else(|e| panic!("{name} recipe: {e}\n{text}"));
            let run = c.run.expect("a [run] section");
            assert_eq!(run.listen.len(), 1, "{name}");
        }
    }
}

#[test]
fn recipes_follow_the_ecosystems_found() {
    let yes = |_: &str| true;
    let text = render_template(&probe(&[Ecosystem::Python], &yes)).text;
    assert!(
        text.contains("# --- gunicorn:") && text.contains("# --- uvicorn:"),
        "{text}"
    );
    assert!(
        !text.contains("# --- node:") && !text.contains("# --- rust:"),
        "{text}"
    );
    assert!(
        recipe_in(&text, "gunicorn").contains("command = '\"$GRAFT_REPO_ROOT/.venv/bin/gunicorn\" app:app'"),
        "{text}"
    );
    // Through `uv run` gunicorn's pid is not LISTEN_PID: it is told the fds.
    let mut p = probe(&[Ecosystem::Python], &yes);
    p.python.env = PythonEnv::UvRun;
    let text = render_template(&p).text;
    assert!(
        recipe_in(&text, "gunicorn")
            .contains("command = \"uv run --frozen gunicorn --bind fd://3 --bind fd://4 app:app\""),
        "{text}"
    );
    let text = render_template(&probe(&[Ecosystem::Cargo], &yes)).text;
    assert!(
        recipe_in(&text, "rust").contains("command = \"target/release/greeter\""),
        "{text}"
    );
}

/// The README shows the recipes `graft init` writes, word for word.
#[test]
fn the_readme_has_the_same_recipes() {
    let readme = include_str!("../../../../README.md");
    let yes = |_: &str| true;
    let text = render_template(&probe(&[], &yes)).text;
    for name in ["gunicorn", "uvicorn", "node", "go", "rust"] {
        let recipe = recipe_in(&text, name).replace("target/release/greeter", "target/release/app");
        assert!(
            readme.contains(&recipe),
            "README.md lacks the {name} recipe as graft init writes it:\n{recipe}"
        );
    }
}

#[test]
fn cargo_template_has_the_usual_gates() {
    let installed = |t: &str| t != "cargo-audit";
    let c = parse(&render_template(&probe(&[Ecosystem::Cargo], &installed)).text).unwrap();
    assert_eq!(gate_names(&c), ["build", "lint", "test"]);
    assert!(c.gates[1].command.contains("clippy"));
}

#[test]
fn python_gates_run_the_virtualenv_from_staging() {
    let mut p = probe(&[Ecosystem::Python], &|_| false);
    p.python.env_tools = vec!["ruff".into()];
    let file = render_template(&p);
    let c = parse(&file.text).unwrap();
    assert_eq!(gate_names(&c), ["lint", "test"]);
    assert_eq!(c.gates[0].command, "\"$GRAFT_REPO_ROOT/.venv/bin/ruff\" check .");
    assert_eq!(
        c.gates[1].command,
        "\"$GRAFT_REPO_ROOT/.venv/bin/python\" -m pytest -q"
    );
    assert_eq!(file.notes.len(), 1, "{:?}", file.notes);
    assert!(
        file.notes[0].starts_with("python: gates run .venv's python"),
        "{:?}",
        file.notes
    );

    // unittest tests and no pytest: unittest.
    p.python.pytest = false;
    p.python.unittest_tests = true;
    let c = parse(&render_template(&p).text).unwrap();
    assert_eq!(
        c.gates[1].command,
        "\"$GRAFT_REPO_ROOT/.venv/bin/python\" -m unittest -q"
    );

    // Poetry's own virtualenv is asked for from the main checkout.
    p.python.env = PythonEnv::Poetry;
    let c = parse(&render_template(&p).text).unwrap();
    assert_eq!(
        c.gates[1].command,
        "\"$(cd \"$GRAFT_REPO_ROOT\" && poetry env info -p)/bin/python\" -m unittest -q"
    );
    p.python.env = PythonEnv::UvRun;
    let c = parse(&render_template(&p).text).unwrap();
    assert_eq!(c.gates[0].command, "uv run --frozen ruff check .");
    p.python.env_tools.clear(); // ruff not in uv.lock, nor on PATH
    let c = parse(&render_template(&p).text).unwrap();
    assert_eq!(gate_names(&c), ["test"]);
    assert_eq!(c.gates[0].command, "uv run --frozen python -m unittest -q");
}

#[test]
fn no_test_runner_is_said_and_the_gate_is_commented_out() {
    let mut p = probe(&[Ecosystem::Python], &|_| false);
    p.python.pytest = false;
    let file = render_template(&p);
    let c = parse(&file.text).unwrap();
    assert!(c.gates.is_empty(), "{}", file.text);
    assert!(
        file.text.contains("# `ruff` was not found in .venv or on PATH (.venv/bin/pip install ruff); uncomment once installed."),
        "{}",
        file.text
    );
    assert!(
        file.text.contains("# no test runner was found (pytest, or tests `python -m unittest` finds); uncomment once installed.\n# [[gates]]\n# name = \"test\""),
        "{}",
        file.text
    );
    assert!(
        file.notes.contains(&"gate `lint` is written commented out: `ruff` was not found in .venv or on PATH (.venv/bin/pip install ruff); uncomment it once installed".to_string()),
        "{:?}",
        file.notes
    );
    assert!(
        file.notes.iter().any(|n| n.starts_with(
            "no test runner found: pytest is not installed in .venv and `python -m unittest` finds no tests"
        ) && n.contains("`.venv/bin/pip install pytest`")),
        "{:?}",
        file.notes
    );
}

#[test]
fn python_without_a_virtualenv_says_what_to_do() {
    for (env, says) in [
        (
            PythonEnv::Missing,
            "python: no virtualenv found (.venv, venv, Poetry, uv)",
        ),
        (
            PythonEnv::PoetryNotFound { installed: false },
            "python: pyproject.toml uses Poetry, but `poetry` is not on PATH",
        ),
        (
            PythonEnv::UvNotInstalled,
            "python: uv.lock found, but no .venv and `uv` is not on PATH",
        ),
    ] {
        let mut p = probe(&[Ecosystem::Python], &|t: &str| t == "ruff");
        p.python.env = env;
        let file = render_template(&p);
        let c = parse(&file.text).unwrap();
        assert_eq!(c.gates[0].command, "ruff check .");
        assert_eq!(c.gates[1].command, "python3 -m pytest -q");
        assert!(file.notes.iter().any(|n| n.starts_with(says)), "{:?}", file.notes);
    }
}

#[test]
fn node_installs_by_its_lockfile() {
    let yes = |_: &str| true;
    let mut p = probe(&[Ecosystem::Node], &yes);
    p.node.scripts = vec!["test".into()];
    let file = render_template(&p);
    let c = parse(&file.text).unwrap();
    assert_eq!(gate_names(&c), ["install", "test", "audit"]);
    assert_eq!(c.gates[0].command, "npm ci --no-audit --no-fund");
    assert!(file.notes.is_empty(), "{:?}", file.notes);

    p.node.lock = NodeLock::None;
    let file = render_template(&p);
    let c = parse(&file.text).unwrap();
    assert_eq!(c.gates[0].command, "npm install --no-audit --no-fund");
    assert!(
        file.notes[0].starts_with(
            "node: no package-lock.json, so the install gate runs `npm install` (`npm ci` needs a lockfile"
        ),
        "{:?}",
        file.notes
    );

    p.node.lock = NodeLock::Pnpm;
    let c = parse(&render_template(&p).text).unwrap();
    assert_eq!(gate_names(&c), ["install", "test"]);
    assert_eq!(c.gates[0].command, "pnpm install --frozen-lockfile");

    let no_yarn = |t: &str| t != "yarn";
    let mut p = probe(&[Ecosystem::Node], &no_yarn);
    p.node.lock = NodeLock::Yarn { berry: false };
    let file = render_template(&p);
    let c = parse(&file.text).unwrap();
    assert_eq!(gate_names(&c), ["build", "lint", "test"]);
    assert!(file.text.contains("# `yarn` was not found on PATH (corepack enable); uncomment once installed.\n# [[gates]]\n# name = \"install\"\n# kind = \"build\"\n# command = \"yarn install --frozen-lockfile\""), "{}", file.text);
    assert_eq!(file.notes.len(), 1, "said once: {:?}", file.notes);
    assert!(
        file.notes[0].starts_with("node: yarn.lock found, but `yarn` is not on PATH"),
        "{:?}",
        file.notes
    );
    p.node.lock = NodeLock::Yarn { berry: true };
    assert!(render_template(&p).text.contains("yarn install --immutable"));
}

#[test]
fn node_without_a_test_script_says_so() {
    let yes = |_: &str| true;
    let mut p = probe(&[Ecosystem::Node], &yes);
    p.node.scripts.clear();
    let file = render_template(&p);
    assert_eq!(gate_names(&parse(&file.text).unwrap()), ["install", "audit"]);
    assert!(
        file.notes
            .iter()
            .any(|n| n.starts_with("node: package.json has no `test` script"))
    );
}

#[test]
fn detects_ecosystems_by_manifest() {
    let dir = tempfile::tempdir().unwrap();
    assert!(detect_ecosystems(dir.path()).is_empty());
    std::fs::write(dir.path().join("go.mod"), "module x\n").unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "").unwrap();
    assert_eq!(detect_ecosystems(dir.path()), [Ecosystem::Python, Ecosystem::Go]);
}
