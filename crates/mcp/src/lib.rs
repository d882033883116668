//! `graft mcp`: a Model Context Protocol server on stdin/stdout, so that
//! coding agents (Claude Code, Cursor, any MCP client) can drive Graft on
//! the repository they work in.
//!
//! Tools: `self_improve` (actions `plan`: stage and gate a change, return
//! its diff and gate results, change nothing; `execute`: the whole
//! pipeline; `status`; `cancel`), `rollback`, `diff`, `scan`, `ledger`,
//! `get_task`, `save_task`, `append_history`, `get_history`. Each tool's
//! input has a JSON schema; a call that cannot do what was asked comes
//! back as a tool error (`isError`) whose text says why and what to do.
//!
//! Module map: this file is the protocol face (rmcp's tool router);
//! [`ops`] does the work, through `graft run` when it serves the repo;
//! [`lines`] bounds what is read of one message, so a change over
//! `[limits]` is refused however big (`too_large`), as from every way in.
//!
//! API boundary: built on `graft-pipeline`, `graft-orchestrate` (the
//! queue, whose `submit` applies the rate limit, `graft_orchestrate::rate`),
//! the daemon's control socket (`graft-supervisor`) and `graft-api`
//! (webhooks, the scan hook); the binary supplies providers and the
//! analyzer ([`ops::Hooks`]).

pub mod lines;
pub mod ops;

use std::path::PathBuf;

use graft_ledger::{NewHistory, RequestKind};
use graft_supervisor::wire::UpgradeQuery;
use ops::{Hooks, ToolError};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, CustomRequest, CustomResult, ErrorCode, ErrorData, Implementation,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, ServiceExt as _, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// What `self_improve` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Stage the change and run every gate; return the diff and the
    /// results; change nothing.
    Plan,
    /// Run the change through the whole pipeline: gates, land, deploy,
    /// watch (rolled back on its own if it fails).
    Execute,
    /// One upgrade (`upgrade_id`), or the repository's status.
    Status,
    /// Stop an upgrade that has not landed (`upgrade_id`).
    Cancel,
}

/// Input of `self_improve`. For `plan` and `execute` give exactly one of
/// `instruction`, `patch`, `edits`, `suggestion`, `autofix`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfImprove {
    pub action: Action,
    /// What to change, in plain language (needs a provider in graft.toml).
    pub instruction: Option<String>,
    /// A unified diff (git style).
    pub patch: Option<String>,
    /// A JSON list of edits: create / modify (search-replace) / replace /
    /// delete / rename.
    pub edits: Option<Value>,
    /// A suggestion id from a scan.
    pub suggestion: Option<String>,
    /// Run the ecosystem's fixers (clippy, ruff, eslint, gofmt).
    pub autofix: Option<bool>,
    /// A title for the ledger.
    pub title: Option<String>,
    /// A provider by name from graft.toml.
    pub provider: Option<String>,
    /// Allow the change to touch protected paths.
    pub approve_protected: Option<bool>,
    /// For `status` and `cancel`.
    pub upgrade_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeIdInput {
    /// An upgrade id, like upg_20261121_103001_a1b2c3.
    pub upgrade_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanInput {
    /// A file or folder inside the repository (default: all of it).
    pub path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerInput {
    /// How many recent upgrades to list (default 10).
    pub recent: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    /// The current-task document (replaces the previous one).
    pub content: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryInput {
    /// Who spoke: user, assistant, tool, ...
    pub role: String,
    pub content: String,
    /// Anything else to keep with the entry (a JSON object).
    pub meta: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Entries after this id (default 0: from the start).
    pub after: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}

#[derive(Clone)]
pub struct GraftMcp {
    root: PathBuf,
    hooks: Hooks,
    tool_router: ToolRouter<Self>,
}

fn ok(summary: String, value: Value) -> CallToolResult {
    let mut r = CallToolResult::structured(value.clone());
    r.content = vec![
        ContentBlock::text(summary),
        ContentBlock::text(serde_json::to_string_pretty(&value).unwrap_or_default()),
    ];
    r
}

fn failed(summary: String, value: Value) -> CallToolResult {
    let mut r = ok(summary, value);
    r.is_error = Some(true);
    r
}

fn tool_error(e: ToolError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(e.to_string())])
}

impl GraftMcp {
    pub fn new(root: PathBuf, hooks: Hooks) -> GraftMcp {
        GraftMcp {
            root,
            hooks,
            tool_router: Self::tool_router(),
        }
    }

    /// Run blocking work off the protocol's threads; its error is a tool
    /// error.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&GraftMcp) -> Result<T, ToolError> + Send + 'static,
    ) -> Result<T, CallToolResult> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| tool_error(ToolError::new("internal", e.to_string())))?
            .map_err(tool_error)
    }
}

