//! `graft show ID`: one upgrade whole, as the ledger recorded it: the
//! request, its risk, the provider's rounds, every gate's whole stored
//! output, the files, the journal's steps, deploy and watch, rollbacks.
//! `--json` prints the record `GET /v1/upgrades/{id}` answers; `--url`
//! reads that from a daemon's HTTP API instead of the repo's ledger.

use console::style;
use graft_ledger::{LedgerError, StepRow, UpgradeRecord};

use super::{Ctx, parse_id};
use crate::output::{CliError, EXIT_OK, ago, gate_line, print_json, short, step_detail};

pub fn run(ctx: &Ctx, id: &str) -> Result<i32, CliError> {
    let id = parse_id(id)?;
    let record = match ctx.http()? {
        Some(http) => super::remote::show(&http, &id)?,
        None => ctx
            .workspace()?
            .ledger
            .upgrade_record(id.as_str())?
            .ok_or_else(|| LedgerError::UnknownUpgrade(id.to_string()))?,
    };
    if ctx.json {
        print_json(&record);
    } else {
        print_record(&record);
    }
    Ok(EXIT_OK)
}

fn heading(text: &str) {
    println!("{}", style(text).bold());
}

/// Each line of `text`, indented by `indent` spaces.
fn indented(text: &str, indent: usize) {
    for l in text.lines() {
        println!("{:indent$}{l}", "");
    }
}

fn print_record(r: &UpgradeRecord) {
    let u = &r.upgrade;
    println!("{} {}  {}", style("upgrade").bold(), u.id, u.title);
    let field = |name: &str, value: String| println!("  {name:<10} {value}");
    field(
        "state",
        match &u.reason {
            Some(reason) => format!("{}  ({reason})", u.state),
            None => u.state.to_string(),
        },
    );
    field(
        "request",
        format!(
            "{} from {} by {}, priority {}{}{}",
            u.kind,
            u.source,
            u.requested_by,
            u.priority,
            if u.dry_run { ", dry run" } else { "" },
            match &u.retry_of {
                Some(of) => format!(", attempt {} (retries {of})", u.attempt),
                None => String::new(),
            }
        ),
    );
    field(
        "when",
        format!(
            "created {} ({}){}",
            u.created_at,
            ago(&u.created_at),
            u.finished_at
                .as_deref()
                .map(|f| format!(", finished {f}"))
                .unwrap_or_default()
        ),
    );
    field(
        "risk",
        match &u.risk {
            Some(level) => format!(
                "{level}{}",
                u.approval
                    .as_deref()
                    .map(|a| format!("  (approval {a}{})", by(u.approved_by.as_deref())))
                    .unwrap_or_default()
            ),
            None => "not rated".into(),
        },
    );
    for reason in &u.risk_reasons {
        println!("  {:<10} {}", "", style(reason).dim());
    }
    let commits: Vec<String> = [
        ("base", &u.base_commit),
        ("staged", &u.staged_commit),
        ("landed", &u.landed_commit),
        ("reverted by", &u.revert_commit),
    ]
    .iter()
    .filter_map(|(name, c)| c.as_deref().map(|c| format!("{name} {}", short(c))))
    .collect();
    if !commits.is_empty() {
        field(
            "commits",
            format!(
                "{}{}",
                u.target_branch
                    .as_deref()
                    .map(|b| format!("on {b}: "))
                    .unwrap_or_default(),
                commits.join(", ")
            ),
        );
    }
    if let Some(b) = &u.branch {
        field(
            "branch",
            format!("{b} (the staged change; `graft diff {}`)", u.id),
        );
    }
    for a in &r.approvals {
        field("approved", format!("{} by {}", a.at, a.approved_by));
    }
    match &u.error {
        // A gate's failure quotes its output, which follows whole below.
        Some(e) if u.reason.as_deref().is_some_and(|r| r.starts_with("gate_failed:")) => {
            field("error", e.lines().next().unwrap_or("").to_string());
        }
        Some(e) => {
            heading("error");
            indented(e, 2);
        }
        None => {}
    }
    heading("asked");
    match &r.asked {
        Some(text) => indented(text, 2),
        None => indented(&serde_json::to_string_pretty(&u.request).unwrap_or_default(), 2),
    }
    print_rounds(r);
    print_gates(r);
    if !r.files.is_empty() {
        heading("files");
        for f in &r.files {
            println!("{}", super::diff::file_line(f));
        }
    }
    print_steps(&r.steps);
    if !r.rollbacks.is_empty() {
        heading("rollbacks");
        for rb in &r.rollbacks {
            println!(
                "  {}  {}  by {}{}{}",
                rb.at,
                rb.cause,
                rb.requested_by,
                rb.revert_commit
                    .as_deref()
                    .map(|c| format!(", revert commit {}", short(c)))
                    .unwrap_or_default(),
                if rb.data_restored {
                    ", data files restored"
                } else {
                    ""
                }
            );
        }
    }
}

