//! Gates: the checks a staged change must pass before it may land.
//!
//! The built-in `parse` gate checks the syntax of every file the change
//! writes (tree-sitter for source, parsers for TOML/JSON/YAML) and runs
//! before any command, so a syntax error costs milliseconds, not a build.
//! Command gates (`[[gates]]`) run in order in the staging worktree.
//!
//! Architecture invariant: gate results are produced here, by running the
//! checks; nothing a change or its author says about tests is believed.

use std::path::Path;
use std::time::{Duration, Instant};

use graft_change::ResolvedFile;
use graft_config::{Better, GateConfig, GateKind};
use graft_lang::{FileSyntax, check_syntax};
use graft_ledger::{GateRun, GateStatus, Ledger, now};
use serde_json::json;

use crate::events::Event;
use crate::fault;
use crate::journal::Journal;
use crate::process::{self, CommandSpec};

/// The `parse` gate over the files a change writes.
pub fn parse_gate(upgrade_id: &str, round: i64, files: &[ResolvedFile]) -> GateRun {
    let started_at = now();
    let start = Instant::now();
    let mut errors = Vec::new();
    let mut checked = 0;
    for f in files {
        let (Some(content), Some(syntax)) = (&f.after, FileSyntax::of_path(Path::new(f.path.as_str())))
        else {
            continue;
        };
        checked += 1;
        if let Err(e) = check_syntax(syntax, content) {
            errors.push(format!(
                "{}:{}:{}: {} ({})",
                f.path,
                e.line,
                e.column,
                e.message,
                syntax.name()
            ));
        }
    }
    let status = if errors.is_empty() {
        GateStatus::Passed
    } else {
        GateStatus::Failed
    };
    let output_tail = if errors.is_empty() {
        format!("{checked} file(s) parsed, no syntax errors\n")
    } else {
        errors.join("\n") + "\n"
    };
    GateRun {
        upgrade_id: upgrade_id.to_string(),
        round,
        name: "parse".into(),
        kind: "parse".into(),
        required: true,
        status,
        exit_code: None,
        duration_ms: start.elapsed().as_millis() as u64,
        output_tail,
        figure: None,
        baseline: None,
        started_at,
        first_error: errors.first().cloned(),
    }
}

/// What a command gate needs besides its config.
pub struct GateEnv<'a> {
    pub staging: &'a Path,
    /// The main checkout's root, given to the command as `GRAFT_REPO_ROOT`:
    /// what lives only there (a virtualenv, say) is reached from staging
    /// through it.
    pub repo_root: &'a Path,
    pub journal: &'a Journal<'a>,
    pub round: i64,
    /// The live commit, whose perf figures are the baseline.
    pub live_commit: &'a str,
    pub ledger: &'a Ledger,
}

