//! `graft ledger`: what the ledger says about all upgrades so far.

use console::style;
use graft_pipeline::advice::recommendation;

use super::Ctx;
use crate::commands::status::truncate;
use crate::output::{CliError, EXIT_OK, ago, print_json};

pub fn run(ctx: &Ctx, recent: usize) -> Result<i32, CliError> {
    let ws = ctx.workspace()?;
    let (stats, mut v) = graft_pipeline::advice::ledger_report(&ws.ledger, recent)?;
    let learnt = graft_orchestrate::learning::learnt(&ws.ledger, ws.config.policy.learn_min_outcomes)?;
    if ctx.json {
        v["learning"] = serde_json::to_value(&learnt).unwrap_or_default();
        print_json(&v);
        return Ok(EXIT_OK);
    }
    if stats.total == 0 {
        println!("the ledger is empty: no upgrade has run yet (dry runs are not counted)");
        return Ok(EXIT_OK);
    }
    let rate = stats
        .success_rate
        .map_or("n/a".to_string(), |r| format!("{:.0} %", r * 100.0));
    println!("{}", style("totals").bold());
    println!(
        "  upgrades {}   success rate {rate}   rollbacks {}",
        stats.total, stats.rollbacks
    );
    let states: Vec<String> = stats.by_state.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!("  {}", states.join("   "));
    println!("{}", style("by kind").bold());
    for k in &stats.by_kind {
        println!(
            "  {:<12} {:>4} total  {:>4} promoted  {:>4} failed  {:>4} rolled back",
            k.kind, k.total, k.promoted, k.failed, k.rolled_back
        );
    }
    super::provider::print_generation(&ws, recent)?;
    println!("{}", style("files changed").bold());
    println!("  {} distinct file(s) in landed upgrades", stats.files_changed);
    for (path, n) in &stats.top_files {
        println!("  {n:>4}  {path}");
    }
    if !stats.failures_by_cause.is_empty() {
        println!("{}", style("failures by cause").bold());
        for c in &stats.failures_by_cause {
            println!("  {:>4}  {}", c.count, style(&c.cause).red());
            if let Some(e) = &c.example {
                println!("        last: {}", truncate(e.lines().next().unwrap_or(""), 100));
            }
            println!("        {} {}", style("→").cyan(), recommendation(&c.cause));
        }
    }
    print_learning(&learnt);
    println!("{}", style("recent").bold());
    for u in &stats.recent {
        println!(
            "  {}  {:<11}  {:<40}  {}",
            u.id,
            u.state,
            truncate(&u.title, 40),
            style(ago(&u.created_at)).dim()
        );
    }
    Ok(EXIT_OK)
}

/// Success by kind, module and provider; what to do about what fails; and
/// whether landed upgrades made the code better.
fn print_learning(l: &graft_orchestrate::learning::Learnt) {
    for (title, rows) in [
        ("success by kind", &l.by_kind),
        ("success by module", &l.by_module),
        ("success by provider", &l.by_provider),
    ] {
        if rows.is_empty() {
            continue;
        }
        println!("{}", style(title).bold());
        for r in rows.iter() {
            let rate = if r.total == 0 {
                "n/a".to_string()
            } else {
                format!("{:.0} %", r.promoted as f64 * 100.0 / r.total as f64)
            };
            let cause = r
                .top_cause
                .as_ref()
                .map(|(c, n)| format!("  mostly {c} ({n})"))
                .unwrap_or_default();
            println!(
                "  {:<20} {:>4} total  {:>6} promoted{}",
                truncate(&r.key, 20),
                r.total,
                rate,
                style(cause).dim()
            );
        }
    }
    if !l.recommendations.is_empty() {
        println!("{}", style("recommendations").bold());
        for r in &l.recommendations {
            println!("  {} {r}", style("→").cyan());
        }
    }
    if !l.improvement.is_empty() {
        println!(
            "{}",
            style("code before → after promoted upgrades (touched files)").bold()
        );
        for d in &l.improvement {
            println!(
                "  {:<12} {:>3} upgrade(s)  complexity {} → {}  lines {} → {}  duplicates {} → {}  cycles {} → {}",
                d.key,
                d.upgrades,
                d.before.complexity,
                d.after.complexity,
                d.before.loc,
                d.after.loc,
                d.before.duplicates,
                d.after.duplicates,
                d.before.cycles,
                d.after.cycles
            );
        }
    }
}
