//! `graft approve`, `graft reject`, `graft queue [run]`, `graft schedule
//! [tick]`: the queue and its policy from the command line.
//!
//! With a `graft run` up, approvals go through it (its runner runs the
//! queue); without one, `graft approve` runs the upgrade at once and
//! `graft queue run` drains the queue here.

use console::style;
use graft_ledger::UpgradeState;
use graft_orchestrate::{Orchestrator, schedule};
use graft_pipeline::{UpgradeReport, Workspace};
use serde_json::json;

use super::{Ctx, parse_id, provider};
use crate::cli::{QueueAction, ScheduleAction};
use crate::commands::status::truncate;
use crate::commands::upgrade::{exit_code_of, print_report, requested_by};
use crate::output::{CliError, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, Progress, ago, print_json};

fn orchestrator<'a>(ws: &'a Workspace, progress: &'a Progress) -> Orchestrator<'a> {
    Orchestrator {
        ws,
        deploy: super::local_deploy(ws),
        observer: progress,
        generators: &provider::CliGenerators,
        analyzer: super::analyzer(),
    }
}

pub fn approve(ctx: &Ctx, id: &str) -> Result<i32, CliError> {
    let id = parse_id(id)?;
    let progress = Progress::new(ctx.json);
    if let Some(daemon) = ctx.daemon() {
        let by = serde_urlencoded::to_string([("requested_by", requested_by())]).unwrap_or_default();
        let report: Result<UpgradeReport, CliError> = super::from_daemon(
            &daemon,
            &format!("/v1/upgrades/{id}/approve?{by}"),
            Vec::new(),
            &progress,
            EXIT_USAGE,
        );
        progress.finish();
        let report = report?;
        return Ok(show(ctx, &[report]));
    }
    let ws = ctx.workspace()?;
    let orch = orchestrator(&ws, &progress);
    orch.approve(&id, &requested_by())?;
    let reports = orch.run_with_retries(&id)?;
    progress.finish();
    Ok(show(ctx, &reports))
}

fn show(ctx: &Ctx, reports: &[UpgradeReport]) -> i32 {
    let last = reports.last().expect("one report at least");
    if ctx.json {
        print_json(last);
    } else {
        for r in reports {
            print_report(r);
        }
    }
    exit_code_of(last)
}

pub fn reject(ctx: &Ctx, id: &str, reason: Option<&str>) -> Result<i32, CliError> {
    let id = parse_id(id)?;
    let u = if let Some(daemon) = ctx.daemon() {
        let q = serde_urlencoded::to_string([
            ("requested_by", requested_by()),
            ("reason", reason.unwrap_or("").to_string()),
        ])
        .unwrap_or_default();
        let v = daemon
            .json("POST", &format!("/v1/upgrades/{id}/reject?{q}"))
            .map_err(|e| CliError::new(EXIT_INTERNAL, "daemon", e.to_string()))?;
        if let Some(e) = v.get("error") {
            let code = e["code"].as_str().unwrap_or("reject");
            return Err(CliError::new(
                super::daemon_exit_code(code, None, EXIT_USAGE),
                code,
                e["message"].as_str().unwrap_or("").to_string(),
            ));
        }
        v["upgrade"].clone()
    } else {
        let ws = ctx.workspace()?;
        let progress = Progress::new(true);
        let u = orchestrator(&ws, &progress).reject(&id, &requested_by(), reason)?;
        serde_json::to_value(u).unwrap_or_default()
    };
    if ctx.json {
        print_json(&u);
    } else {
        println!(
            "{} {id}: {}",
            style("rejected").yellow().bold(),
            u["error"].as_str().unwrap_or("")
        );
    }
    Ok(EXIT_OK)
}

