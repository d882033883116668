//! What the tools do, the same way the CLI does it: through the running
//! `graft run` of the repo when there is one (its control socket; the
//! change then deploys for real, on the daemon's queue), else in this
//! process, landing on the branch (live when `graft run` next starts).
//!
//! Everything here blocks (git, gates, SQLite): the server calls it on
//! blocking threads.

use std::path::Path;

use graft_api::webhooks::Notifier;
use graft_ledger::{RequestKind, UpgradeId, UpgradeState};
use graft_orchestrate::{Orchestrator, SubmitError};
use graft_pipeline::rollback::RollbackReport;
use graft_pipeline::{Deploy, LandOnly, RecordOnly, UpgradeReport, Workspace, cancel, recover, rollback};
use graft_supervisor::client::Client;
use graft_supervisor::wire::{GeneratorFactory, UpgradeQuery};
use serde_json::{Value, json};

/// A tool call that could not do what was asked: why, and what to do.
#[derive(Debug, Clone)]
pub struct ToolError {
    pub code: String,
    pub message: String,
}

impl ToolError {
    pub fn new(code: &str, message: impl Into<String>) -> ToolError {
        ToolError {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]", self.message, self.code)
    }
}

impl From<graft_pipeline::PipelineError> for ToolError {
    fn from(e: graft_pipeline::PipelineError) -> ToolError {
        ToolError::new("graft", e.to_string())
    }
}

impl From<graft_pipeline::Failure> for ToolError {
    fn from(f: graft_pipeline::Failure) -> ToolError {
        ToolError::new(&f.reason, f.message)
    }
}

impl From<graft_ledger::LedgerError> for ToolError {
    fn from(e: graft_ledger::LedgerError) -> ToolError {
        match e {
            graft_ledger::LedgerError::UnknownUpgrade(_) => ToolError::new("not_found", e.to_string()),
            other => ToolError::new("ledger", other.to_string()),
        }
    }
}

/// What the binary supplies: providers and the analyzer.
#[derive(Clone)]
pub struct Hooks {
    pub generators: GeneratorFactory,
    /// Figures of the files an upgrade touches, when the binary has them.
    pub analyzer: Option<&'static (dyn graft_orchestrate::Analyzer + Sync)>,
    pub scan: graft_api::ScanHook,
}

/// Where a tool's work happened.
pub fn via(root: &Path) -> &'static str {
    if Client::find(root).is_some() {
        "graft run"
    } else {
        "local"
    }
}

fn daemon_error(e: graft_supervisor::client::ClientError) -> ToolError {
    ToolError::new("daemon", e.to_string())
}

/// An operation on the running `graft run`, followed to its report.
fn from_daemon<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
    body: Vec<u8>,
) -> Result<T, ToolError> {
    client
        .outcome("POST", path, body, &mut |_| {})
        .map_err(daemon_error)?
        .map_err(line_error)
}

fn line_error(e: graft_supervisor::wire::ErrorLine) -> ToolError {
    ToolError::new(&e.code, e.message)
}

/// The deploy step without a daemon (as the CLI: a supervised target's
/// landed commit goes live when `graft run` starts).
fn local_deploy(ws: &Workspace) -> &'static dyn Deploy {
    if ws.config.run.is_some() {
        &LandOnly
    } else {
        &RecordOnly
    }
}

/// Run one upgrade (a dry run for `plan`).
pub fn upgrade(
    root: &Path,
    hooks: &Hooks,
    q: UpgradeQuery,
    body: Vec<u8>,
) -> Result<UpgradeReport, ToolError> {
    if let Some(client) = Client::find(root) {
        let path = format!(
            "/v1/upgrades?{}",
            serde_urlencoded::to_string(&q).map_err(|e| ToolError::new("bad_request", e.to_string()))?
        );
        return from_daemon(&client, &path, body);
    }
    let ws = Workspace::open(root)?;
    let kind: RequestKind = q
        .kind
        .parse()
        .map_err(|_| ToolError::new("bad_request", format!("unknown kind `{}`", q.kind)))?;
    let notifier = Notifier::open_or_warn(&ws.root, &ws.config, "graft mcp");
    let observer = Notifier::observer(notifier.as_ref());
    // Through the queue and the risk policy, like every other way in (the
    // rate limit included; a plan is not limited).
    let orch = Orchestrator {
        ws: &ws,
        deploy: local_deploy(&ws),
        observer,
        generators: &*hooks.generators,
        analyzer: hooks.analyzer.map(|a| a as &dyn graft_orchestrate::Analyzer),
    };
    let sub = q.submission(kind, body, "mcp");
    let submitted = orch.submit(sub, chrono::Utc::now()).map_err(|e| match e {
        SubmitError::Limited { message, .. } => ToolError::new("rate_limited", message),
        SubmitError::Refused(e) => ToolError::new(e.code(), e.to_string()),
        SubmitError::Pipeline(e) => ToolError::from(e),
    })?;
    let report = if submitted.state == UpgradeState::AwaitingApproval {
        graft_pipeline::review::report_from_ledger(&ws, &submitted.id)?
    } else {
        let mut reports = orch.run_with_retries(&submitted.id)?;
        reports
            .pop()
            .ok_or_else(|| ToolError::new("internal", "the upgrade did not run"))?
    };
    flush(&ws);
    Ok(report)
}

