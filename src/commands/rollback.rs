//! `graft rollback ID` and `graft cancel ID`.

use console::style;
use graft_pipeline::{cancel, recover, rollback};

use super::{Ctx, parse_id};
use crate::commands::upgrade::requested_by;
use crate::output::{CliError, EXIT_INTERNAL, EXIT_OK, print_json, short};

pub fn run(ctx: &Ctx, id: &str) -> Result<i32, CliError> {
    let id = parse_id(id)?;
    let progress = crate::output::Progress::new(ctx.json);
    let report = if let Some(http) = ctx.http()? {
        super::remote::rollback(ctx, &http, id.as_str())?
    } else {
        match ctx.daemon() {
            Some(daemon) => remote(&daemon, &id, &progress)?,
            None => {
                let ws = ctx.workspace()?;
                let deploy = super::local_deploy(&ws);
                let notifier = super::notifier(&ws);
                let mut observers: Vec<&dyn graft_pipeline::Observer> = vec![&progress];
                if let Some(n) = &notifier {
                    observers.push(&**n);
                }
                let observer = graft_pipeline::events::Fanout(observers);
                let held = recover::exclusive(&ws, deploy, true, &observer)?
                    .expect("a blocking lock is always taken");
                let report = rollback::rollback(&ws, deploy, &held, &id, &requested_by(), &observer)?;
                drop(held);
                progress.finish();
                super::deliver_webhooks(ctx, &ws);
                report
            }
        }
    };
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

/// Ask the running `graft run` to roll back (it switches the live process).
fn remote(
    daemon: &graft_supervisor::client::Client,
    id: &graft_ledger::UpgradeId,
    progress: &crate::output::Progress,
) -> Result<rollback::RollbackReport, CliError> {
    let by = serde_urlencoded::to_string([("requested_by", requested_by())]).unwrap_or_default();
    super::from_daemon(
        daemon,
        &format!("/v1/upgrades/{id}/rollback?{by}"),
        Vec::new(),
        progress,
        EXIT_INTERNAL,
    )
}

pub fn cancel(ctx: &Ctx, id: &str) -> Result<i32, CliError> {
    let id = parse_id(id)?;
    if let Some(http) = ctx.http()? {
        return super::remote::cancel(ctx, &http, id.as_str());
    }
    if let Some(daemon) = ctx.daemon() {
        let by = serde_urlencoded::to_string([("requested_by", requested_by())]).unwrap_or_default();
        let v = daemon
            .json("POST", &format!("/v1/upgrades/{id}/cancel?{by}"))
            .map_err(|e| CliError::new(EXIT_INTERNAL, "daemon", e.to_string()))?;
        if let Some(e) = v.get("error") {
            let class = serde_json::from_value(e["class"].clone()).ok();
            let code = e["code"].as_str().unwrap_or("cancel");
            return Err(CliError::new(
                super::daemon_exit_code(code, class, EXIT_INTERNAL),
                code,
                e["message"].as_str().unwrap_or("cancel failed").to_string(),
            ));
        }
        if ctx.json {
            print_json(&v["cancel"]);
        } else {
            println!(
                "{} {id}: {} ({})",
                style("cancel").bold(),
                v["cancel"]["state"].as_str().unwrap_or("?"),
                v["cancel"]["note"].as_str().unwrap_or("")
            );
        }
        return Ok(EXIT_OK);
    }
    let ws = ctx.workspace()?;
    let notifier = super::notifier(&ws);
    let observer = graft_api::webhooks::Notifier::observer(notifier.as_ref());
    let report = cancel::cancel(&ws, super::local_deploy(&ws), &id, &requested_by(), observer)?;
    if notifier.is_some() {
        super::deliver_webhooks(ctx, &ws);
    }
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
