//! One upgrade, from request to promoted (or failed, with nothing changed).
//!
//! ```text
//! checkpoint → generate → stage → gate:parse → gate:<name>… → backup → land → deploy → watch
//! ```
//!
//! Each step runs through the [`Journal`], so the ledger holds a row before
//! and after it. Until `land`, everything happens in the staging worktree:
//! a failure there leaves the main checkout, the target branch and the data
//! files exactly as they were. After `land`, a failure is undone by a
//! rollback (a revert commit; history is never rewritten).

use std::time::Instant;

use graft_change::{Change, Policy, Resolved};
use graft_ledger::{
    FileChange, GateRun, GateStatus, GenerationRound, NewUpgrade, RequestKind, UpgradeId, UpgradeState,
    UpgradeUpdate,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::deploy::{Deploy, DeployContext};
use crate::error::{Failure, FailureClass, PipelineError};
use crate::events::{Event, Observer};
use crate::gates::{self, GateEnv};
use crate::generate::Generator;
use crate::git::Git;
use crate::journal::Journal;
use crate::land::{self, Target};
use crate::workspace::Workspace;
use crate::{data, recover, rollback, staging};

/// Where a change comes from.
pub enum ChangeSource {
    /// A unified diff; `name` is used in error messages.
    Patch { name: String, bytes: Vec<u8> },
    /// A JSON list of edits.
    Edits { name: String, bytes: Vec<u8> },
    /// A change already built.
    Change(Change),
    /// A provider, asked in rounds until the gates pass (see
    /// [`crate::generate`]).
    Generator(Box<dyn Generator>),
}

/// What to do.
pub struct UpgradeRequest<'r> {
    pub kind: RequestKind,
    pub title: Option<String>,
    pub source: ChangeSource,
    pub requested_by: String,
    pub priority: i64,
    /// Stage and gate, then discard: change nothing.
    pub dry_run: bool,
    /// Allow the change to touch protected paths.
    pub approve_protected: bool,
    /// Run this upgrade, already queued (its row must exist); None: a new
    /// upgrade with a new id.
    pub id: Option<UpgradeId>,
    /// Asked once the gates pass; may hold the upgrade for approval.
    pub review: Option<Box<dyn crate::review::Review + 'r>>,
}

/// What happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpgradeReport {
    pub id: UpgradeId,
    pub title: String,
    pub state: UpgradeState,
    pub dry_run: bool,
    pub failure: Option<Failure>,
    pub target_branch: Option<String>,
    pub base_commit: Option<String>,
    pub staged_commit: Option<String>,
    pub landed_commit: Option<String>,
    /// The `graft/<id>` branch, when it was kept (a failed upgrade).
    pub branch: Option<String>,
    pub files: Vec<FileChange>,
    pub gates: Vec<GateRun>,
    /// The rounds of a provider (empty for a patch or edits).
    pub rounds: Vec<GenerationRound>,
    pub diff: String,
    /// The risk its review gave it, with the reasons.
    #[serde(default)]
    pub risk: Option<String>,
    #[serde(default)]
    pub risk_reasons: Vec<String>,
    pub duration_ms: u64,
    /// Time spent inside gate commands (the rest is Graft's own overhead).
    pub gate_command_ms: u64,
}

/// Runs upgrades on one workspace.
pub struct Pipeline<'a> {
    pub ws: &'a Workspace,
    pub observer: &'a dyn Observer,
    pub deploy: &'a dyn Deploy,
}

/// State shared by the steps of one run.
pub(crate) struct Run<'a> {
    pub(crate) journal: Journal<'a>,
    pub(crate) report: UpgradeReport,
    pub(crate) target: Option<Target>,
    pub(crate) staging: Option<Git>,
    pub(crate) resolved: Option<Resolved>,
}

impl<'a> Run<'a> {
    /// The state of an upgrade taken up again from the ledger.
    pub(crate) fn resumed(
        p: &'a Pipeline<'a>,
        id: &'a UpgradeId,
        u: &graft_ledger::Upgrade,
    ) -> Result<Run<'a>, PipelineError> {
        let mut report = crate::review::report_from_ledger(p.ws, id)?;
        report.failure = None;
        let base = u.base_commit.clone().unwrap_or_default();
        let staged = u.staged_commit.clone().unwrap_or_default();
        let resolved = crate::review::resolved_from_git(&p.ws.git, &base, &staged, &report.files).ok();
        Ok(Run {
            journal: Journal {
                ledger: &p.ws.ledger,
                id,
                observer: p.observer,
            },
            report,
            target: None,
            staging: None,
            resolved,
        })
    }
}