/// The upgrade request of a `plan` or `execute`, checked.
fn request(p: &SelfImprove, dry_run: bool) -> Result<(UpgradeQuery, Vec<u8>), ToolError> {
    let mut given: Vec<(RequestKind, Vec<u8>)> = Vec::new();
    if let Some(i) = &p.instruction {
        given.push((RequestKind::Instruction, i.clone().into_bytes()));
    }
    if let Some(d) = &p.patch {
        given.push((RequestKind::Patch, d.clone().into_bytes()));
    }
    if let Some(e) = &p.edits {
        let bytes = match e {
            Value::String(s) => s.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        };
        given.push((RequestKind::Edits, bytes));
    }
    if p.suggestion.is_some() {
        given.push((RequestKind::Suggestion, Vec::new()));
    }
    if p.autofix == Some(true) {
        given.push((RequestKind::Autofix, Vec::new()));
    }
    if given.len() != 1 {
        return Err(ToolError::new(
            "bad_request",
            format!(
                "`plan` and `execute` need exactly one of `instruction`, `patch`, `edits`, `suggestion` or `autofix: true` (got {})",
                if given.is_empty() {
                    "none".to_string()
                } else {
                    given
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ));
    }
    let (kind, body) = given.pop().expect("one");
    if kind == RequestKind::Instruction && body.iter().all(u8::is_ascii_whitespace) {
        return Err(ToolError::new(
            "bad_request",
            "`instruction` is empty; say what to change",
        ));
    }
    Ok((
        UpgradeQuery {
            kind: kind.to_string(),
            name: format!("the `{}` argument", kind.as_str()),
            title: p.title.clone(),
            dry_run,
            approve_protected: p.approve_protected.unwrap_or(false),
            priority: 5,
            requested_by: "mcp".into(),
            suggestion: p.suggestion.clone(),
            provider: p.provider.clone(),
            source: Some("mcp".into()),
            queue: false,
        },
        body,
    ))
}

/// One line saying how an upgrade ended.
fn outcome_line(r: &graft_pipeline::UpgradeReport) -> String {
    let gates: Vec<String> = r
        .gates
        .iter()
        .map(|g| format!("{} {}", g.name, g.status))
        .collect();
    let files = r.files.len();
    if r.state == graft_ledger::UpgradeState::AwaitingApproval {
        return format!(
            "upgrade {} waits for approval (risk {}: {}); a person approves it with `graft approve {}` (or POST /v1/upgrades/{}/approve), or rejects it",
            r.id,
            r.risk.as_deref().unwrap_or("?"),
            r.risk_reasons.join("; "),
            r.id,
            r.id
        );
    }
    match (&r.failure, r.dry_run) {
        (None, true) => format!(
            "plan {}: every required gate passed ({}); {files} file(s) would change; nothing was changed",
            r.id,
            gates.join(", ")
        ),
        (None, false) => format!(
            "upgrade {} promoted: {} is live ({files} file(s); gates: {})",
            r.id,
            r.landed_commit
                .as_deref()
                .map(|c| &c[..c.len().min(10)])
                .unwrap_or("?"),
            gates.join(", ")
        ),
        (Some(f), _) => format!("upgrade {} {}: {} [{}]", r.id, r.state, f.message, f.reason),
    }
}

#[tool_router]
impl GraftMcp {
    #[tool(
        description = "Change this repository's code safely through Graft. action=plan stages the change in an isolated worktree and runs every gate (parse, build, lint, test...), returning the diff and the gate results without changing anything; action=execute runs the whole pipeline (gates, land on the branch with a tag, deploy under `graft run` with automatic rollback); action=status reports one upgrade (upgrade_id) or the repository; action=cancel stops an upgrade that has not landed. For plan and execute give exactly one of instruction, patch, edits, suggestion or autofix."
    )]
    async fn self_improve(&self, Parameters(p): Parameters<SelfImprove>) -> CallToolResult {
        match p.action {
            Action::Plan | Action::Execute => {
                let dry_run = p.action == Action::Plan;
                let (q, body) = match request(&p, dry_run) {
                    Ok(r) => r,
                    Err(e) => return tool_error(e),
                };
                let result = self
                    .blocking(move |me| {
                        let via = ops::via(&me.root);
                        ops::upgrade(&me.root, &me.hooks, q, body).map(|r| (r, via))
                    })
                    .await;
                match result {
                    Ok((report, via)) => {
                        let line = outcome_line(&report);
                        let mut v = json!(report);
                        v["via"] = json!(via);
                        if report.failure.is_some() {
                            failed(line, v)
                        } else {
                            ok(line, v)
                        }
                    }
                    Err(e) => e,
                }
            }
            Action::Status => {
                let id = match p.upgrade_id.as_deref().map(ops::parse_id).transpose() {
                    Ok(id) => id,
                    Err(e) => return tool_error(e),
                };
                match self.blocking(move |me| ops::status(&me.root, id.as_ref())).await {
                    Ok(v) => {
                        let line = match v["upgrade"]["id"].as_str() {
                            Some(id) => {
                                format!("upgrade {id}: {}", v["upgrade"]["state"].as_str().unwrap_or("?"))
                            }
                            None => format!(
                                "{} upgrade(s) in progress, {} pending; branch {} at {}",
                                v["in_progress"].as_array().map_or(0, Vec::len),
                                v["pending"].as_array().map_or(0, Vec::len),
                                v["branch"].as_str().unwrap_or("?"),
                                v["branch_commit"]
                                    .as_str()
                                    .map(|c| &c[..c.len().min(10)])
                                    .unwrap_or("?"),
                            ),
                        };
                        ok(line, v)
                    }
                    Err(e) => e,
                }
            }
            Action::Cancel => {
                let Some(id) = p.upgrade_id.clone() else {
                    return tool_error(ToolError::new("bad_request", "`cancel` needs `upgrade_id`"));
                };
                let id = match ops::parse_id(&id) {
                    Ok(id) => id,
                    Err(e) => return tool_error(e),
                };
                match self.blocking(move |me| ops::cancel(&me.root, &id, "mcp")).await {
                    Ok(v) => ok(
                        format!(
                            "upgrade {}: {}",
                            v["id"].as_str().unwrap_or("?"),
                            v["state"].as_str().unwrap_or("?")
                        ),
                        v,
                    ),
                    Err(e) => e,
                }
            }
        }
    }

    #[tool(
        description = "Undo an upgrade: a revert commit lands (history is never rewritten), the previous release serves again, and declared data files are restored. An upgrade that never landed only has its branch discarded."
    )]
    async fn rollback(&self, Parameters(p): Parameters<UpgradeIdInput>) -> CallToolResult {
        let id = match ops::parse_id(&p.upgrade_id) {
            Ok(id) => id,
            Err(e) => return tool_error(e),
        };
        match self.blocking(move |me| ops::rollback(&me.root, &id, "mcp")).await {
            Ok(r) => ok(
                match &r.revert_commit {
                    Some(c) => format!(
                        "rolled back {}: revert commit {} landed",
                        r.id,
                        &c[..c.len().min(10)]
                    ),
                    None => format!("{}: it never landed; its branch was discarded", r.id),
                },
                json!(r),
            ),
            Err(e) => e,
        }
    }

    #[tool(description = "The files and the unified diff of an upgrade.")]
    async fn diff(&self, Parameters(p): Parameters<UpgradeIdInput>) -> CallToolResult {
        let id = match ops::parse_id(&p.upgrade_id) {
            Ok(id) => id,
            Err(e) => return tool_error(e),
        };
        let r = self
            .blocking(move |me| {
                let ws = graft_pipeline::Workspace::open(&me.root)?;
                let u = ws.ledger.get_upgrade(id.as_str())?;
                Ok(json!({
                    "id": u.id, "state": u.state, "title": u.title,
                    "files": ws.ledger.file_changes(id.as_str())?,
                    "diff": ws.ledger.diff(id.as_str())?.unwrap_or_default(),
                }))
            })
            .await;
        match r {
            Ok(v) => {
                let diff = v["diff"].as_str().unwrap_or("").to_string();
                let mut r = ok(
                    format!(
                        "upgrade {}: {} file(s)",
                        v["id"].as_str().unwrap_or("?"),
                        v["files"].as_array().map_or(0, Vec::len)
                    ),
                    v,
                );
                r.content.push(ContentBlock::text(diff));
                r
            }
            Err(e) => e,
        }
    }

    #[tool(
        description = "Analyse the repository (complexity, god classes and modules, import cycles, coupling, duplicates) and store the scan; returns its summary and suggestions, each usable as `self_improve` with `suggestion`."
    )]
    async fn scan(&self, Parameters(p): Parameters<ScanInput>) -> CallToolResult {
        let r = self
            .blocking(move |me| {
                let id = (me.hooks.scan)(&me.root, p.path.as_deref())
                    .map_err(|f| ToolError::new(&f.code, f.message))?;
                let ws = graft_pipeline::Workspace::open(&me.root)?;
                let scan = ws
                    .ledger
                    .scan(&id)?
                    .ok_or_else(|| ToolError::new("internal", format!("scan {id} was not stored")))?;
                Ok(json!({ "scan": scan, "suggestions": ws.ledger.suggestions(&id)? }))
            })
            .await;
        match r {
            Ok(v) => ok(
                format!(
                    "scan {}: {} suggestion(s)",
                    v["scan"]["id"].as_str().unwrap_or("?"),
                    v["suggestions"].as_array().map_or(0, Vec::len)
                ),
                v,
            ),
            Err(e) => e,
        }
    }

    #[tool(
        description = "What the ledger says about all upgrades: totals, success rate, outcomes by kind, failures by cause with a recommendation for each, generation cost, recent upgrades."
    )]
    async fn ledger(&self, Parameters(p): Parameters<LedgerInput>) -> CallToolResult {
        let recent = p.recent.unwrap_or(10).min(500) as usize;
        let r = self
            .blocking(move |me| {
                let ws = graft_pipeline::Workspace::open(&me.root)?;
                Ok(graft_pipeline::advice::ledger_report(&ws.ledger, recent)?.1)
            })
            .await;
        match r {
            Ok(v) => ok(
                format!(
                    "{} upgrade(s); success rate {}; {} rollback(s)",
                    v["total"],
                    v["success_rate"]
                        .as_f64()
                        .map_or("n/a".into(), |r| format!("{:.0} %", r * 100.0)),
                    v["rollbacks"]
                ),
                v,
            ),
            Err(e) => e,
        }
    }

    #[tool(
        description = "The agent's current-task document, kept by Graft across restarts, upgrades and rollbacks."
    )]
    async fn get_task(&self) -> CallToolResult {
        let r = self
            .blocking(|me| Ok(graft_pipeline::Workspace::open(&me.root)?.ledger.agent_task()?))
            .await;
        match r {
            Ok(Some(t)) => ok(format!("task version {}", t.version), json!(t)),
            Ok(None) => ok("no task has been saved yet".into(), json!({ "task": null })),
            Err(e) => e,
        }
    }

    #[tool(description = "Replace the agent's current-task document; saved durably before the answer.")]
    async fn save_task(&self, Parameters(p): Parameters<TaskInput>) -> CallToolResult {
        let r = self
            .blocking(move |me| {
                Ok(graft_pipeline::Workspace::open(&me.root)?
                    .ledger
                    .put_agent_task(&p.content)?)
            })
            .await;
        match r {
            Ok(version) => ok(
                format!("task saved (version {version})"),
                json!({ "version": version }),
            ),
            Err(e) => e,
        }
    }

    #[tool(description = "Append an entry to the agent's conversation history (append-only, durable).")]
    async fn append_history(&self, Parameters(p): Parameters<HistoryInput>) -> CallToolResult {
        let entry = match NewHistory::new(p.role, p.content, p.meta.unwrap_or(Value::Null)) {
            Ok(entry) => entry,
            Err(e) => return tool_error(ToolError::new("bad_request", e.to_string())),
        };
        let r = self
            .blocking(move |me| {
                Ok(graft_pipeline::Workspace::open(&me.root)?
                    .ledger
                    .append_history(&entry)?)
            })
            .await;
        match r {
            Ok(id) => ok(format!("history entry {id} appended"), json!({ "id": id })),
            Err(e) => e,
        }
    }

    #[tool(description = "Read the agent's conversation history, oldest first.")]
    async fn get_history(&self, Parameters(p): Parameters<HistoryQuery>) -> CallToolResult {
        let (after, limit) = (
            p.after.unwrap_or(0),
            p.limit.unwrap_or(100).clamp(1, 1000) as usize,
        );
        let r = self
            .blocking(move |me| {
                Ok(graft_pipeline::Workspace::open(&me.root)?
                    .ledger
                    .history(after, limit)?)
            })
            .await;
        match r {
            Ok(entries) => ok(
                format!("{} entr(ies)", entries.len()),
                json!({ "entries": entries }),
            ),
            Err(e) => e,
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for GraftMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("graft", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!(
                "Graft changes the code of the repository at {} safely: every change is staged in an isolated worktree and must pass the gates before it lands; a deployed change that fails is rolled back on its own. Use self_improve with action=plan to preview a change (nothing changes), then action=execute to apply it.",
                self.root.display()
            ))
    }

    /// The answer to a message too long to read ([`lines::OVERSIZED`]
    /// stands in for it): for a tool call, the tool error every other
    /// refusal is; for anything else, an invalid request.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if request.method != lines::OVERSIZED {
            return Err(ErrorData::new(ErrorCode::METHOD_NOT_FOUND, request.method, None));
        }
        let params = request.params.unwrap_or_default();
        let refusal = ToolError::new(
            "too_large",
            format!(
                "the message is {} bytes, more than the {} `graft mcp` reads of one: a change may be read as at most {} times `[limits] max_change_bytes`, and its JSON text twice that; split it into smaller changes, or raise `[limits] max_change_bytes` in graft.toml",
                params["bytes"],
                params["cap"],
                graft_pipeline::upgrade::REQUEST_BYTES_PER_CHANGE_BYTE
            ),
        );
        if params["method"] == "tools/call" {
            let result = serde_json::to_value(tool_error(refusal))
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
            return Ok(CustomResult(result));
        }
        Err(ErrorData::invalid_request(refusal.to_string(), None))
    }
}

/// Serve on stdin/stdout until the client closes them, on a runtime of
/// its own (for a synchronous caller).
pub fn serve_blocking(root: PathBuf, hooks: Hooks) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("graft-mcp")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(serve(root, hooks))
}

/// Serve on stdin/stdout until the client closes them. A message is read
/// no further than a change over `[limits]` needs to be refused.
pub async fn serve(root: PathBuf, hooks: Hooks) -> Result<(), String> {
    let limits = graft_config::Config::load(&root)
        .map(|c| graft_pipeline::upgrade::limits(&c))
        .unwrap_or_default();
    let stdin = lines::Bounded::new(tokio::io::stdin(), lines::cap(limits.max_request_bytes()));
    let server = GraftMcp::new(root, hooks)
        .serve((stdin, tokio::io::stdout()))
        .await
        .map_err(|e| format!("the MCP session did not start: {e}"))?;
    server
        .waiting()
        .await
        .map(|_| ())
        .map_err(|e| format!("the MCP session ended badly: {e}"))
}
