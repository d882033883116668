//! `graft upgrade`: run one change through the pipeline.

use std::io::Read;

use console::style;
use graft_ledger::{RequestKind, UpgradeState};
use graft_orchestrate::{Orchestrator, Submission};
use graft_pipeline::UpgradeReport;

use super::{Ctx, provider};
use crate::cli::UpgradeArgs;
use crate::output::{self, CliError, EXIT_OK, Progress, print_json, short};

pub fn run(ctx: &Ctx, args: &UpgradeArgs) -> Result<i32, CliError> {
    let (kind, input) = match (&args.patch, &args.edits) {
        (Some(p), _) => (RequestKind::Patch, Some(read_input(ctx, p)?)),
        (_, Some(e)) => (RequestKind::Edits, Some(read_input(ctx, e)?)),
        _ if args.autofix => (RequestKind::Autofix, None),
        _ if args.suggestion.is_some() => (RequestKind::Suggestion, None),
        _ => match &args.instruction {
            Some(i) if !i.trim().is_empty() => (RequestKind::Instruction, None),
            Some(_) => return Err(CliError::usage("the instruction is empty; say what to change")),
            None => {
                return Err(CliError::usage(
                    "give an instruction, or the change with --patch FILE, --edits FILE, --autofix or --suggestion ID",
                ));
            }
        },
    };
    if let Some(http) = ctx.http()? {
        let request = http_request(args, kind, input)?;
        return super::remote::upgrade(ctx, &http, request);
    }
    if args.suggestion.is_some() && graft_pipeline::workspace::find_root(&ctx.repo).is_err() {
        return Err(CliError::new(
            output::EXIT_PRECONDITION,
            "environment",
            format!(
                "{} is not in a git repository, and acting on a suggestion needs one: Graft lands every change as a commit. `git init` and a first commit here (then scan again), or run it in the repo the scan was of (`graft -C REPO upgrade --suggestion ID`)",
                ctx.repo.display()
            ),
        ));
    }
    if let Some(daemon) = ctx.daemon() {
        return remote(ctx, &daemon, args, kind, input);
    }
    let ws = ctx.workspace()?;
    // A provider that is not set up is refused before anything is recorded.
    if input.is_none() {
        provider::generator(&ws, &provider::Spec::from_args(args))?;
    }
    let (name, body) = match input {
        Some(i) => i,
        None => (
            "request".to_string(),
            args.instruction.clone().unwrap_or_default().into_bytes(),
        ),
    };
    let deploy = super::local_deploy(&ws);
    let progress = Progress::new(ctx.json);
    let notifier = super::notifier(&ws);
    let mut observers: Vec<&dyn graft_pipeline::Observer> = vec![&progress];
    if let Some(n) = &notifier {
        observers.push(&**n);
    }
    let observer = graft_pipeline::events::Fanout(observers);
    let orch = Orchestrator {
        ws: &ws,
        deploy,
        observer: &observer,
        generators: &provider::CliGenerators,
        analyzer: super::analyzer(),
    };
    let mut sub = Submission::new(kind, &name, body, &requested_by(), "cli");
    sub.title = args.title.clone();
    sub.priority = args.priority;
    sub.dry_run = args.dry_run;
    sub.approve_protected = args.approve_protected;
    sub.suggestion = args.suggestion.clone();
    sub.provider = args.provider.clone();
    let submitted = orch
        .submit(sub, chrono::Utc::now())
        .map_err(super::submit_error)?;
    if submitted.state == UpgradeState::AwaitingApproval || args.queue {
        progress.finish();
        super::deliver_webhooks(ctx, &ws);
        return Ok(super::print_submitted(ctx, &submitted));
    }
    let reports = orch.run_with_retries(&submitted.id)?;
    progress.finish();
    super::deliver_webhooks(ctx, &ws);
    let report = reports.last().expect("one report at least").clone();
    if ctx.json {
        print_json(&report);
    } else {
        for earlier in &reports[..reports.len() - 1] {
            print_report(earlier);
            println!(
                "{}",
                style("retrying, with that failure as context for the provider").yellow()
            );
        }
        print_report(&report);
        if report.state == UpgradeState::Promoted && deploy.name() == "land-only" {
            println!("graft run is not running: it goes live when `graft run` starts");
        }
    }
    Ok(exit_code_of(&report))
}

pub fn exit_code_of(report: &UpgradeReport) -> i32 {
    if report.state == UpgradeState::AwaitingApproval {
        return output::EXIT_AWAITING;
    }
    report
        .failure
        .as_ref()
        .map_or(EXIT_OK, |f| output::exit_code(f.class))
}

