//! `graft status`: the live commit, what runs now, and recent upgrades.

use console::style;
use graft_ledger::UpgradeState;
use serde_json::json;

use super::Ctx;
use crate::output::{CliError, EXIT_OK, ago, print_json, short};

pub fn run(ctx: &Ctx, recent: usize) -> Result<i32, CliError> {
    if let Some(http) = ctx.http()? {
        return super::remote::status(ctx, &http);
    }
    let ws = ctx.workspace()?;
    let branch = ws.target_branch()?;
    let live = ws.git.try_rev_parse(&format!("refs/heads/{branch}"))?;
    let active = ws.ledger.upgrades(UpgradeState::ACTIVE, 100)?;
    let queued = ws.ledger.queued(100)?;
    let awaiting = ws.ledger.upgrades(&[UpgradeState::AwaitingApproval], 100)?;
    // Both, newest first, as the ledger lists upgrades.
    let mut pending: Vec<_> = queued.iter().chain(&awaiting).cloned().collect();
    pending.sort_by(|a, b| (&b.created_at, &b.id).cmp(&(&a.created_at, &a.id)));
    pending.truncate(100);
    let today = completed_today(&ws)?;
    let scans = scan_times(&ws)?;
    let recent_list = ws.ledger.upgrades(&[], recent)?;
    // What runs: asked of graft run when it is up, else the ledger's last word.
    let daemon_status = ctx.daemon().and_then(|d| d.json("GET", "/v1/status").ok());
    let supervisor = daemon_status.as_ref().map(|v| v["supervisor"].clone());
    let endpoints = daemon_status.as_ref().map(|v| v["endpoints"].clone());
    let last_live = ws.ledger.live()?;
    if ctx.json {
        print_json(&json!({
            "root": ws.root,
            "branch": branch,
            "branch_commit": live,
            "live_commit": supervisor.as_ref().and_then(|s| s["live_commit"].as_str().map(String::from)).or_else(|| last_live.as_ref().map(|l| l.commit_id.clone())).or(live.clone()),
            "supervisor": supervisor,
            "endpoints": endpoints,
            "in_progress": active,
            "pending": pending,
            "queued": queued,
            "awaiting_approval": awaiting,
            "completed_today": today,
            "scans": scans,
            "recent": recent_list,
        }));
        return Ok(EXIT_OK);
    }
    let name = ws.config.target.display_name(&ws.root);
    println!(
        "{} {name}  branch {branch} at {}",
        style("target").bold(),
        live.as_deref().map(short).unwrap_or("(no commits)")
    );
    match (&supervisor, &last_live, ws.config.run.is_some()) {
        (Some(s), _, _) => println!(
            "{} release {} pid {}{}  {}",
            style("running").bold(),
            s["live_commit"].as_str().map(short).unwrap_or("?"),
            s["pid"],
            if s["in_watch_window"].as_bool() == Some(true) {
                "  (in its watch window)"
            } else {
                ""
            },
            style(s["status"].as_str().unwrap_or("")).dim()
        ),
        (None, Some(l), true) => println!(
            "{} graft run is not running (last live: {} since {})",
            style("running").bold(),
            short(&l.commit_id),
            ago(&l.since)
        ),
        (None, None, true) => println!("{} graft run has not run yet", style("running").bold()),
        _ => {}
    }
    if let Some(api) = endpoints.as_ref().and_then(|e| e["api"].as_str()) {
        println!("{} {api} (OpenAPI at {api}/openapi.json)", style("api").bold());
    }
    if active.is_empty() {
        println!("{} none", style("in progress").bold());
    } else {
        println!("{}", style("in progress").bold());
        for u in &active {
            println!(
                "  {}  {:<40}  {}",
                u.id,
                truncate(&u.title, 40),
                style(u.state).cyan()
            );
        }
    }
    if !queued.is_empty() {
        println!("{} (in the order they run)", style("queued").bold());
        for u in &queued {
            println!(
                "  {}  {:<40}  priority {:>2}  risk {}",
                u.id,
                truncate(&u.title, 40),
                u.priority,
                u.risk.as_deref().unwrap_or("not yet rated")
            );
        }
    }
    if !awaiting.is_empty() {
        println!("{}", style("awaiting approval").bold());
        for u in &awaiting {
            println!(
                "  {}  {:<40}  priority {:>2}  {}  risk {}",
                u.id,
                truncate(&u.title, 40),
                u.priority,
                style("awaiting approval").yellow(),
                u.risk.as_deref().unwrap_or("?")
            );
        }
        println!(
            "  {}",
            style("`graft approve ID` runs one, `graft reject ID` drops it").dim()
        );
    }
    let counts: Vec<String> = today["by_state"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
        .unwrap_or_default();
    println!(
        "{} {}",
        style("completed today").bold(),
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join("   ")
        }
    );
    println!(
        "{} last {}   next {}",
        style("scans").bold(),
        scans["last"]["at"]
            .as_str()
            .map(|t| format!("{} ({} suggestion(s))", ago(t), scans["last"]["suggestions"]))
            .unwrap_or_else(|| "never".into()),
        scans["next"]
            .as_str()
            .unwrap_or("when asked ([schedule] scan = manual)")
    );
    if recent_list.is_empty() {
        println!(
            "{} none yet: try `graft upgrade --patch FILE --dry-run`",
            style("recent").bold()
        );
        return Ok(EXIT_OK);
    }
    println!("{}", style("recent").bold());
    for u in &recent_list {
        let state = match u.state {
            UpgradeState::Promoted => style(u.state.as_str()).green(),
            UpgradeState::Failed => style(u.state.as_str()).red(),
            UpgradeState::RolledBack | UpgradeState::Cancelled => style(u.state.as_str()).yellow(),
            _ => style(u.state.as_str()).cyan(),
        };
        let why = match (&u.reason, u.dry_run) {
            (Some(r), _) if r != "dry_run" => format!("  {}", style(r).dim()),
            (_, true) => format!("  {}", style("dry run").dim()),
            _ => String::new(),
        };
        println!(
            "  {}  {:<40}  {:<11}  {}{why}",
            u.id,
            truncate(&u.title, 40),
            state,
            style(ago(&u.created_at)).dim()
        );
    }
    Ok(EXIT_OK)
}

pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// Upgrades that ended since local midnight, counted by final state.
fn completed_today(ws: &graft_pipeline::Workspace) -> Result<serde_json::Value, CliError> {
    let midnight = chrono::Local::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(chrono::Local).earliest())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now);
    let since = graft_orchestrate::schedule::format_time(midnight);
    let ended = ws.ledger.upgrades(
        &[
            UpgradeState::Promoted,
            UpgradeState::Failed,
            UpgradeState::RolledBack,
            UpgradeState::Cancelled,
        ],
        1000,
    )?;
    let mut by_state = serde_json::Map::new();
    for u in ended
        .iter()
        .filter(|u| !u.dry_run && u.finished_at.as_deref().is_some_and(|f| f >= since.as_str()))
    {
        let n = by_state
            .get(u.state.as_str())
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        by_state.insert(u.state.to_string(), json!(n + 1));
    }
    Ok(json!({ "since": since, "by_state": by_state }))
}

/// The last scan (any) and when the scan schedule runs next.
fn scan_times(ws: &graft_pipeline::Workspace) -> Result<serde_json::Value, CliError> {
    let last = ws.ledger.scans(1)?.into_iter().next();
    let last = match last {
        Some(s) => json!({
            "id": s.id,
            "at": s.created_at,
            "suggestions": ws.ledger.suggestions(&s.id)?.len(),
        }),
        None => serde_json::Value::Null,
    };
    let every = &ws.config.schedule.scan;
    let now = chrono::Utc::now();
    let from = ws
        .ledger
        .last_schedule_run("scan")?
        .as_deref()
        .and_then(graft_orchestrate::schedule::parse_time)
        .unwrap_or(now);
    let next = graft_orchestrate::schedule::next(every, from).map(graft_orchestrate::schedule::format_time);
    Ok(json!({ "last": last, "next": next }))
}
