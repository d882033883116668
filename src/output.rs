//! How the CLI speaks: exit codes, errors, `--json`, and progress while the
//! pipeline runs.

use std::io::IsTerminal as _;
use std::time::Duration;

use console::style;
use graft_pipeline::{Event, Failure, FailureClass, Observer, PipelineError};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

pub const EXIT_OK: i32 = 0;
pub const EXIT_INTERNAL: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_REFUSED: i32 = 3;
pub const EXIT_GATE: i32 = 4;
pub const EXIT_PRECONDITION: i32 = 5;
pub const EXIT_NOT_FOUND: i32 = 6;
pub const EXIT_ROLLED_BACK: i32 = 7;
pub const EXIT_CANCELLED: i32 = 8;
pub const EXIT_PROVIDER: i32 = 9;
/// `graft scan --fail-on`: a finding at or above that risk exists.
pub const EXIT_FINDINGS: i32 = 10;
/// Queued, waiting for a person's approval (`graft approve ID`).
pub const EXIT_AWAITING: i32 = 11;

pub fn exit_code(class: FailureClass) -> i32 {
    match class {
        FailureClass::Refused => EXIT_REFUSED,
        FailureClass::Precondition => EXIT_PRECONDITION,
        FailureClass::Gate => EXIT_GATE,
        FailureClass::RolledBack => EXIT_ROLLED_BACK,
        FailureClass::Cancelled => EXIT_CANCELLED,
        FailureClass::Provider => EXIT_PROVIDER,
        FailureClass::Internal => EXIT_INTERNAL,
    }
}

/// An error that ends a command: its exit code, a stable reason and a
/// message for people.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub reason: String,
    pub message: String,
}

impl CliError {
    pub fn new(code: i32, reason: &str, message: impl Into<String>) -> CliError {
        CliError {
            code,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(EXIT_USAGE, "usage", message)
    }
}

impl From<PipelineError> for CliError {
    fn from(e: PipelineError) -> CliError {
        let (code, reason) = match &e {
            PipelineError::Config(c) if c.missing => (EXIT_PRECONDITION, "no_config"),
            PipelineError::Config(_) => (EXIT_PRECONDITION, "invalid_config"),
            PipelineError::Environment(_) => (EXIT_PRECONDITION, "environment"),
            PipelineError::NotFound(_) => (EXIT_NOT_FOUND, "not_found"),
            PipelineError::Ledger(graft_ledger::LedgerError::UnknownUpgrade(_)) => {
                (EXIT_NOT_FOUND, "not_found")
            }
            PipelineError::Invalid(_) => (EXIT_USAGE, "invalid"),
            _ => (EXIT_INTERNAL, "internal"),
        };
        CliError::new(code, reason, e.to_string())
    }
}

impl From<graft_ledger::LedgerError> for CliError {
    fn from(e: graft_ledger::LedgerError) -> CliError {
        PipelineError::from(e).into()
    }
}

impl From<Failure> for CliError {
    fn from(f: Failure) -> CliError {
        let code = if f.reason == "not_found" {
            EXIT_NOT_FOUND
        } else {
            exit_code(f.class)
        };
        CliError::new(code, &f.reason, f.message)
    }
}

/// Print `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("graft: cannot encode the result as JSON: {e}"),
    }
}

/// Report an error the way the caller asked for.
pub fn print_error(json: bool, e: &CliError) {
    if json {
        print_json(&serde_json::json!({
            "error": { "code": e.reason, "exit_code": e.code, "message": e.message }
        }));
    } else {
        eprintln!("{} {}", style("error:").red().bold(), e.message);
    }
}

/// clap's rendering of a refused command line as one message: without its
/// `error: ` prefix and blank lines, the tip, usage and `--help` hint kept.
pub fn clap_message(rendered: &str) -> String {
    let text = rendered.trim().strip_prefix("error: ").unwrap_or(rendered.trim());
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// One gate run in one line: its mark, name, status, time and, for a perf
/// gate, its figure against the live release's.
pub fn gate_line(g: &graft_ledger::GateRun) -> String {
    use graft_ledger::GateStatus;
    let mark = match g.status {
        GateStatus::Passed => style("✓").green(),
        _ if !g.required => style("!").yellow(),
        _ => style("✗").red(),
    };
    let mut line = format!(
        "  {mark} gate {:<10} {:<9} {}",
        g.name,
        g.status,
        seconds(g.duration_ms)
    );
    if let Some(f) = g.figure {
        line.push_str(&format!("  figure {f}"));
        if let Some(b) = g.baseline {
            line.push_str(&format!(" (live {b})"));
        }
    }
    line
}

pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

pub fn seconds(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// "3 min ago" for an RFC 3339 time.
pub fn ago(rfc3339: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86400),
    }
}

