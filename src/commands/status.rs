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
    let active = ws.ledger.upgrades(
        &[
            UpgradeState::Generating,
            UpgradeState::Staging,
            UpgradeState::Validating,
            UpgradeState::Deploying,
            UpgradeState::Watching,
        ],
        100,
    )?;
    let pending = ws
        .ledger
        .upgrades(&[UpgradeState::Queued, UpgradeState::AwaitingApproval], 100)?;
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
            "recent": recent_list,
        }));
        return Ok(EXIT_OK);
    }
    let name = ws.config.target.name.clone().unwrap_or_else(|| {
        ws.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
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
    if !pending.is_empty() {
        println!("{}", style("pending").bold());
        for u in &pending {
            println!(
                "  {}  {:<40}  priority {}  {}",
                u.id,
                truncate(&u.title, 40),
                u.priority,
                u.state
            );
        }
    }
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
