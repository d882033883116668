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
    }
}

/// What a command gate needs besides its config.
pub struct GateEnv<'a> {
    pub staging: &'a Path,
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
    let spec = CommandSpec {
        command: &gate.command,
        cwd: env.staging,
        env: envs,
        timeout: gate.timeout.0,
    };
    let figure_re = gate.pattern.as_deref().and_then(|p| regex::Regex::new(p).ok());
    let mut figure: Option<f64> = None;
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

/// The first lines of a failed gate's output that explain it, for the
/// upgrade's error message (the whole tail is in the ledger).
pub fn summary(run: &GateRun) -> String {
    let what = match run.status {
        GateStatus::TimedOut => "timed out".to_string(),
        GateStatus::Error => "could not run".to_string(),
        _ => match run.exit_code {
            Some(c) => format!("failed (exit {c})"),
            None => "failed".to_string(),
        },
    };
    let lines: Vec<&str> = run.output_tail.lines().filter(|l| !l.trim().is_empty()).collect();
    let last: Vec<&str> = lines.iter().rev().take(8).rev().copied().collect();
    format!("gate `{}` {what}:\n  {}", run.name, last.join("\n  "))
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
}