/// Pipeline progress on stderr: a spinner with the current step and the
/// last line of gate output on a terminal, one line per step otherwise.
/// Silent under `--json`.
pub struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
}

impl Progress {
    pub fn new(json: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = (!json && tty).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("  {spinner:.cyan} {msg} {elapsed:.dim}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Progress { bar, lines: !json }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn step_label(step: &str) -> &str {
    step.strip_prefix("gate:").unwrap_or(step)
}

/// What a step's detail says, in a few words (`main at 3f2a…`, `pid 41,
/// ready in 1.2 s`).
pub fn step_detail(step: &str, detail: &serde_json::Value) -> String {
    // A repair round's steps carry `:<round>`.
    let step = match step.rsplit_once(':') {
        Some((base, n)) if n.parse::<u32>().is_ok() => base,
        _ => step,
    };
    let s = |k: &str| detail.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let n = |k: &str| detail.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    match step {
        "checkpoint" => format!("{} at {}", s("branch"), short(&s("head"))),
        "generate" => format!("{} edit(s)", n("edits")),
        "stage" => format!("{} file(s), commit {}", n("files"), short(&s("commit"))),
        "backup" => format!("{} data file(s) copied", n("copied")),
        "land" => format!("{} tagged {}", short(&s("commit")), s("tag")),
        "review" if detail.get("hold").and_then(|v| v.as_bool()) == Some(true) => {
            format!("risk {}: held for approval", s("risk"))
        }
        "review" => format!("risk {}", s("risk")),
        "release" => short(&s("tree")).to_string(),
        "deploy" if detail.get("pid").is_some() => {
            format!("pid {}, ready in {}", n("pid"), seconds(n("ready_ms")))
        }
        "watch" if detail.get("window_ms").is_some() => {
            format!("{} window, healthy", seconds(n("window_ms")))
        }
        _ if step.starts_with("gate:") => {
            let ms = n("duration_ms");
            let status = s("status");
            if ms > 0 {
                format!("{status} in {}", seconds(ms))
            } else {
                status
            }
        }
        _ => String::new(),
    }
}

impl Observer for Progress {
    fn on_event(&self, event: &Event) {
        if !self.lines {
            return;
        }
        match event {
            Event::UpgradeCreated { id, title, .. } => {
                self.line(format!(
                    "{} {} {}",
                    style("upgrade").bold(),
                    id,
                    style(title).dim()
                ));
            }
            Event::StepBegin { step, .. } if !step.ends_with(":process") => {
                if let Some(bar) = &self.bar {
                    bar.set_message(step_label(step).to_string());
                }
            }
            Event::StepEnd {
                step,
                outcome,
                detail,
                ..
            } if !step.ends_with(":process") => {
                // A gate step ends `ok` when the gate ran; its verdict is in
                // the detail.
                let gate_failed = detail
                    .get("status")
                    .and_then(|v| v.as_str())
                    .is_some_and(|s| s != "passed");
                let mark = if outcome == "ok" && !gate_failed {
                    style("✓").green()
                } else {
                    style("✗").red()
                };
                let text = if outcome == "ok" {
                    step_detail(step, detail)
                } else {
                    detail
                        .get("reason")
                        .and_then(|v| v.as_str())
                        .unwrap_or("failed")
                        .to_string()
                };
                self.line(format!("  {mark} {:<12} {}", step_label(step), style(text).dim()));
            }
            Event::GateOutput { gate, line, .. } => {
                if let Some(bar) = &self.bar {
                    let line: String = line.chars().take(70).collect();
                    bar.set_message(format!("{gate}  {}", style(line).dim()));
                }
            }
            Event::Message { text, .. } => self.line(format!("  {} {text}", style("·").dim())),
            _ => {}
        }
    }
}