impl Pipeline<'_> {
    /// Run one upgrade to its end. `Err` only when Graft cannot even record
    /// it (ledger unwritable); every other failure is in the report.
    pub fn run(&self, mut req: UpgradeRequest<'_>) -> Result<UpgradeReport, PipelineError> {
        let started = Instant::now();
        let lock = match recover::exclusive(self.ws, self.deploy, false, self.observer)? {
            Some(lock) => lock,
            None => {
                let holder = crate::workspace::PipelineLock::holder(&self.ws.graft_dir()).unwrap_or_default();
                self.observer.on_event(&Event::Message {
                    id: String::new(),
                    text: format!("waiting for the running upgrade to finish ({holder})"),
                });
                recover::exclusive(self.ws, self.deploy, true, self.observer)?
                    .expect("a blocking lock is always taken")
            }
        };

        let queued = match &req.id {
            Some(id) => Some(self.ws.ledger.get_upgrade(id.as_str())?),
            None => None,
        };
        let was_queued = queued.is_some();
        let (id, title) = match queued {
            Some(u) => {
                // Queued earlier: its row, title and request are in the ledger.
                self.ws.ledger.set_state(&u.id, UpgradeState::Staging)?;
                let title = req.title.clone().unwrap_or(u.title);
                (u.id, title)
            }
            None => {
                let id = UpgradeId::generate(chrono::Utc::now());
                let title = req.title.clone().unwrap_or_else(|| default_title(&req));
                self.ws.ledger.insert_upgrade(&NewUpgrade {
                    id: id.clone(),
                    kind: req.kind,
                    title: title.clone(),
                    request: request_json(&req),
                    requested_by: req.requested_by.clone(),
                    priority: req.priority,
                    dry_run: req.dry_run,
                    state: UpgradeState::Staging,
                })?;
                (id, title)
            }
        };
        lock.describe(&format!("running {id}"));
        if let ChangeSource::Generator(g) = &req.source {
            self.ws.ledger.set_provider(&id, g.name(), g.model())?;
        }
        if !was_queued {
            // A queued upgrade was announced when it was queued.
            self.observer.on_event(&Event::UpgradeCreated {
                id: id.to_string(),
                kind: req.kind.to_string(),
                title: title.clone(),
            });
        }
        let mut run = Run {
            journal: Journal {
                ledger: &self.ws.ledger,
                id: &id,
                observer: self.observer,
            },
            report: UpgradeReport {
                id: id.clone(),
                title,
                state: UpgradeState::Staging,
                dry_run: req.dry_run,
                failure: None,
                target_branch: None,
                base_commit: None,
                staged_commit: None,
                landed_commit: None,
                branch: None,
                files: Vec::new(),
                gates: Vec::new(),
                rounds: Vec::new(),
                diff: String::new(),
                risk: None,
                risk_reasons: Vec::new(),
                duration_ms: 0,
                gate_command_ms: 0,
            },
            target: None,
            staging: None,
            resolved: None,
        };
        let outcome = self.steps(&mut run, &mut req);
        let final_state = match outcome {
            Ok(_) if req.dry_run => {
                finish_dry_run(self.ws, &mut run.report)?;
                UpgradeState::Cancelled
            }
            Ok(state) => {
                self.ws.ledger.set_state(&id, state)?;
                state
            }
            Err(failure) => self.fail_run(&mut run, failure)?,
        };
        run.report.state = final_state;
        run.report.duration_ms = started.elapsed().as_millis() as u64;
        run.journal.emit(Event::StateChanged {
            id: id.to_string(),
            state: final_state.to_string(),
        });
        Ok(run.report)
    }

    fn steps(&self, run: &mut Run<'_>, req: &mut UpgradeRequest<'_>) -> Result<UpgradeState, Failure> {
        let ws = self.ws;
        let j = &run.journal;

        // checkpoint: where we start from, and that the tree is clean.
        let (target, base) = j.step("checkpoint", json!({}), || {
            let target = Target::of(ws)
                .map_err(|e| Failure::new(FailureClass::Precondition, "no_target_branch", e.to_string()))?;
            let base = target.tip(&ws.git)?;
            if !req.dry_run {
                land::check_clean(ws, &target)?;
            }
            let detail = json!({ "branch": target.branch, "head": base });
            Ok(((target, base), detail))
        })?;
        ws.ledger
            .update_upgrade(
                j.id,
                &UpgradeUpdate {
                    target_branch: Some(target.branch.clone()),
                    base_commit: Some(base.clone()),
                    ..Default::default()
                },
            )
            .map_err(|e| Failure::internal(&e.into()))?;
        run.report.target_branch = Some(target.branch.clone());
        run.report.base_commit = Some(base.clone());
        run.target = Some(target);

        // generate, stage, gates: in rounds when a provider makes the change.
        let staged = self.produce(run, req, &base)?;

        if req.dry_run {
            return Ok(UpgradeState::Cancelled);
        }
        self.check_cancel(run)?;
        if let Some(review) = req.review.take()
            && self.review(run, &*review, req.kind, &base, &staged)?
        {
            // Held for approval: the staged commit waits on graft/<id>.
            if let Some(staging) = &run.staging {
                let _ = staging::reset(staging, &base);
            }
            return Ok(UpgradeState::AwaitingApproval);
        }
        self.deliver(run, &base, &staged)
    }

    /// Release, back up, land, deploy and watch a gated commit.
    pub(crate) fn deliver(
        &self,
        run: &mut Run<'_>,
        base: &str,
        staged: &str,
    ) -> Result<UpgradeState, Failure> {
        let ws = self.ws;
        let (base, staged) = (base.to_string(), staged.to_string());

        // release: the deploy backend builds and keeps what it will run,
        // while a failure still leaves nothing to undo.
        let j = &run.journal;
        let staging_dir = ws.staging_dir();
        let changed: Vec<String> = run.report.files.iter().map(|f| f.path.clone()).collect();
        let ctx = DeployContext {
            id: j.id,
            commit: &staged,
            previous: &base,
            changed_paths: &changed,
            staging: &staging_dir,
        };
        j.step("release", json!({ "backend": self.deploy.name() }), || {
            self.deploy
                .prepare(&ctx)
                .into_step("release_failed", FailureClass::Gate)
        })?;
        self.check_cancel(run)?;

        // backup, land, deploy, watch.
        j.state(UpgradeState::Deploying)?;
        let backups = j.step("backup", json!({ "files": ws.config.target.data.len() }), || {
            let b = data::backup(ws, j.id)?;
            ws.ledger
                .record_data_backups(j.id, &b)
                .map_err(|e| Failure::internal(&e.into()))?;
            let n = b.iter().filter(|b| b.existed).count();
            Ok(((), json!({ "copied": n })))
        });
        backups?;
        let target = run.target.as_ref().expect("set at checkpoint");
        j.step(
            "land",
            json!({ "branch": target.branch, "from": base, "to": staged }),
            || {
                land::land(ws, target, &base, &staged)?;
                ws.ledger
                    .update_upgrade(
                        j.id,
                        &UpgradeUpdate {
                            landed_commit: Some(staged.clone()),
                            ..Default::default()
                        },
                    )
                    .map_err(|e| Failure::internal(&e.into()))?;
                land::finish(ws, j.id, &staged)?;
                ws.ledger
                    .update_upgrade(
                        j.id,
                        &UpgradeUpdate {
                            branch: Some(None),
                            ..Default::default()
                        },
                    )
                    .map_err(|e| Failure::internal(&e.into()))?;
                Ok(((), json!({ "commit": staged, "tag": j.id.promoted_tag() })))
            },
        )?;
        run.report.landed_commit = Some(staged.clone());
        run.report.branch = None;
        self.after_landing(run, &base, &staged)?;
        Ok(UpgradeState::Promoted)
    }

    /// Deploy and watch a landed commit; roll it back if either fails.
    fn after_landing(&self, run: &mut Run<'_>, base: &str, staged: &str) -> Result<(), Failure> {
        let ws = self.ws;
        let j = &run.journal;
        let versions: Vec<(String, Option<String>)> = run
            .resolved
            .as_ref()
            .map(|r| {
                r.files
                    .iter()
                    .map(|f| (f.path.to_string(), f.after.as_deref().map(data::sha256_hex)))
                    .collect()
            })
            .unwrap_or_default();
        ws.ledger
            .record_file_versions(Some(j.id), staged, &versions)
            .map_err(|e| Failure::internal(&e.into()))?;
        let changed: Vec<String> = run.report.files.iter().map(|f| f.path.clone()).collect();
        let staging_dir = ws.staging_dir();
        let ctx = DeployContext {
            id: j.id,
            commit: staged,
            previous: base,
            changed_paths: &changed,
            staging: &staging_dir,
        };
        let deployed = j.step(
            "deploy",
            json!({ "backend": self.deploy.name(), "commit": staged }),
            || {
                self.deploy
                    .deploy(&ctx)
                    .into_step("deploy_failed", FailureClass::RolledBack)
            },
        );
        if let Err(f) = deployed {
            // The old release is still live: only git and data go back.
            return Err(self.roll_back_landed(run, f, false));
        }
        j.state(UpgradeState::Watching)?;
        let watched = j.step("watch", json!({ "backend": self.deploy.name() }), || {
            self.deploy
                .watch(&ctx)
                .into_step("watch_failed", FailureClass::RolledBack)
        });
        if let Err(f) = watched {
            return Err(self.roll_back_landed(run, f, true));
        }
        // The new release is live and healthy: its perf figures are now
        // the baseline.
        for g in &run.report.gates {
            if let Some(figure) = g.figure
                && let Err(e) = ws.ledger.set_perf_baseline(&g.name, staged, figure, Some(j.id))
            {
                j.message(format!(
                    "warning: gate `{}`'s figure {figure} could not be recorded as the new baseline: {e}",
                    g.name
                ));
            }
        }
        Ok(())
    }

    fn roll_back_landed(&self, run: &Run<'_>, cause: Failure, switch_back: bool) -> Failure {
        let result = rollback::roll_back_landed(
            self.ws,
            self.deploy,
            run.journal.id,
            &rollback::Why {
                cause: &cause.reason,
                message: &cause.message,
                requested_by: "graft",
                switch_back,
            },
            run.journal.observer,
        );
        match result {
            Ok(_) => cause,
            Err(e) => Failure::new(
                FailureClass::Internal,
                "rollback_failed",
                format!(
                    "{}\nThe automatic rollback failed too: {}",
                    cause.message, e.message
                ),
            ),
        }
    }

    pub(crate) fn gates(&self, run: &mut Run<'_>, base: &str, round: u32) -> Result<(), Failure> {
        let ws = self.ws;
        let j = &run.journal;
        let resolved = run.resolved.as_ref().expect("staged");
        let name = |s: String| if round == 1 { s } else { format!("{s}:{round}") };
        let parse = j.step(&name("gate:parse".into()), json!({}), || {
            let r = gates::parse_gate(j.id.as_str(), round.into(), &resolved.files);
            let detail = json!({ "status": r.status.as_str() });
            Ok((r, detail))
        })?;
        self.record_gate(run, parse)?;
        let staging = run.staging.as_ref().expect("staged").dir().to_path_buf();
        for gate in &ws.config.gates {
            self.check_cancel(run)?;
            let j = &run.journal;
            let env = GateEnv {
                staging: &staging,
                repo_root: &ws.root,
                journal: j,
                round: round.into(),
                live_commit: base,
                ledger: &ws.ledger,
            };
            let result = j.step(&name(format!("gate:{}", gate.name)), json!({ "command": gate.command }), || {
                let r = gates::run_command_gate(gate, &env);
                let detail = json!({ "status": r.status.as_str(), "exit_code": r.exit_code, "duration_ms": r.duration_ms });
                Ok((r, detail))
            })?;
            run.report.gate_command_ms += result.duration_ms;
            self.record_gate(run, result)?;
            let touched =
                staging::modified_by_gate(run.staging.as_ref().expect("staged")).map_err(Failure::from)?;
            if !touched.is_empty() {
                return Err(Failure::new(
                    FailureClass::Gate,
                    format!("gate_modified_tree:{}", gate.name),
                    format!(
                        "gate `{}` changed tracked files in the staging tree ({}); a gate must check the tree, not edit it, or what lands is not what passed. Make the command read-only (e.g. `cargo fmt --check`)",
                        gate.name,
                        touched
                            .iter()
                            .map(|l| l.get(3..).unwrap_or(l))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Keep a gate run; a failed required gate ends the upgrade.
    fn record_gate(&self, run: &mut Run<'_>, r: GateRun) -> Result<(), Failure> {
        self.ws
            .ledger
            .record_gate_run(&r)
            .map_err(|e| Failure::internal(&e.into()))?;
        let failed = r.status != GateStatus::Passed;
        let cancelled = r.status == GateStatus::Skipped;
        let summary = gates::summary(&r);
        let (name, required, status) = (r.name.clone(), r.required, r.status);
        run.report.gates.push(r);
        if cancelled {
            return Err(cancelled_failure());
        }
        if failed && required && status == GateStatus::Misconfigured {
            // The repo's set-up, not the change: no repair round can fix it.
            return Err(Failure::new(
                FailureClass::Precondition,
                format!("gate_setup:{name}"),
                summary,
            ));
        }
        if failed && required {
            let class = FailureClass::Gate;
            return Err(Failure::new(class, format!("gate_failed:{name}"), summary));
        }
        if failed {
            run.journal.message(format!("advisory {summary}"));
        }
        Ok(())
    }

    pub(crate) fn check_cancel(&self, run: &Run<'_>) -> Result<(), Failure> {
        if self.ws.ledger.cancel_requested(run.journal.id).unwrap_or(false) {
            Err(cancelled_failure())
        } else {
            Ok(())
        }
    }

    /// Record a failure and put staging and branches back in order.
    pub(crate) fn fail_run(
        &self,
        run: &mut Run<'_>,
        failure: Failure,
    ) -> Result<UpgradeState, PipelineError> {
        let ws = self.ws;
        let id = run.journal.id;
        let landed = run.report.landed_commit.is_some();
        let state = match failure.class {
            FailureClass::Cancelled => UpgradeState::Cancelled,
            FailureClass::RolledBack if landed => UpgradeState::RolledBack,
            _ => UpgradeState::Failed,
        };
        if !landed {
            if let (Some(staging), Some(base)) = (&run.staging, &run.report.base_commit) {
                let _ = staging::reset(staging, base);
            }
            let keep = ws.config.staging.keep_failed_branches
                && !run.report.dry_run
                && failure.class != FailureClass::Cancelled;
            if run.report.branch.is_some() && !keep {
                land::delete_branch(ws, id)?;
                run.report.branch = None;
            }
            let _ = std::fs::remove_dir_all(ws.backups_dir(id));
        }
        ws.ledger.update_upgrade(
            id,
            &UpgradeUpdate {
                state: Some(state),
                reason: Some(Some(failure.reason.clone())),
                error: Some(Some(failure.message.clone())),
                branch: Some(run.report.branch.clone()),
                ..Default::default()
            },
        )?;
        run.report.failure = Some(failure);
        Ok(state)
    }
}

/// A dry run that passed ends here: discard the staged commit.
pub(crate) fn finish_dry_run(ws: &Workspace, report: &mut UpgradeReport) -> Result<(), PipelineError> {
    if let Some(base) = &report.base_commit {
        staging::reset(&Git::new(&ws.staging_dir()), base)?;
    }
    land::delete_branch(ws, &report.id)?;
    report.branch = None;
    ws.ledger.update_upgrade(
        &report.id,
        &UpgradeUpdate {
            state: Some(UpgradeState::Cancelled),
            reason: Some(Some("dry_run".into())),
            branch: Some(None),
            ..Default::default()
        },
    )?;
    Ok(())
}

fn cancelled_failure() -> Failure {
    Failure::new(
        FailureClass::Cancelled,
        "cancelled",
        "cancelled on request (`graft cancel`); nothing was landed",
    )
}

pub use graft_change::REQUEST_BYTES_PER_CHANGE_BYTE;

/// `[limits]` as `graft-change` holds a change to them: every way in
/// reads and checks a request by these before anything is stored.
pub fn limits(config: &graft_config::Config) -> graft_change::Limits {
    let l = &config.limits;
    graft_change::Limits {
        max_change_bytes: l.max_change_bytes,
        max_file_bytes: l.max_file_bytes,
        max_files: l.max_files.get(),
        allow_binary: l.allow_binary,
    }
}

pub(crate) fn policy_for(ws: &Workspace, approve_protected: bool) -> Result<Policy, Failure> {
    Policy::new(
        &ws.config.target.protected.0,
        limits(&ws.config),
        approve_protected,
    )
    .map_err(|e| Failure::refused(&e))
}

pub(crate) fn commit_message(title: &str, id: &UpgradeId, by: &str) -> String {
    format!("{title}\n\nGraft-Upgrade: {id}\nRequested-By: {by}\n")
}

/// The files changed between two commits, with line counts and blob ids,
/// in two git calls whatever the number of files.
pub(crate) fn file_changes(git: &Git, base: &str, staged: &str) -> Result<Vec<FileChange>, Failure> {
    let raw = git
        .run(&["diff", "--raw", "-z", "--no-abbrev", "-M", base, staged])
        .map_err(Failure::from)?;
    let numstat = git
        .run(&["diff", "--numstat", "-z", "-M", base, staged])
        .map_err(Failure::from)?;
    let mut counts = std::collections::HashMap::new();
    let mut it = numstat.split('\0').filter(|s| !s.is_empty()).peekable();
    while let Some(entry) = it.next() {
        let mut parts = entry.splitn(3, '\t');
        let (added, removed, path) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        let parse = |s: Option<&str>| s.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        // A rename has an empty path here, then old and new as two fields.
        let path = if path.is_empty() {
            let _old = it.next();
            it.next().unwrap_or("").to_string()
        } else {
            path.to_string()
        };
        counts.insert(path, (parse(added), parse(removed)));
    }
    let mut out = Vec::new();
    let mut fields = raw.split('\0').filter(|s| !s.is_empty());
    while let Some(meta) = fields.next() {
        // :100644 100644 <old> <new> M
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        if parts.len() < 5 {
            break;
        }
        let status = parts[4];
        let (old_path, path) = if status.starts_with('R') || status.starts_with('C') {
            (
                fields.next().map(str::to_string),
                fields.next().unwrap_or("").to_string(),
            )
        } else {
            (None, fields.next().unwrap_or("").to_string())
        };
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        let kind = match status.chars().next() {
            Some('A') => "create",
            Some('D') => "delete",
            Some('R') => "rename",
            _ => "modify",
        };
        let (added, removed) = counts.get(&path).copied().unwrap_or((0, 0));
        out.push(FileChange {
            path,
            old_path,
            kind: kind.to_string(),
            lines_added: added,
            lines_removed: removed,
            blob_before: (!zero(parts[2])).then(|| parts[2].to_string()),
            blob_after: (!zero(parts[3])).then(|| parts[3].to_string()),
        });
    }
    Ok(out)
}

fn default_title(req: &UpgradeRequest<'_>) -> String {
    match &req.source {
        ChangeSource::Patch { name, bytes } => patch_title(name, bytes),
        ChangeSource::Edits { name, .. } => edits_title(name),
        ChangeSource::Change(c) => format!("Apply {} edit(s)", c.edits.len()),
        ChangeSource::Generator(g) => g.title(),
    }
}

/// The title of a patch upgrade given none: a format-patch mail's subject,
/// else `Apply patch NAME` with the patch file's name (never the absolute
/// path it was read from, which says nothing in `git log`).
pub fn patch_title(name: &str, bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
    text.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .map(|s| s.trim_start_matches("[PATCH]").trim().chars().take(120).collect())
        .filter(|t: &String| !t.is_empty())
        .unwrap_or_else(|| format!("Apply patch {}", file_name(name)))
}

/// The title of an edits upgrade given none: `Apply edits NAME`.
pub fn edits_title(name: &str) -> String {
    format!("Apply edits {}", file_name(name))
}

/// The last component of a path as given (`<stdin>` stays itself).
fn file_name(name: &str) -> &str {
    name.rsplit('/').find(|part| !part.is_empty()).unwrap_or(name)
}

/// The request as recorded: the patch text itself when it is text of a
/// sane size, else its size (the change is in the diff column anyway).
fn request_json(req: &UpgradeRequest<'_>) -> serde_json::Value {
    const KEEP: usize = 256 * 1024;
    let body = |key: &str, name: &str, bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(text) if bytes.len() <= KEEP => json!({ "source": name, key: text }),
        _ => json!({ "source": name, "bytes": bytes.len(), "note": "not kept: binary or over 256 KiB" }),
    };
    let mut v = match &req.source {
        ChangeSource::Patch { name, bytes } => body("patch", name, bytes),
        ChangeSource::Edits { name, bytes } => body("edits", name, bytes),
        ChangeSource::Change(c) => json!({ "edits": c.edits.len() }),
        ChangeSource::Generator(g) => g.describe(),
    };
    v["dry_run"] = json!(req.dry_run);
    v["approve_protected"] = json!(req.approve_protected);
    v
}