/// Run one command gate and judge its result.
pub fn run_command_gate(gate: &GateConfig, env: &GateEnv<'_>) -> GateRun {
    let id = env.journal.id.to_string();
    let name = gate.name.to_string();
    env.journal.emit(Event::GateStarted {
        id: id.clone(),
        gate: name.clone(),
    });
    let started_at = now();
    let mut envs: Vec<(String, String)> = gate.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    envs.push(("GRAFT_UPGRADE_ID".into(), id.clone()));
    envs.push(("GRAFT_GATE".into(), name.clone()));
    envs.push(("GRAFT_STAGING".into(), "1".into()));
    envs.push(("GRAFT_REPO_ROOT".into(), env.repo_root.display().to_string()));
    let spec = CommandSpec {
        command: &gate.command,
        cwd: env.staging,
        env: envs,
        timeout: gate.timeout.0,
    };
    let figure_re = gate.pattern.as_deref().and_then(|p| regex::Regex::new(p).ok());
    let mut figure: Option<f64> = None;
    let mut first_error = FirstError::default();
    let mut check_cancel_at = Instant::now();
    let result = process::run(
        &spec,
        &mut |pgid| {
            // Journaled so that recovery can kill the group if Graft dies.
            fault::write_point("gate:process")
                .and_then(|()| {
                    env.ledger
                        .step_begin(env.journal.id, &format!("gate:{name}:process"), &json!({ "pgid": pgid }))
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .map_err(|e| {
                    format!("its process group could not be recorded in the ledger ({e}), so it was stopped at once: a gate Graft could not find again after a crash must not run")
                })
        },
        &mut |line| {
            if gate.kind == GateKind::Perf
                && let Some(v) = extract_figure(line, figure_re.as_ref())
            {
                figure = Some(v);
            }
            first_error.see(line);
            env.journal.emit(Event::GateOutput {
                id: id.clone(),
                gate: name.clone(),
                line: line.to_string(),
            });
        },
        &mut || {
            // Reading the ledger is cheap, but not every 50 ms.
            if check_cancel_at.elapsed() < Duration::from_millis(500) {
                return false;
            }
            check_cancel_at = Instant::now();
            env.ledger.cancel_requested(env.journal.id).unwrap_or(false)
        },
    );
    if result.is_ok()
        && let Err(e) = env.ledger.step_end(
            env.journal.id,
            &format!("gate:{name}:process"),
            graft_ledger::StepOutcome::Ok,
            &json!({}),
        )
    {
        env.journal.message(format!(
            "warning: the end of gate `{name}`'s process could not be recorded in the ledger: {e}"
        ));
    }
    let mut run = GateRun {
        upgrade_id: id.clone(),
        round: env.round,
        name: name.clone(),
        kind: gate.kind.as_str().into(),
        required: gate.required,
        status: GateStatus::Passed,
        exit_code: None,
        duration_ms: 0,
        output_tail: String::new(),
        figure: None,
        baseline: None,
        started_at,
        first_error: first_error.into_line(),
    };
    match result {
        Err(e) => {
            run.status = GateStatus::Error;
            run.output_tail = format!("graft could not start the gate command `{}`: {e}\n", gate.command);
        }
        Ok(r) => {
            run.duration_ms = r.duration.as_millis() as u64;
            run.exit_code = r.exit_code;
            run.output_tail = r.tail;
            run.status = if r.timed_out {
                run.output_tail.push_str(&format!(
                    "[graft: timed out after {}; the process group was killed]\n",
                    humantime::format_duration(gate.timeout.0)
                ));
                GateStatus::TimedOut
            } else if r.cancelled {
                GateStatus::Skipped
            } else if r.exit_code == Some(0) {
                GateStatus::Passed
            } else if let Some(why) = setup_problem(gate, r.exit_code, &run.output_tail) {
                run.output_tail.push_str(&format!(
                    "[graft: a set-up problem of this gate, not a verdict on the change: {why}]\n"
                ));
                run.first_error = Some(why);
                GateStatus::Misconfigured
            } else {
                if let Some(sig) = r.signal {
                    run.output_tail
                        .push_str(&format!("[graft: the command was killed by signal {sig}]\n"));
                }
                GateStatus::Failed
            };
        }
    }
    if gate.kind == GateKind::Perf && run.status == GateStatus::Passed {
        judge_perf(gate, env, figure, &mut run);
    }
    env.journal.emit(Event::GateFinished {
        id,
        gate: name,
        status: run.status.to_string(),
        duration_ms: run.duration_ms,
        exit_code: run.exit_code,
    });
    run
}

/// Why a gate's command ended before it could judge the change, with the
/// fix: it was not found (exit 127), not executable (126), or the tool
/// refused its command line (a short output with a usage error). None:
/// it ran, and its exit is its verdict.
fn setup_problem(gate: &GateConfig, exit: Option<i32>, output: &str) -> Option<String> {
    let command = &gate.command;
    let fix = format!(
        "install what it needs, or correct `command` of the gate `{}` in graft.toml",
        gate.name
    );
    let said = |pred: &dyn Fn(&str) -> bool| {
        output
            .lines()
            .map(str::trim)
            .find(|l| pred(l))
            .map(|l| format!(": {l}"))
            .unwrap_or_default()
    };
    match exit? {
        127 => Some(format!(
            "`{command}` was not found (exit 127{}); {fix}",
            said(&|l| l.contains("not found"))
        )),
        126 => Some(format!(
            "`{command}` could not be executed (exit 126{}); {fix}",
            said(&|l| l.contains("ermission denied") || l.contains("cannot execute"))
        )),
        0 => None,
        code => {
            // A tool that refuses its arguments says so at once, briefly;
            // a long output is a run that judged something.
            let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.len() > 30 {
                return None;
            }
            let line = lines
                .iter()
                .find(|l| usage_error(l) == Some(true))
                .or_else(|| lines.iter().find(|l| usage_error(l).is_some()))?;
            Some(format!(
                "`{command}` refused its command line (exit {code}: {}); {fix}",
                line.trim()
            ))
        }
    }
}

/// Whether `line` is a tool's complaint about its command line: Some(true)
/// for the error itself, Some(false) for the usage summary that comes
/// with it.
fn usage_error(line: &str) -> Option<bool> {
    const ERRORS: &[&str] = &[
        "unrecognized arguments",
        "unexpected argument",
        "unrecognized subcommand",
        "no such command",
        "no such option",
        "unknown option",
        "bad option",
        "missing script:",
    ];
    let l = line.trim().to_ascii_lowercase();
    if ERRORS.iter().any(|e| l.contains(e)) {
        return Some(true);
    }
    let l = l.strip_prefix("error:").map_or(l.as_str(), str::trim_start);
    l.starts_with("usage:").then_some(false)
}

/// Compare the figure with the live release's; the first run sets it.
fn judge_perf(gate: &GateConfig, env: &GateEnv<'_>, figure: Option<f64>, run: &mut GateRun) {
    let Some(figure) = figure else {
        run.status = GateStatus::Error;
        let how = gate
            .pattern
            .as_deref()
            .map_or("a number".to_string(), |p| format!("a match of `{p}`"));
        run.output_tail.push_str(&format!(
            "[graft: perf gate `{}` printed no figure ({how} was expected)]\n",
            gate.name
        ));
        return;
    };
    run.figure = Some(figure);
    let baseline = env
        .ledger
        .perf_baseline(gate.name.as_str(), env.live_commit)
        .ok()
        .flatten();
    run.baseline = baseline;
    let Some(base) = baseline else {
        run.output_tail.push_str(&format!(
            "[graft: no baseline for the live release yet; {figure} becomes the baseline when this upgrade lands]\n"
        ));
        return;
    };
    let tol = gate.tolerance();
    let (worse, limit) = match gate.better.unwrap_or(Better::Higher) {
        Better::Higher => (figure < base * (1.0 - tol), base * (1.0 - tol)),
        Better::Lower => (figure > base * (1.0 + tol), base * (1.0 + tol)),
    };
    let change = if base != 0.0 {
        (figure - base) / base * 100.0
    } else {
        0.0
    };
    if worse {
        run.status = GateStatus::Failed;
        run.output_tail.push_str(&format!(
            "[graft: {figure} is worse than the live release's {base} by more than {:.0} % (limit {limit:.3}, change {change:+.1} %)]\n",
            tol * 100.0
        ));
    } else {
        run.output_tail.push_str(&format!(
            "[graft: {figure} against the live release's {base} ({change:+.1} %), within tolerance]\n"
        ));
    }
}

/// The figure on one output line: the pattern's first group, or else the
/// last number on the line.
fn extract_figure(line: &str, pattern: Option<&regex::Regex>) -> Option<f64> {
    if let Some(re) = pattern {
        return re.captures(line)?.get(1)?.as_str().trim().parse().ok();
    }
    static NUMBER: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re =
        NUMBER.get_or_init(|| regex::Regex::new(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?").expect("valid regex"));
    re.find_iter(line).last()?.as_str().parse().ok()
}

/// The first line of a command's output that reads as an error, caught as
/// the output streams (the bounded tail may lose it): the first line with
/// a test runner's or compiler's own mark, else the first that merely
/// says an error happened.
#[derive(Default)]
struct FirstError {
    marked: Option<String>,
    mentioned: Option<String>,
}

/// Longest first-error line kept.
const FIRST_ERROR_CHARS: usize = 300;

impl FirstError {
    fn see(&mut self, line: &str) {
        if self.marked.is_some() {
            return;
        }
        let keep = || line.trim().chars().take(FIRST_ERROR_CHARS).collect::<String>();
        if has_error_mark(line) {
            self.marked = Some(keep());
        } else if self.mentioned.is_none() && mentions_error(line) {
            self.mentioned = Some(keep());
        }
    }

    fn into_line(self) -> Option<String> {
        self.marked.or(self.mentioned)
    }
}

/// A line a compiler or test runner marks as an error: rustc's `error[E…]`
/// and `error:`, a Rust test's `panicked at`, pytest's `E ` lines and its
/// `FAILED`/`ERROR` summary, unittest's `FAIL:`/`ERROR:`, TAP's `not ok`
/// (node's test runner), node's `✖`, go test's `--- FAIL:`.
fn has_error_mark(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("error[")
        || t.starts_with("error:")
        || (t.starts_with("thread '") && t.contains("' panicked at"))
        || line.starts_with("E ")
        || ["FAILED ", "ERROR ", "FAIL: ", "ERROR: "]
            .iter()
            .any(|p| line.starts_with(p))
        || t.starts_with("not ok ")
        || t.starts_with("✖ ")
        || t.starts_with("--- FAIL:")
}

/// A line that says an error or a failure happened, in any words
/// (`Error: ...`, `build failed`, `FATAL`), but not that none did
/// (`0 failed`, `no errors`).
fn mentions_error(line: &str) -> bool {
    static WORD: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = WORD.get_or_init(|| {
        regex::Regex::new(r"(?i)\b(errors?|fail(ed|ure|ures)?|panic(ked)?|fatal|exception)\b")
            .expect("valid regex")
    });
    re.find_iter(line).any(|m| {
        let before = line[..m.start()].trim_end().to_ascii_lowercase();
        !(before.ends_with(" 0") || before == "0" || before.ends_with(" no") || before == "no")
    })
}

/// What a failed gate's output says, for the upgrade's error message: it
/// leads with the first error line, then the last lines of the output (the
/// whole stored output is `graft show ID`).
pub fn summary(run: &GateRun) -> String {
    const LAST: usize = 8;
    let what = match run.status {
        GateStatus::TimedOut => "timed out".to_string(),
        GateStatus::Error => "could not run".to_string(),
        GateStatus::Misconfigured => "could not run as set up".to_string(),
        _ => match run.exit_code {
            Some(c) => format!("failed (exit {c})"),
            None => "failed".to_string(),
        },
    };
    let lines: Vec<&str> = run.output_tail.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = &lines[lines.len().saturating_sub(LAST)..];
    let first = run.first_error.as_deref();
    // Where the first error is among the last lines, they go on from it.
    let (head, rest): (String, Vec<&str>) = match first {
        Some(e) => match last.iter().position(|l| l.trim() == e) {
            Some(i) => (format!(": {e}"), last[i + 1..].to_vec()),
            None => (
                format!(": {e}"),
                std::iter::once("…").chain(last.iter().copied()).collect(),
            ),
        },
        None if last.is_empty() => (", with no output".to_string(), Vec::new()),
        None => (":".to_string(), last.to_vec()),
    };
    let mut s = format!("gate `{}` {what}{head}", run.name);
    for l in rest {
        s.push_str("\n  ");
        s.push_str(l);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_pattern_or_the_last_number() {
        let re = regex::Regex::new(r"([0-9.]+) req/s").unwrap();
        assert_eq!(
            extract_figure("throughput: 1234.5 req/s (3 runs)", Some(&re)),
            Some(1234.5)
        );
        assert_eq!(extract_figure("nothing here", Some(&re)), None);
        assert_eq!(extract_figure("took 12 ms over 3 runs", None), Some(3.0));
        assert_eq!(extract_figure("time: 1.5e3", None), Some(1500.0));
    }

    fn first_error(output: &str) -> Option<String> {
        let mut f = FirstError::default();
        output.lines().for_each(|l| f.see(l));
        f.into_line()
    }

    #[test]
    fn the_first_error_line_is_found_in_each_tool_s_output() {
        let rustc = "   Compiling app v0.1.0\nwarning: unused variable: `x`\nerror[E0308]: mismatched types\n --> src/lib.rs:3:5\nerror: could not compile `app`\n";
        assert_eq!(
            first_error(rustc).as_deref(),
            Some("error[E0308]: mismatched types")
        );
        let cargo_test = "test result: ok. 5 passed; 0 failed\ntest tests::adds ... FAILED\nthread 'tests::adds' panicked at src/lib.rs:9:9:\n";
        assert_eq!(
            first_error(cargo_test).as_deref(),
            Some("thread 'tests::adds' panicked at src/lib.rs:9:9:")
        );
        let pytest = "collected 2 items\n\ntest_app.py F.\n    def test_add():\n>       assert add(2, 3) == 5\nE       assert -1 == 5\nE        +  where -1 = add(2, 3)\nFAILED test_app.py::test_add - assert -1 == 5\n";
        assert_eq!(first_error(pytest).as_deref(), Some("E       assert -1 == 5"));
        let unittest = "F\n======\nFAIL: test_add (test_app.AppTest.test_add)\nAssertionError: -1 != 5\nFAILED (failures=1)\n";
        assert_eq!(
            first_error(unittest).as_deref(),
            Some("FAIL: test_add (test_app.AppTest.test_add)")
        );
        let node = "TAP version 13\n# Subtest: adds\nok 1 - adds\n# Subtest: greets\n    not ok 1 - says hello\nnot ok 2 - greets\n";
        assert_eq!(first_error(node).as_deref(), Some("not ok 1 - says hello"));
        let go = "=== RUN   TestAdd\n--- FAIL: TestAdd (0.00s)\nFAIL\n";
        assert_eq!(first_error(go).as_deref(), Some("--- FAIL: TestAdd (0.00s)"));
        // No mark: the first line that says something failed, not one
        // that says nothing did.
        let plain =
            "checked 3 files, 0 errors\nno errors in config\nlint: Error: `x` is never read\nbuild failed\n";
        assert_eq!(
            first_error(plain).as_deref(),
            Some("lint: Error: `x` is never read")
        );
        assert_eq!(first_error("all good\n"), None);
    }

    fn failed_run(output_tail: &str, first_error: Option<&str>) -> GateRun {
        GateRun {
            upgrade_id: "upg".into(),
            round: 1,
            name: "test".into(),
            kind: "test".into(),
            required: true,
            status: GateStatus::Failed,
            exit_code: Some(1),
            duration_ms: 5,
            output_tail: output_tail.into(),
            figure: None,
            baseline: None,
            started_at: String::new(),
            first_error: first_error.map(String::from),
        }
    }

    #[test]
    fn a_summary_leads_with_the_first_error_then_the_last_lines() {
        // The first error fell out of the tail: it leads, then the end.
        let tail = "[… 300 earlier lines not kept]\nnoise 1\nnoise 2\nFAILED (failures=1)\n";
        assert_eq!(
            summary(&failed_run(tail, Some("FAIL: test_add (t.T.test_add)"))),
            "gate `test` failed (exit 1): FAIL: test_add (t.T.test_add)\n  …\n  [… 300 earlier lines not kept]\n  noise 1\n  noise 2\n  FAILED (failures=1)"
        );
        // Among the last lines: it leads, and the lines after it follow once.
        assert_eq!(
            summary(&failed_run(
                "running\nerror[E0308]: mismatched types\n --> a.rs:1:1\n",
                Some("error[E0308]: mismatched types")
            )),
            "gate `test` failed (exit 1): error[E0308]: mismatched types\n   --> a.rs:1:1"
        );
        assert_eq!(
            summary(&failed_run("a\nb\n", None)),
            "gate `test` failed (exit 1):\n  a\n  b"
        );
        assert_eq!(
            summary(&failed_run("", None)),
            "gate `test` failed (exit 1), with no output"
        );
    }
}
