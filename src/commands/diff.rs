//! `graft diff ID`: the files an upgrade changed, then its diff.

use std::io::IsTerminal as _;

use console::style;
use serde_json::json;

use super::{Ctx, parse_id};
use crate::output::{CliError, EXIT_OK, print_json};

pub fn run(ctx: &Ctx, id: &str) -> Result<i32, CliError> {
    let id = parse_id(id)?;
    let ws = ctx.workspace()?;
    let u = ws.ledger.get_upgrade(id.as_str())?;
    let files = ws.ledger.file_changes(id.as_str())?;
    let diff = ws.ledger.diff(id.as_str())?.unwrap_or_default();
    if ctx.json {
        print_json(&json!({ "id": id, "state": u.state, "title": u.title, "files": files, "diff": diff }));
        return Ok(EXIT_OK);
    }
    println!("{} {}  {}  {}", style("upgrade").bold(), id, u.title, u.state);
    if files.is_empty() {
        println!("no files: the upgrade stopped before its change was staged");
        if let Some(e) = &u.error {
            println!("{e}");
        }
        return Ok(EXIT_OK);
    }
    let (added, removed) = files
        .iter()
        .fold((0, 0), |(a, r), f| (a + f.lines_added, r + f.lines_removed));
    for f in &files {
        println!("{}", file_line(f));
    }
    println!("  {} file(s), +{added} -{removed}\n", files.len());
    print!("{}", colorize(&diff));
    Ok(EXIT_OK)
}

/// One changed file in one line: what happened to it, its path (a rename's
/// both), lines added and removed.
pub fn file_line(f: &graft_ledger::FileChange) -> String {
    let name = match &f.old_path {
        Some(old) => format!("{old} → {}", f.path),
        None => f.path.clone(),
    };
    format!(
        "  {:<7} {name}  {} {}",
        f.kind,
        style(format!("+{}", f.lines_added)).green(),
        style(format!("-{}", f.lines_removed)).red()
    )
}

/// Color a unified diff when stdout is a terminal.
pub fn colorize(diff: &str) -> String {
    if !std::io::stdout().is_terminal() {
        return diff.to_string();
    }
    let mut out = String::with_capacity(diff.len() + diff.len() / 8);
    for line in diff.lines() {
        let styled = if line.starts_with("+++") || line.starts_with("---") || line.starts_with("diff ") {
            style(line).bold().to_string()
        } else if line.starts_with('+') {
            style(line).green().to_string()
        } else if line.starts_with('-') {
            style(line).red().to_string()
        } else if line.starts_with("@@") {
            style(line).cyan().to_string()
        } else {
            line.to_string()
        };
        out.push_str(&styled);
        out.push('\n');
    }
    out
}
