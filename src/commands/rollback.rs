//! `graft rollback ID` and `graft cancel ID`.

use console::style;
use graft_pipeline::{RecordOnly, cancel, recover, rollback};

use super::{Ctx, parse_id};
use crate::commands::upgrade::requested_by;
use crate::output::{CliError, EXIT_OK, print_json, short};

pub fn run(ctx: &Ctx, id: &str) -> Result<i32, CliError> {
    let id = parse_id(id)?;
    let ws = ctx.workspace()?;
    let held = recover::exclusive(&ws, &RecordOnly, true)?.expect("a blocking lock is always taken");
    let progress = crate::output::Progress::new(ctx.json);
    let report = rollback::rollback(&ws, &RecordOnly, &held, &id, &requested_by(), &progress)?;
    progress.finish();
    if ctx.json {
        print_json(&report);
        return Ok(EXIT_OK);
    }
    match &report.revert_commit {
        Some(c) => {
            println!(
                "{} {id}: revert commit {} landed",
                style("rolled back").yellow().bold(),
                short(c)
            );
            if report.data_restored.is_empty() {
                println!("data files: none needed restoring");
            } else {
                println!("data files restored: {}", report.data_restored.join(", "));
            }
        }
        None => println!(
            "{} {id}: it never landed; its branch was discarded",
            style("discarded").yellow().bold()
        ),
    }
    Ok(EXIT_OK)
}

pub fn cancel(ctx: &Ctx, id: &str) -> Result<i32, CliError> {
    let id = parse_id(id)?;
    let ws = ctx.workspace()?;
    let report = cancel::cancel(&ws, &RecordOnly, &id, &requested_by())?;
    if ctx.json {
        print_json(&report);
    } else {
        println!(
            "{} {id}: {} ({})",
            style("cancel").bold(),
            report.state,
            report.note
        );
    }
    Ok(EXIT_OK)
}