/// Send the upgrade to the running `graft run`, which deploys it for real.
fn remote(
    ctx: &Ctx,
    daemon: &graft_supervisor::client::Client,
    args: &UpgradeArgs,
    kind: RequestKind,
    input: Option<(String, Vec<u8>)>,
) -> Result<i32, CliError> {
    // A patch or edits travel as the body; an instruction too (the daemon
    // builds the provider, with its own environment's API keys).
    let (name, bytes) = match input {
        Some(i) => i,
        None => (
            "request".to_string(),
            args.instruction.clone().unwrap_or_default().into_bytes(),
        ),
    };
    let query = graft_supervisor::wire::UpgradeQuery {
        kind: kind.to_string(),
        name,
        title: args.title.clone(),
        dry_run: args.dry_run,
        approve_protected: args.approve_protected,
        priority: args.priority,
        requested_by: requested_by(),
        suggestion: args.suggestion.clone(),
        provider: args.provider.clone(),
        source: None,
        queue: args.queue,
    };
    let path = format!(
        "/v1/upgrades?{}",
        serde_urlencoded::to_string(&query).map_err(|e| CliError::usage(e.to_string()))?
    );
    let progress = Progress::new(ctx.json);
    if !ctx.json {
        eprintln!("graft: sending the upgrade to the running `graft run`");
    }
    let report: Result<UpgradeReport, CliError> =
        super::from_daemon(daemon, &path, bytes, &progress, output::EXIT_INTERNAL);
    progress.finish();
    let report = report?;
    if ctx.json {
        print_json(&report);
    } else {
        print_report(&report);
    }
    Ok(exit_code_of(&report))
}

/// The JSON body of `POST /v1/upgrades` for these arguments.
fn http_request(
    args: &UpgradeArgs,
    kind: RequestKind,
    input: Option<(String, Vec<u8>)>,
) -> Result<serde_json::Value, CliError> {
    let mut v = serde_json::json!({
        "title": args.title,
        "dry_run": args.dry_run,
        "approve_protected": args.approve_protected,
        "priority": args.priority,
        "provider": args.provider,
        "requested_by": requested_by(),
    });
    let text = |name: &str, bytes: Vec<u8>| {
        String::from_utf8(bytes).map_err(|_| {
            CliError::usage(format!(
                "{name} is not UTF-8 text, which the HTTP API cannot carry; run graft on the daemon's machine instead"
            ))
        })
    };
    match (kind, input) {
        (RequestKind::Patch, Some((name, bytes))) => v["patch"] = text(&name, bytes)?.into(),
        (RequestKind::Edits, Some((name, bytes))) => v["edits"] = text(&name, bytes)?.into(),
        (RequestKind::Autofix, _) => v["autofix"] = true.into(),
        (RequestKind::Suggestion, _) => v["suggestion"] = args.suggestion.clone().into(),
        _ => v["instruction"] = args.instruction.clone().unwrap_or_default().into(),
    }
    // Leave out what was not given, so the API applies its defaults.
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|_, x| !x.is_null());
    }
    Ok(v)
}

/// Who asked, for the ledger and the commit's `Requested-By` trailer:
/// `cli:USER@HOST`. The user is the account graft runs as (its name in the
/// user database), else `$USER` or `$LOGNAME`, else `uid<N>`: never
/// `unknown`, even where no login shell set the environment.
pub fn requested_by() -> String {
    let uid = nix::unistd::getuid();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .filter(|n| !n.is_empty())
        .or_else(|| env("USER"))
        .or_else(|| env("LOGNAME"))
        .unwrap_or_else(|| format!("uid{uid}"));
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    cli_requester(&user, &host)
}

/// `cli:USER@HOST` within the 64 characters a requester may have (the
/// HTTP API refuses longer ones): a long host name is cut to its first
/// label, then the whole to 64.
fn cli_requester(user: &str, host: &str) -> String {
    const MAX: usize = 64;
    let host = host.trim();
    let who = |host: &str| match host {
        "" => format!("cli:{user}"),
        h => format!("cli:{user}@{h}"),
    };
    let mut s = who(host);
    if s.chars().count() > MAX {
        s = who(host.split('.').next().unwrap_or(host));
    }
    s.chars().take(MAX).collect()
}

