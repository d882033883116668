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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return refused_command_line(e),
    };
    let repo = match cli.repo.clone() {
        Some(r) => r,
        None => std::env::current_dir().unwrap_or_else(|_| ".".into()),
    };
    // `--url` belongs to the commands a daemon's HTTP API answers; clap
    // refuses it anywhere else.
    let url = match &cli.command {
        Command::Upgrade(a) => a.remote.url.clone(),
        Command::Status(a) => a.remote.url.clone(),
        Command::Show(a) | Command::Rollback(a) | Command::Cancel(a) => a.remote.url.clone(),
        _ => None,
    };
    let ctx = Ctx {
        repo,
        json: cli.json,
        url,
    };
    let result = match &cli.command {
        Command::Init(a) => commands::init::run(&ctx, a.force),
        Command::Upgrade(a) => commands::upgrade::run(&ctx, a),
        Command::Status(a) => commands::status::run(&ctx, a.recent),
        Command::Show(a) => commands::show::run(&ctx, &a.id),
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
        Command::Completions(a) => commands::manual::completions(a.shell),
        Command::Man(a) => commands::manual::man(a.command.as_deref()),
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

/// A command line clap would not take (or `--help`, `--version`): printed
/// as clap prints it, but under `--json` as the one JSON error object on
/// stdout that every other error is, exit 2.
fn refused_command_line(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    let message = match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => e.exit(),
        _ if !json => e.exit(),
        _ => output::clap_message(&e.render().to_string()),
    };
    output::print_error(true, &output::CliError::usage(message));
    ExitCode::from(output::EXIT_USAGE as u8)
}
