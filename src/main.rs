//! `graft`: the command line. Parses flags and wires the library crates
//! together; the work happens in `graft-pipeline` and friends.

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser as _;

use cli::{Cli, Command};
use commands::Ctx;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let repo = match cli.repo.clone() {
        Some(r) => r,
        None => std::env::current_dir().unwrap_or_else(|_| ".".into()),
    };
    let ctx = Ctx {
        repo,
        json: cli.json,
        url: cli.url.clone(),
    };
    let result = match &cli.command {
        c if ctx.url.is_some()
            && !matches!(
                c,
                Command::Upgrade(_) | Command::Rollback(_) | Command::Cancel(_) | Command::Status(_)
            ) =>
        {
            Err(output::CliError::usage(
                "--url (or $GRAFT_URL) works with upgrade, rollback, cancel and status; run the others on the daemon's machine",
            ))
        }
        Command::Init(a) => commands::init::run(&ctx, a.force),
        Command::Upgrade(a) => commands::upgrade::run(&ctx, a),
        Command::Status(a) => commands::status::run(&ctx, a.recent),
        Command::Diff(a) => commands::diff::run(&ctx, &a.id),
        Command::Rollback(a) => commands::rollback::run(&ctx, &a.id),
        Command::Cancel(a) => commands::rollback::cancel(&ctx, &a.id),
        Command::Ledger(a) => commands::ledger::run(&ctx, a.recent),
        Command::Approve(a) => commands::queue::approve(&ctx, &a.id),
        Command::Reject(a) => commands::queue::reject(&ctx, &a.id, a.reason.as_deref()),
        Command::Queue(a) => commands::queue::queue(&ctx, a.action.as_ref()),
        Command::Schedule(a) => commands::queue::schedule(&ctx, a.action.as_ref()),
        Command::Run => commands::run::run(&ctx),
        Command::Logs(a) => commands::logs::run(&ctx, a.follow, a.lines),
        Command::Demo(a) => commands::demo::run(&ctx, a.keep),
        Command::Scan(a) => commands::scan::run(&ctx, a),
        Command::Mcp => commands::mcp::run(&ctx),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            output::print_error(ctx.json, &e);
            e.code
        }
    };
    ExitCode::from(code as u8)
}