/// Read FILE, or standard input for `-`, no further than `[limits]`
/// allows a change to be. Returns (name, bytes).
fn read_input(ctx: &Ctx, arg: &str) -> Result<(String, Vec<u8>), CliError> {
    let limits = input_limits(ctx);
    let read = |name: &str, reader: &mut dyn Read| {
        graft_change::read_request(reader, name, &limits).map_err(|e| match e {
            graft_change::ChangeError::Io { source, .. } => {
                CliError::usage(format!("cannot read {name}: {source}"))
            }
            refused => super::refused(&refused),
        })
    };
    if arg == "-" {
        let bytes = read("<stdin>", &mut std::io::stdin().lock())?;
        return Ok(("<stdin>".into(), bytes));
    }
    let mut file =
        std::fs::File::open(arg).map_err(|e| CliError::usage(format!("cannot read {arg}: {e}")))?;
    Ok((arg.to_string(), read(arg, &mut file)?))
}

/// The limits a change read here is held to: the repo's `[limits]`; with
/// `--url` and no repo here, as much as any HTTP API takes (it applies
/// its own).
fn input_limits(ctx: &Ctx) -> graft_change::Limits {
    let local = graft_pipeline::workspace::find_root(&ctx.repo)
        .ok()
        .and_then(|root| graft_config::Config::load(&root).ok());
    match local {
        Some(config) => graft_pipeline::upgrade::limits(&config),
        None if ctx.url.is_some() => graft_change::Limits {
            max_change_bytes: graft_config::MAX_API_BODY_BYTES / graft_change::REQUEST_BYTES_PER_CHANGE_BYTE,
            ..Default::default()
        },
        None => Default::default(),
    }
}

pub fn print_report(r: &UpgradeReport) {
    provider::print_rounds(r);
    if r.dry_run {
        print_files(r);
        if !r.diff.is_empty() {
            println!();
            print!("{}", crate::commands::diff::colorize(&r.diff));
        }
        println!();
    }
    print_gates(r);
    let id = &r.id;
    match (&r.failure, r.state) {
        (None, UpgradeState::Promoted) => {
            println!(
                "{} {id}: landed on {} as {} (tag graft/promoted/{id})",
                style("promoted").green().bold(),
                r.target_branch.as_deref().unwrap_or("?"),
                short(r.landed_commit.as_deref().unwrap_or("")),
            );
            print_files(r);
        }
        (None, UpgradeState::AwaitingApproval) => {
            println!(
                "{} {id}: every gate passed; risk {}\n  {}\napprove it with `graft approve {id}` (or `graft reject {id}`)",
                style("awaiting approval").yellow().bold(),
                r.risk.as_deref().unwrap_or("?"),
                r.risk_reasons.join("\n  ")
            );
        }
        (None, _) => {
            println!(
                "{} {id}: every gate passed; nothing was changed (run it again without --dry-run to land it)",
                style("dry run").green().bold()
            );
        }
        (Some(f), state) => {
            let label = match state {
                UpgradeState::RolledBack => style("rolled back").yellow().bold(),
                UpgradeState::Cancelled => style("cancelled").yellow().bold(),
                _ if f.class == graft_pipeline::FailureClass::Refused => style("refused").red().bold(),
                _ => style("failed").red().bold(),
            };
            println!("{label} {id}: {}", f.message);
            if state != UpgradeState::RolledBack {
                println!("nothing landed: the branch, the working tree and the data files are unchanged");
            }
            if let Some(b) = &r.branch {
                println!("the staged change is kept on branch {b} (`graft diff {id}`)");
            }
            println!(
                "{} `graft show {id}` prints the whole upgrade, every gate's output included",
                style("more:").dim()
            );
        }
    }
}

/// One line per gate. A failed gate's output is said once: a required
/// gate's in the failure message, an advisory one's in the progress lines
/// as it ran; `graft show ID` has all of it.
fn print_gates(r: &UpgradeReport) {
    for g in &r.gates {
        println!("{}", output::gate_line(g));
    }
}

fn print_files(r: &UpgradeReport) {
    for f in &r.files {
        println!("{}", super::diff::file_line(f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requester_names_user_and_host_within_64_characters() {
        assert_eq!(cli_requester("ada", "build-host"), "cli:ada@build-host");
        assert_eq!(cli_requester("ada", ""), "cli:ada");
        let long = format!("ci-runner-{}.example.internal", "x".repeat(40));
        assert_eq!(
            cli_requester("ada", &long),
            format!("cli:ada@ci-runner-{}", "x".repeat(40))
        );
        assert_eq!(cli_requester(&"u".repeat(80), "h").chars().count(), 64);
        let me = requested_by();
        assert!(me.starts_with("cli:") && !me.contains("unknown"), "{me}");
    }
}