fn by(who: Option<&str>) -> String {
    who.map(|w| format!(" by {w}")).unwrap_or_default()
}

fn print_rounds(r: &UpgradeRecord) {
    if r.rounds.is_empty() {
        return;
    }
    heading("rounds");
    for round in &r.rounds {
        println!(
            "  round {}  {}{}  {} edit(s)  tokens in {} / out {}  ${:.4}  → {}{}",
            round.round,
            round.provider,
            round
                .model
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            round.edits,
            round.input_tokens,
            round.output_tokens,
            round.cost_usd,
            round.outcome,
            round
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        if let Some(f) = &round.feedback {
            println!("    {}", style("feedback sent for the next round:").dim());
            indented(f, 6);
        }
        if !round.output_tail.is_empty() {
            println!("    {}", style("provider output:").dim());
            indented(&round.output_tail, 6);
        }
    }
}

/// Every gate run, each with its whole stored output (the first error
/// line first when the tail no longer holds it).
fn print_gates(r: &UpgradeRecord) {
    if r.gates.is_empty() {
        return;
    }
    heading("gates");
    let rounds = r.gates.iter().any(|g| g.round > 1);
    for g in &r.gates {
        let mut line = gate_line(g);
        if let Some(c) = g.exit_code {
            line.push_str(&format!("  exit {c}"));
        }
        if !g.required {
            line.push_str("  (advisory)");
        }
        if rounds {
            line.push_str(&format!("  round {}", g.round));
        }
        println!("{line}");
        if let Some(e) = &g.first_error
            && !g.output_tail.lines().any(|l| l.trim() == e)
        {
            println!("      {} {e}", style("first error:").dim());
        }
        indented(&g.output_tail, 6);
    }
}

/// The journal, one line per step as it ended (a step begun and never
/// ended says so); deploy and watch among them.
fn print_steps(steps: &[StepRow]) {
    let shown: Vec<&StepRow> = steps
        .iter()
        .filter(|s| !s.step.ends_with(":process"))
        .filter(|s| {
            s.phase != "begin"
                || !steps
                    .iter()
                    .any(|e| e.id > s.id && e.step == s.step && e.phase != "begin")
        })
        .collect();
    if shown.is_empty() {
        return;
    }
    heading("steps");
    for s in shown {
        let time = s.at.get(11..19).unwrap_or(&s.at);
        let (outcome, text) = match (s.phase.as_str(), s.outcome) {
            ("begin", _) => ("begun".to_string(), "never ended".to_string()),
            // A gate's step ends `ok` when the gate ran; its verdict is
            // in the detail.
            (_, Some(graft_ledger::StepOutcome::Ok)) => (
                s.detail
                    .get("status")
                    .and_then(|v| v.as_str())
                    .filter(|_| s.step.starts_with("gate:"))
                    .unwrap_or("ok")
                    .to_string(),
                step_detail(&s.step, &s.detail),
            ),
            (_, o) => (
                o.map_or("ended".into(), |o| o.to_string()),
                s.detail
                    .get("reason")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string(),
            ),
        };
        println!("  {time}  {:<16} {:<7} {}", s.step, outcome, style(text).dim());
    }
}