/// Send this call's webhook notifications, as a CLI command does; what
/// must wait is said in the server's log (stderr; stdout is the protocol).
fn flush(ws: &Workspace) {
    use graft_api::webhooks::{COMMAND_BUDGET, Flushed, flush};
    if let Flushed::Sent { left } = flush(&ws.root, &ws.config.webhooks, COMMAND_BUDGET)
        && left > 0
    {
        eprintln!(
            "graft mcp: {left} webhook notification(s) could not be sent yet; they wait in the ledger for the next graft command or graft run"
        );
    }
}

pub fn parse_id(id: &str) -> Result<UpgradeId, ToolError> {
    id.trim()
        .parse()
        .map_err(|e: String| ToolError::new("not_found", e))
}

pub fn rollback(root: &Path, id: &UpgradeId, by: &str) -> Result<RollbackReport, ToolError> {
    if let Some(client) = Client::find(root) {
        let q = serde_urlencoded::to_string([("requested_by", by)]).unwrap_or_default();
        return from_daemon(&client, &format!("/v1/upgrades/{id}/rollback?{q}"), Vec::new());
    }
    let ws = Workspace::open(root)?;
    let deploy = local_deploy(&ws);
    let notifier = Notifier::open_or_warn(&ws.root, &ws.config, "graft mcp");
    let observer = Notifier::observer(notifier.as_ref());
    let held = recover::exclusive(&ws, deploy, true, observer)?.expect("a blocking lock is always taken");
    let report = rollback::rollback(&ws, deploy, &held, id, by, observer)?;
    drop(held);
    flush(&ws);
    Ok(report)
}

pub fn cancel(root: &Path, id: &UpgradeId, by: &str) -> Result<Value, ToolError> {
    if let Some(client) = Client::find(root) {
        let q = serde_urlencoded::to_string([("requested_by", by)]).unwrap_or_default();
        let v = client
            .json("POST", &format!("/v1/upgrades/{id}/cancel?{q}"))
            .map_err(daemon_error)?;
        if let Some(e) = v.get("error") {
            return Err(ToolError::new(
                e["code"].as_str().unwrap_or("cancel"),
                e["message"].as_str().unwrap_or("cancel failed"),
            ));
        }
        return Ok(v["cancel"].clone());
    }
    let ws = Workspace::open(root)?;
    let notifier = Notifier::open_or_warn(&ws.root, &ws.config, "graft mcp");
    let observer = Notifier::observer(notifier.as_ref());
    let report = cancel::cancel(&ws, local_deploy(&ws), id, by, observer)?;
    flush(&ws);
    Ok(json!(report))
}

/// One upgrade as the ledger knows it, or the repo's status.
pub fn status(root: &Path, id: Option<&UpgradeId>) -> Result<Value, ToolError> {
    let ws = Workspace::open(root)?;
    if let Some(id) = id {
        let u = ws.ledger.get_upgrade(id.as_str())?;
        return Ok(json!({
            "upgrade": u,
            "gates": ws.ledger.gate_runs(id.as_str())?,
            "files": ws.ledger.file_changes(id.as_str())?,
            "rollbacks": ws.ledger.rollbacks(Some(id.as_str()))?,
        }));
    }
    let supervisor = Client::find(root)
        .and_then(|c| c.json("GET", "/v1/status").ok())
        .map(|v| v["supervisor"].clone());
    let branch = ws.target_branch()?;
    Ok(json!({
        "root": ws.root,
        "branch": branch,
        "branch_commit": ws.git.try_rev_parse(&format!("refs/heads/{branch}"))?,
        "graft_run": supervisor,
        "in_progress": ws.ledger.upgrades(UpgradeState::ACTIVE, 100)?,
        "pending": ws.ledger.upgrades(&[UpgradeState::Queued, UpgradeState::AwaitingApproval], 100)?,
        "recent": ws.ledger.upgrades(&[], 10)?,
    }))
}