pub fn queue(ctx: &Ctx, action: Option<&QueueAction>) -> Result<i32, CliError> {
    let ws = ctx.workspace()?;
    match action {
        None => {
            let queued = ws.ledger.queued(1000)?;
            let waiting = ws.ledger.upgrades(&[UpgradeState::AwaitingApproval], 1000)?;
            if ctx.json {
                print_json(&json!({ "queued": queued, "awaiting_approval": waiting }));
                return Ok(EXIT_OK);
            }
            if queued.is_empty() && waiting.is_empty() {
                println!("the queue is empty");
            }
            for (label, list) in [
                ("queued (in the order they run)", &queued),
                ("awaiting approval", &waiting),
            ] {
                if list.is_empty() {
                    continue;
                }
                println!("{}", style(label).bold());
                for u in list.iter() {
                    println!(
                        "  {}  {:<40}  priority {:>2}  risk {:<6}  {}",
                        u.id,
                        truncate(&u.title, 40),
                        u.priority,
                        u.risk.as_deref().unwrap_or("?"),
                        style(ago(&u.created_at)).dim()
                    );
                }
            }
            Ok(EXIT_OK)
        }
        Some(QueueAction::Run) => {
            if ctx.daemon().is_some() {
                return Err(CliError::usage(
                    "graft run is up for this repo and runs the queue itself; `graft status` shows it",
                ));
            }
            let progress = Progress::new(ctx.json);
            let orch = orchestrator(&ws, &progress);
            let mut reports = Vec::new();
            while let Some(r) = orch.run_next()? {
                reports.push(r);
            }
            progress.finish();
            if ctx.json {
                print_json(&reports);
            } else if reports.is_empty() {
                println!("nothing queued");
            } else {
                for r in &reports {
                    print_report(r);
                }
            }
            Ok(reports
                .iter()
                .map(exit_code_of)
                .find(|c| *c != EXIT_OK)
                .unwrap_or(EXIT_OK))
        }
    }
}

pub fn schedule(ctx: &Ctx, action: Option<&ScheduleAction>) -> Result<i32, CliError> {
    let ws = ctx.workspace()?;
    let sched = ws.config.schedule.clone();
    match action {
        None => {
            let now = chrono::Utc::now();
            let rows: Vec<_> = [("scan", &sched.scan), ("autofix", &sched.autofix)]
                .into_iter()
                .map(|(name, every)| {
                    let last = ws.ledger.last_schedule_run(name).ok().flatten();
                    let from = last.as_deref().and_then(schedule::parse_time).unwrap_or(now);
                    let next = schedule::next(every, from).map(schedule::format_time);
                    json!({ "schedule": name, "every": every_text(every), "last": last, "next": next })
                })
                .collect();
            if ctx.json {
                print_json(&rows);
            } else {
                for r in &rows {
                    println!(
                        "  {:<8} {:<14} last {:<22} next {}",
                        r["schedule"].as_str().unwrap_or(""),
                        r["every"].as_str().unwrap_or(""),
                        r["last"].as_str().unwrap_or("never"),
                        r["next"].as_str().unwrap_or("-")
                    );
                }
            }
            Ok(EXIT_OK)
        }
        Some(ScheduleAction::Tick { now }) => {
            let now = match now {
                Some(t) => schedule::parse_time(t).ok_or_else(|| {
                    CliError::usage(format!(
                        "--now `{t}` is not an RFC 3339 time like 2026-11-23T03:00:00Z"
                    ))
                })?,
                None => chrono::Utc::now(),
            };
            let progress = Progress::new(true);
            let tick = orchestrator(&ws, &progress).tick(now)?;
            if ctx.json {
                print_json(&tick);
            } else {
                if tick.expired.is_empty() && tick.ran.is_empty() {
                    println!("nothing was due");
                }
                for id in &tick.expired {
                    println!("{} {id}: waited too long for approval", style("expired").yellow());
                }
                for r in &tick.ran {
                    println!(
                        "{} {} (due {}): {}",
                        style("ran").green(),
                        r["schedule"],
                        r["due"],
                        r["detail"]
                    );
                }
            }
            Ok(EXIT_OK)
        }
    }
}

fn every_text(e: &graft_config::Every) -> String {
    match e {
        graft_config::Every::Manual => "manual".into(),
        graft_config::Every::Cron(p) => match p.as_str() {
            "0 3 * * *" => "daily".into(),
            "0 3 * * 1" => "weekly".into(),
            other => other.to_string(),
        },
    }
}
