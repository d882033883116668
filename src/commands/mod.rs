//! One module per command. Each returns the exit code it wants, or a
//! [`CliError`]; printing the error is `main`'s job.

pub mod analyzer;
pub mod demo;
pub mod diff;
pub mod init;
pub mod ledger;
pub mod logs;
pub mod manual;
pub mod mcp;
pub mod provider;
pub mod queue;
pub mod remote;
pub mod rollback;
pub mod run;
pub mod scan;
pub mod show;
pub mod status;
pub mod upgrade;

use std::path::PathBuf;

use graft_pipeline::{Deploy, LandOnly, RecordOnly, Workspace, recover};
use graft_supervisor::client::Client;

use crate::output::CliError;

/// What every command gets.
pub struct Ctx {
    pub repo: PathBuf,
    pub json: bool,
    /// `--url`: a daemon's HTTP API to talk to instead.
    pub url: Option<String>,
}

impl Ctx {
    /// Open the target repo and recover anything a crashed run left behind.
    pub fn workspace(&self) -> Result<Workspace, CliError> {
        let ws = Workspace::open(&self.repo)?;
        let recovered = recover::recover(&ws, local_deploy(&ws))?;
        for r in &recovered {
            if !self.json {
                eprintln!("graft: recovered {} ({})", r.id, r.action);
            }
        }
        // What recovery ended is news to the webhooks, as the end of the
        // run that died would have been.
        if !recovered.is_empty()
            && let Some(n) = notifier(&ws)
        {
            recover::announce(&ws, &recovered, &*n);
            deliver_webhooks(self, &ws);
        }
        Ok(ws)
    }

    /// The daemon's HTTP API given by `--url`, with the secret to sign by.
    pub fn http(&self) -> Result<Option<graft_api::client::HttpClient>, CliError> {
        match &self.url {
            None => Ok(None),
            Some(url) => remote::client(self, url).map(Some),
        }
    }

    /// The running `graft run` for this repo, if there is one: changes then
    /// go through it and deploy for real.
    pub fn daemon(&self) -> Option<Client> {
        let root = graft_pipeline::workspace::find_root(&self.repo).ok()?;
        Client::find(&root)
    }
}

/// The deploy step when no `graft run` serves the target: a landed commit
/// is live at once, or, for a supervised target (`[run]`), goes live when
/// `graft run` next starts.
pub fn local_deploy(ws: &Workspace) -> &'static dyn Deploy {
    if ws.config.run.is_some() {
        &LandOnly
    } else {
        &RecordOnly
    }
}

/// Parse an upgrade id given on the command line.
pub fn parse_id(id: &str) -> Result<graft_ledger::UpgradeId, CliError> {
    id.parse()
        .map_err(|e: String| CliError::new(crate::output::EXIT_NOT_FOUND, "bad_id", e))
}

/// The analyzer, for code metrics and scheduled scans.
pub fn analyzer() -> Option<&'static dyn graft_orchestrate::Analyzer> {
    Some(&analyzer::ANALYZER)
}

/// The same, shareable with graft run's threads.
pub fn analyzer_sync() -> Option<&'static (dyn graft_orchestrate::Analyzer + Sync)> {
    Some(&analyzer::ANALYZER)
}

/// The exit code of an error `graft run` answered: an unknown upgrade is
/// `EXIT_NOT_FOUND`, as it is without a daemon; otherwise its class's code
/// (`unclassified` when it has none).
pub fn daemon_exit_code(code: &str, class: Option<graft_pipeline::FailureClass>, unclassified: i32) -> i32 {
    if code == "not_found" {
        crate::output::EXIT_NOT_FOUND
    } else {
        class.map_or(unclassified, crate::output::exit_code)
    }
}

/// Follow an operation on the running `graft run` to its report, showing
/// its events on `progress`. An error it ended with exits as
/// [`daemon_exit_code`] says.
pub fn from_daemon<T: serde::de::DeserializeOwned>(
    daemon: &graft_supervisor::client::Client,
    path: &str,
    body: Vec<u8>,
    progress: &crate::output::Progress,
    unclassified: i32,
) -> Result<T, CliError> {
    use graft_pipeline::Observer as _;
    let outcome = daemon
        .outcome("POST", path, body, &mut |e| progress.on_event(e))
        .map_err(|e| CliError::new(crate::output::EXIT_INTERNAL, "daemon", e.to_string()))?;
    outcome.map_err(|e| {
        CliError::new(
            daemon_exit_code(&e.code, e.class, unclassified),
            &e.code,
            e.message,
        )
    })
}

/// A submission the orchestrator refused, as the CLI reports it.
pub fn submit_error(e: graft_orchestrate::SubmitError) -> CliError {
    match e {
        graft_orchestrate::SubmitError::Limited { message, .. } => {
            CliError::new(crate::output::EXIT_PRECONDITION, "rate_limited", message)
        }
        graft_orchestrate::SubmitError::Refused(e) => refused(&e),
        graft_orchestrate::SubmitError::Pipeline(e) => e.into(),
    }
}

/// A change refused before anything was stored (over `[limits]`): exit 3
/// with its code, as a change the pipeline refuses.
pub fn refused(e: &graft_change::ChangeError) -> CliError {
    CliError::new(crate::output::EXIT_REFUSED, e.code(), e.to_string())
}

/// Say what became of a submission that does not run now.
pub fn print_submitted(ctx: &Ctx, s: &graft_orchestrate::Submitted) -> i32 {
    use graft_ledger::UpgradeState;
    if ctx.json {
        crate::output::print_json(&serde_json::json!({
            "id": s.id,
            "state": s.state,
            "risk": s.risk.level,
            "risk_reasons": s.risk.reasons,
        }));
    } else if s.state == UpgradeState::AwaitingApproval {
        println!(
            "{} {}: risk {}\n  {}\napprove it with `graft approve {}` (or `graft reject {}`)",
            console::style("awaiting approval").yellow().bold(),
            s.id,
            s.risk.level,
            s.risk.reasons.join("\n  "),
            s.id,
            s.id
        );
    } else {
        println!(
            "{} {} (risk {}); `graft queue run` runs the queue",
            console::style("queued").bold(),
            s.id,
            s.risk.level
        );
    }
    if s.state == UpgradeState::AwaitingApproval {
        crate::output::EXIT_AWAITING
    } else {
        crate::output::EXIT_OK
    }
}

/// The webhook notifier for a pipeline run in this process (None: no
/// webhooks configured, or the ledger cannot be opened).
pub fn notifier(ws: &Workspace) -> Option<std::sync::Arc<graft_api::webhooks::Notifier>> {
    graft_api::webhooks::Notifier::open_or_warn(&ws.root, &ws.config, "graft")
}

/// Send the webhook notifications this command queued, for a few seconds
/// at most, unless `graft run` sends them; say so when some must wait.
pub fn deliver_webhooks(ctx: &Ctx, ws: &Workspace) {
    let flushed =
        graft_api::webhooks::flush(&ws.root, &ws.config.webhooks, graft_api::webhooks::COMMAND_BUDGET);
    if let graft_api::webhooks::Flushed::Sent { left } = flushed
        && left > 0
        && !ctx.json
    {
        eprintln!(
            "graft: {left} webhook notification(s) could not be sent yet; they wait in the ledger for the next graft command or graft run"
        );
    }
}
