//! Finding a Python project's virtualenv and test runner for `graft init`:
//! `.venv` or `venv` in the repo, Poetry's (asked with `poetry env info
//! -p`), uv's; then whether pytest imports there or unittest finds tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use graft_config::{PythonEnv, PythonProbe};

/// The programs of a virtualenv's `bin/` that gates or recipes use.
const TOOLS: [&str; 4] = ["ruff", "pip-audit", "gunicorn", "uvicorn"];

pub fn probe(root: &Path, on_path: &dyn Fn(&str) -> bool) -> PythonProbe {
    let (env, dir) = find_env(root, on_path);
    let python = dir
        .as_ref()
        .map(|d| d.join("bin/python").into_os_string())
        .unwrap_or_else(|| "python3".into());
    // Without an environment yet (`uv run` makes it), what uv.lock holds.
    let locked = |package: &str| {
        std::fs::read_to_string(root.join("uv.lock"))
            .is_ok_and(|t| t.contains(&format!("name = \"{package}\"")))
    };
    let env_tools = TOOLS
        .iter()
        .filter(|t| match &dir {
            Some(d) => d.join("bin").join(t).is_file(),
            None => env == PythonEnv::UvRun && locked(t),
        })
        .map(|t| t.to_string())
        .collect();
    let pytest = if env == PythonEnv::UvRun {
        locked("pytest")
    } else {
        succeeds(
            Command::new(&python)
                .args(["-c", "import pytest"])
                .current_dir(root),
        )
    };
    let unittest_tests = !pytest
        && succeeds(
            Command::new(&python)
                .args([
                    "-c",
                    "import sys, unittest; sys.exit(0 if unittest.defaultTestLoader.discover('.').countTestCases() else 1)",
                ])
                .current_dir(root),
        );
    PythonProbe {
        env,
        pytest,
        unittest_tests,
        env_tools,
    }
}

/// The environment, and its directory when there is one to look in.
fn find_env(root: &Path, on_path: &dyn Fn(&str) -> bool) -> (PythonEnv, Option<PathBuf>) {
    let has = |f: &str| root.join(f).is_file();
    let poetry = has("poetry.lock")
        || std::fs::read_to_string(root.join("pyproject.toml")).is_ok_and(|t| t.contains("[tool.poetry"));
    let uv = has("uv.lock");
    for dir in [".venv", "venv"] {
        if root.join(dir).join("bin/python").is_file() {
            let made_by = if uv {
                Some("uv")
            } else if poetry {
                Some("Poetry")
            } else {
                None
            };
            let env = PythonEnv::InRepo {
                dir: dir.to_string(),
                made_by,
            };
            return (env, Some(root.join(dir)));
        }
    }
    if poetry {
        if !on_path("poetry") {
            return (PythonEnv::PoetryNotFound { installed: false }, None);
        }
        let found = output(
            Command::new("poetry")
                .args(["env", "info", "-p"])
                .current_dir(root),
        )
        .map(|out| PathBuf::from(out.trim()))
        .filter(|p| p.join("bin/python").is_file());
        return match found {
            Some(dir) => match dir.strip_prefix(root) {
                // `virtualenvs.in-project` with another name than .venv.
                Ok(rel) => (
                    PythonEnv::InRepo {
                        dir: rel.to_string_lossy().into_owned(),
                        made_by: Some("Poetry"),
                    },
                    Some(dir.clone()),
                ),
                Err(_) => (PythonEnv::Poetry, Some(dir)),
            },
            None => (PythonEnv::PoetryNotFound { installed: true }, None),
        };
    }
    if uv {
        let env = if on_path("uv") {
            PythonEnv::UvRun
        } else {
            PythonEnv::UvNotInstalled
        };
        return (env, None);
    }
    (PythonEnv::Missing, None)
}

/// How long a look into the project may take: test discovery imports the
/// test modules.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

fn succeeds(cmd: &mut Command) -> bool {
    run(cmd).is_some_and(|(ok, _)| ok)
}

/// Standard output of a command that succeeded.
fn output(cmd: &mut Command) -> Option<String> {
    run(cmd).and_then(|(ok, out)| ok.then_some(out))
}

/// Run `cmd` quietly with a time limit: whether it succeeded, and its
/// standard output.
fn run(cmd: &mut Command) -> Option<(bool, String)> {
    use std::io::Read as _;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    // After a kill, a process it started may still hold the pipe: the
    // reader is left to finish on its own.
    let status = status?;
    Some((status.success(), reader.join().unwrap_or_default()))
}
