//! The queue: every upgrade, whoever asks for it, is submitted here, gets
//! a risk, waits for approval if policy says so, and runs in order.
//!
//! ```text
//! submit ─▶ queued ──────────────────▶ run ─▶ gates ─▶ review ─▶ land …
//!    └────▶ awaiting_approval ─approve─▶ queued        └─hold─▶ awaiting_approval ─approve─▶ resume
//!                      └─reject / expire─▶ cancelled
//! ```
//!
//! Risk is judged twice: on the request (so an instruction that needs
//! approval is approved before any tokens are spent) and on the change
//! the gates passed (so what a provider really wrote is judged). An
//! approval covers a level: a change that turns out riskier waits again.
//!
//! The queue is the `upgrades` table (`state = 'queued'`, by priority then
//! age) and each request is stored whole, so a restart loses nothing; the
//! pipeline lock and state changes in one process at a time mean nothing
//! runs twice.

use std::path::Path;

use chrono::{DateTime, Utc};
use graft_change::{Change, ChangeError, ChangeKind, Limits};
use graft_config::RiskLevel;
use graft_ledger::{
    FileMetrics, NewUpgrade, RequestKind, StoredRequest, Upgrade, UpgradeId, UpgradeState, UpgradeUpdate,
};
use graft_pipeline::{
    ChangeSource, Deploy, Event, Failure, FailureClass, Generator, Observer, Pipeline, PipelineError, Review,
    ReviewInput, UpgradeReport, UpgradeRequest, Verdict, Workspace, land, review::report_from_ledger,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::learning::{self, modules_of};
use crate::risk::{self, FileDelta, Risk, Rules};
use crate::schedule;

/// A request to upgrade, from any source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    pub kind: RequestKind,
    /// The input's name (a file name, `<stdin>`, `request`).
    pub name: String,
    /// The patch, the edits, or the instruction's text; empty for an
    /// autofix or a suggestion.
    #[serde(skip)]
    pub body: Vec<u8>,
    pub title: Option<String>,
    pub priority: i64,
    pub dry_run: bool,
    pub approve_protected: bool,
    pub requested_by: String,
    /// cli | api | mcp | schedule | retry.
    pub source: String,
    pub suggestion: Option<String>,
    pub provider: Option<String>,
    /// A failed attempt's message, for the provider of a retry.
    pub previous_failure: Option<String>,
    pub retry_of: Option<String>,
    pub attempt: i64,
}

impl Submission {
    pub fn new(kind: RequestKind, name: &str, body: Vec<u8>, requested_by: &str, source: &str) -> Submission {
        Submission {
            kind,
            name: name.to_string(),
            body,
            title: None,
            priority: 5,
            dry_run: false,
            approve_protected: false,
            requested_by: requested_by.to_string(),
            source: source.to_string(),
            suggestion: None,
            provider: None,
            previous_failure: None,
            retry_of: None,
            attempt: 1,
        }
    }
}

/// Builds the provider of a request that is not a patch or edits.
pub trait Generators {
    fn generator(&self, ws: &Workspace, s: &Submission) -> Result<Box<dyn Generator>, Failure>;
}

/// The analyzer, as orchestration needs it.
pub trait Analyzer {
    /// Figures of `files` (paths relative to `root`), as they are there.
    fn metrics(&self, root: &Path, files: &[String]) -> std::collections::BTreeMap<String, FileMetrics>;
    /// Scan the repo and store the scan; return its suggestions.
    fn scan(&self, ws: &Workspace) -> Result<Vec<graft_ledger::Suggestion>, String>;
}

/// Why a submission was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{message}")]
    Limited { retry_after_secs: u64, message: String },
    /// Over `[limits]`, seen before anything was stored (its `code()` is
    /// the reason: `too_large`, `too_many_files`).
    #[error(transparent)]
    Refused(#[from] ChangeError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// What `submit` decided.
#[derive(Debug, Clone, Serialize)]
pub struct Submitted {
    pub id: UpgradeId,
    pub state: UpgradeState,
    pub risk: Risk,
}

pub struct Orchestrator<'a> {
    pub ws: &'a Workspace,
    pub deploy: &'a dyn Deploy,
    pub observer: &'a dyn Observer,
    pub generators: &'a dyn Generators,
    pub analyzer: Option<&'a dyn Analyzer>,
}

impl Orchestrator<'_> {
    fn ledger_err(e: graft_ledger::LedgerError) -> PipelineError {
        PipelineError::Ledger(e)
    }

    /// Queue a request, judge its risk, and hold it for approval when
    /// policy says so. A request over `[limits]` as far as it alone tells
    /// is refused before anything is stored. `now` is the time it was
    /// asked for, which its id holds (the schedules' clock, which `graft
    /// schedule tick --now` sets).
    pub fn submit(&self, s: Submission, now: DateTime<Utc>) -> Result<Submitted, SubmitError> {
        let change = intake(&s, &graft_pipeline::upgrade::limits(&self.ws.config))?;
        let ledger = &self.ws.ledger;
        let policy = &self.ws.config.policy;
        let rules = Rules::new(&self.ws.config);
        let (deltas, mut floor) = self.request_deltas(&s, change.as_ref());
        let modules = modules_of(deltas.iter().map(|d| d.path.as_str()));
        let record = learning::record_for(ledger, s.kind.as_str(), &modules, s.provider.as_deref());
        let mut risk = rules.assess_with(&deltas, &record, s.approve_protected);
        if let Some(f) = floor.take()
            && f > risk.level
        {
            risk.reasons.push(format!(
                "{}: the analyzer rates the suggestion {}",
                f.as_str(),
                f.as_str()
            ));
            risk.level = f;
        }
        let id = UpgradeId::generate(now);
        let title = s.title.clone().unwrap_or_else(|| default_title(&s, ledger));
        // A protected path without --approve-protected is refused by the
        // pipeline, with how to allow it: holding it for approval would not
        // make it valid.
        let refused_anyway = !s.approve_protected && rules.touches_protected(&deltas);
        let needs = !s.dry_run && !refused_anyway && needs_approval(risk.level, policy);
        let state = if needs {
            UpgradeState::AwaitingApproval
        } else {
            UpgradeState::Queued
        };
        let mut settings = UpgradeUpdate {
            risk: Some(risk.level.as_str().into()),
            risk_reasons: Some(risk.reasons.clone()),
            source: Some(s.source.clone()),
            attempt: Some(s.attempt),
            ..Default::default()
        };
        settings.retry_of = s.retry_of.clone();
        if needs {
            settings.approval = Some(Some("requested".into()));
            settings.approval_requested_at = Some(Some(schedule::format_time(now)));
        } else {
            settings.approval = Some(Some("auto".into()));
            settings.approved_level = Some(Some(approvable(policy).max(risk.level).as_str().into()));
        }
        // One limit for every way in (`[api] upgrades_per_window`), counted
        // in the ledger as the row goes in, so no other request, thread or
        // process takes the same last slot. The operator at the terminal is
        // not limited (but counted), nor are dry runs and retries of an
        // accepted upgrade.
        let api = &self.ws.config.api;
        let window = (!s.dry_run && !matches!(s.source.as_str(), "cli" | "retry"))
            .then(|| crate::rate::window(api.upgrades_per_window.0, api.window.0, now));
        let queued = ledger
            .insert_submission(
                &NewUpgrade {
                    id: id.clone(),
                    kind: s.kind,
                    title: title.clone(),
                    request: json!({ "source": s.name, "submission": s }),
                    requested_by: s.requested_by.clone(),
                    priority: s.priority.clamp(1, 10),
                    dry_run: s.dry_run,
                    state,
                },
                &StoredRequest {
                    upgrade_id: id.to_string(),
                    name: s.name.clone(),
                    body: s.body.clone(),
                    spec: json!({ "submission": s, "base_priority": s.priority }),
                },
                &settings,
                window.as_ref(),
            )
            .map_err(Self::ledger_err)?;
        if let Err(usage) = queued {
            let l = crate::rate::limited(&usage, api.window.0, now);
            return Err(SubmitError::Limited {
                retry_after_secs: l.retry_after,
                message: format!(
                    "{} upgrades in the last {} already (the limit, `[api] upgrades_per_window`); try again in {} s. Dry runs are not limited",
                    l.used,
                    crate::rate::human(api.window.0),
                    l.retry_after
                ),
            });
        }
        // The finding points at the upgrade made from it (the first
        // attempt: retries are found from it by `retry_of`).
        if let Some(sug) = &s.suggestion
            && s.retry_of.is_none()
        {
            ledger.link_suggestion(sug, &id).map_err(Self::ledger_err)?;
        }
        self.observer.on_event(&Event::UpgradeCreated {
            id: id.to_string(),
            kind: s.kind.to_string(),
            title,
        });
        self.announce(&id, state, &risk);
        Ok(Submitted { id, state, risk })
    }

    fn announce(&self, id: &UpgradeId, state: UpgradeState, risk: &Risk) {
        self.observer.on_event(&Event::StateChanged {
            id: id.to_string(),
            state: state.to_string(),
        });
        if state == UpgradeState::AwaitingApproval {
            self.observer.on_event(&Event::Message {
                id: id.to_string(),
                text: format!(
                    "needs approval: risk {} ({}); approve with `graft approve {id}` or reject with `graft reject {id}`",
                    risk.level,
                    risk.reasons.join("; ")
                ),
            });
        }
    }

    /// What a request will change, as far as it is known before it runs
    /// (a patch's or edits' parsed `change`), and a floor from the analyzer
    /// for a suggestion.
    fn request_deltas(&self, s: &Submission, change: Option<&Change>) -> (Vec<FileDelta>, Option<RiskLevel>) {
        match s.kind {
            RequestKind::Patch | RequestKind::Edits => {
                (change.map(risk::deltas_from_change).unwrap_or_default(), None)
            }
            RequestKind::Suggestion => {
                let sug = s
                    .suggestion
                    .as_deref()
                    .and_then(|id| self.ws.ledger.suggestion(id).ok().flatten());
                match sug {
                    Some(sug) => (
                        sug.files
                            .iter()
                            .map(|f| FileDelta {
                                path: f.clone(),
                                kind: "modify".into(),
                                ..Default::default()
                            })
                            .collect(),
                        sug.risk.parse().ok(),
                    ),
                    None => (Vec::new(), None),
                }
            }
            _ => (Vec::new(), None),
        }
    }

    /// Run one queued upgrade now (resuming it when it was held after its
    /// gates and has been approved since). A retry it earns is queued.
    pub fn run(&self, id: &UpgradeId) -> Result<UpgradeReport, PipelineError> {
        let report = self.run_one(id)?;
        self.after(&report);
        Ok(report)
    }

    /// Run one upgrade, then each retry it earns, in turn (for a caller
    /// with no queue runner, like the CLI without `graft run`).
    pub fn run_with_retries(&self, id: &UpgradeId) -> Result<Vec<UpgradeReport>, PipelineError> {
        let mut reports = Vec::new();
        let mut next = Some(id.clone());
        while let Some(id) = next {
            let report = self.run_one(&id)?;
            next = self.after(&report);
            reports.push(report);
        }
        Ok(reports)
    }

    fn run_one(&self, id: &UpgradeId) -> Result<UpgradeReport, PipelineError> {
        let u = self.ws.ledger.get_upgrade(id.as_str())?;
        match u.state {
            UpgradeState::Queued => {}
            UpgradeState::AwaitingApproval => {
                return Err(PipelineError::Invalid(format!(
                    "upgrade {id} waits for approval (risk {}): `graft approve {id}` runs it",
                    u.risk.as_deref().unwrap_or("?")
                )));
            }
            s => {
                return Err(PipelineError::Invalid(format!(
                    "upgrade {id} is {s}; only a queued upgrade can run"
                )));
            }
        }
        let pipeline = Pipeline {
            ws: self.ws,
            observer: self.observer,
            deploy: self.deploy,
        };
        let report = if u.staged_commit.is_some() && u.approval.as_deref() == Some("approved") {
            pipeline.resume(id)?
        } else {
            let stored = self.ws.ledger.request(id.as_str())?.ok_or_else(|| {
                PipelineError::NotFound(format!("the request of {id} is not in the ledger"))
            })?;
            let mut s: Submission =
                serde_json::from_value(stored.spec["submission"].clone()).map_err(|e| {
                    PipelineError::Invalid(format!("the stored request of {id} is unreadable: {e}"))
                })?;
            s.body = stored.body.clone();
            let source = match s.kind {
                RequestKind::Patch => ChangeSource::Patch {
                    name: s.name.clone(),
                    bytes: s.body.clone(),
                },
                RequestKind::Edits => ChangeSource::Edits {
                    name: s.name.clone(),
                    bytes: s.body.clone(),
                },
                _ => match self.generators.generator(self.ws, &s) {
                    Ok(g) => ChangeSource::Generator(g),
                    Err(f) => return self.fail_before_start(id, f),
                },
            };
            let approved: RiskLevel = u
                .approved_level
                .as_deref()
                .and_then(|l| l.parse().ok())
                .unwrap_or(RiskLevel::Low);
            pipeline.run(UpgradeRequest {
                kind: s.kind,
                title: None,
                source,
                requested_by: s.requested_by.clone(),
                priority: u.priority,
                dry_run: s.dry_run,
                approve_protected: s.approve_protected,
                id: Some(id.clone()),
                review: Some(Box::new(RiskReview {
                    rules: Rules::new(&self.ws.config),
                    policy: self.ws.config.policy.clone(),
                    approved,
                    provider: s.provider.clone(),
                    suggestion_risk: self.request_deltas(&s, None).1,
                    protected_approved: s.approve_protected,
                    ws: self.ws,
                    analyzer: self.analyzer,
                })),
            })?
        };
        Ok(report)
    }

    /// A request that fails before the pipeline starts (its provider cannot
    /// be built): recorded like any failure.
    fn fail_before_start(&self, id: &UpgradeId, f: Failure) -> Result<UpgradeReport, PipelineError> {
        self.ws
            .ledger
            .finish_with(id, UpgradeState::Failed, &f.reason, &f.message)?;
        self.observer.on_event(&Event::StateChanged {
            id: id.to_string(),
            state: UpgradeState::Failed.to_string(),
        });
        let mut report = report_from_ledger(self.ws, id)?;
        report.failure = Some(f);
        Ok(report)
    }

    /// Run the next queued upgrade, if any.
    pub fn run_next(&self) -> Result<Option<UpgradeReport>, PipelineError> {
        match self.ws.ledger.queued(1)?.into_iter().next() {
            Some(u) => self.run(&u.id).map(Some),
            None => Ok(None),
        }
    }

    /// Approve an upgrade that waits: it goes back to the queue, approved
    /// up to its current risk.
    pub fn approve(&self, id: &UpgradeId, by: &str) -> Result<Upgrade, PipelineError> {
        // One compare-and-set with its audit row: two approvers at once
        // cannot both queue it, and the runner never sees it half approved.
        if let Err(state) = self.ws.ledger.approve_upgrade(id, by)? {
            return Err(PipelineError::Invalid(format!(
                "upgrade {id} is {state}, not awaiting approval"
            )));
        }
        self.observer.on_event(&Event::StateChanged {
            id: id.to_string(),
            state: UpgradeState::Queued.to_string(),
        });
        Ok(self.ws.ledger.get_upgrade(id.as_str())?)
    }

    /// Reject an upgrade that waits: cancelled, its branch dropped.
    pub fn reject(&self, id: &UpgradeId, by: &str, why: Option<&str>) -> Result<Upgrade, PipelineError> {
        let u = self.ws.ledger.get_upgrade(id.as_str())?;
        if u.state != UpgradeState::AwaitingApproval {
            return Err(PipelineError::Invalid(format!(
                "upgrade {id} is {}, not awaiting approval",
                u.state
            )));
        }
        let message = match why {
            Some(w) => format!("rejected by {by}: {w}"),
            None => format!("rejected by {by}"),
        };
        self.close_waiting(id, "rejected", &message)?;
        Ok(self.ws.ledger.get_upgrade(id.as_str())?)
    }

    fn close_waiting(&self, id: &UpgradeId, reason: &str, message: &str) -> Result<(), PipelineError> {
        land::delete_branch(self.ws, id)?;
        self.ws.ledger.update_upgrade(
            id,
            &UpgradeUpdate {
                state: Some(UpgradeState::Cancelled),
                approval: Some(Some(reason.into())),
                reason: Some(Some(reason.into())),
                error: Some(Some(message.into())),
                branch: Some(None),
                ..Default::default()
            },
        )?;
        self.observer.on_event(&Event::StateChanged {
            id: id.to_string(),
            state: UpgradeState::Cancelled.to_string(),
        });
        Ok(())
    }

    /// Cancel upgrades that waited for approval longer than the policy's
    /// `approval_timeout`.
    pub fn expire(&self, now: DateTime<Utc>) -> Result<Vec<UpgradeId>, PipelineError> {
        let timeout = self.ws.config.policy.approval_timeout.0;
        let before = schedule::format_time(now - chrono::Duration::from_std(timeout).unwrap_or_default());
        let mut out = Vec::new();
        for u in self.ws.ledger.awaiting_since_before(&before)? {
            let message = format!(
                "waited for approval since {} (longer than [policy] approval_timeout, {})",
                u.approval_requested_at.as_deref().unwrap_or("?"),
                crate::rate::human(timeout)
            );
            self.close_waiting(&u.id, "expired", &message)?;
            out.push(u.id);
        }
        Ok(out)
    }

    /// Say a warning about upgrade `id` to whoever follows it.
    fn warn(&self, id: &UpgradeId, text: String) {
        self.observer.on_event(&Event::Message {
            id: id.to_string(),
            text: format!("warning: {text}"),
        });
    }

    /// After an upgrade ends: learn, queue a retry if worth it (returned),
    /// re-rank the queue.
    fn after(&self, report: &UpgradeReport) -> Option<UpgradeId> {
        if let Err(e) = learning::refresh(&self.ws.ledger) {
            self.warn(
                &report.id,
                format!("the learning table could not be rebuilt: {e}"),
            );
        }
        let retry = self
            .retry_of(report)
            .and_then(|s| self.submit(s, Utc::now()).ok())
            .filter(|s| s.state == UpgradeState::Queued)
            .map(|s| s.id);
        self.adapt_priorities();
        retry
    }

    /// A retry of a failed provider-made upgrade, with the failure as
    /// context; none past `max_upgrade_retries`, or when it failed the same
    /// way twice in a row (stuck).
    fn retry_of(&self, report: &UpgradeReport) -> Option<Submission> {
        let f = report.failure.as_ref()?;
        if report.dry_run
            || !matches!(report.state, UpgradeState::Failed | UpgradeState::RolledBack)
            || matches!(
                f.class,
                FailureClass::Cancelled | FailureClass::Precondition | FailureClass::Internal
            )
        {
            return None;
        }
        let ledger = &self.ws.ledger;
        let u = ledger.get_upgrade(report.id.as_str()).ok()?;
        if !matches!(
            u.kind,
            RequestKind::Instruction | RequestKind::Suggestion | RequestKind::Autofix
        ) {
            return None;
        }
        let first = u.retry_of.clone().unwrap_or_else(|| u.id.to_string());
        let attempts = ledger.attempts(&first).ok()?;
        let max = self.ws.config.policy.max_upgrade_retries as i64;
        let note = |text: String| {
            self.observer.on_event(&Event::Message {
                id: u.id.to_string(),
                text,
            });
        };
        if u.attempt > max {
            note(format!(
                "no retry: {} attempts, the most [policy] max_upgrade_retries allows after the first",
                u.attempt
            ));
            return None;
        }
        let sig = |x: &Upgrade| {
            signature(
                x.reason.as_deref().unwrap_or(""),
                x.error.as_deref().unwrap_or(""),
            )
        };
        if let Some(prev) = attempts.iter().rev().find(|a| a.attempt == u.attempt - 1)
            && sig(prev) == sig(&u)
        {
            note("no retry: it failed the same way twice in a row (stuck)".to_string());
            if let Err(e) = ledger.update_upgrade(
                &u.id,
                &UpgradeUpdate {
                    reason: Some(Some("stuck".into())),
                    ..Default::default()
                },
            ) {
                self.warn(
                    &u.id,
                    format!("its stuck mark could not be recorded in the ledger: {e}"),
                );
            }
            return None;
        }
        let stored = ledger.request(u.id.as_str()).ok()??;
        let mut s: Submission = serde_json::from_value(stored.spec["submission"].clone()).ok()?;
        s.body = stored.body;
        s.source = "retry".into();
        s.retry_of = Some(first);
        s.attempt = u.attempt + 1;
        s.previous_failure = Some(format!(
            "{} ({})",
            f.message.lines().take(20).collect::<Vec<_>>().join("\n"),
            f.reason
        ));
        note(format!("retrying: attempt {} of {}", s.attempt, max + 1));
        Some(s)
    }

    /// Re-rank queued suggestions by how upgrades fared where they point.
    fn adapt_priorities(&self) {
        let ledger = &self.ws.ledger;
        let min = self.ws.config.policy.learn_min_outcomes;
        for u in ledger.queued(1000).unwrap_or_default() {
            if u.kind != RequestKind::Suggestion {
                continue;
            }
            let Ok(Some(stored)) = ledger.request(u.id.as_str()) else {
                continue;
            };
            let base = stored.spec["base_priority"].as_i64().unwrap_or(u.priority);
            let files: Vec<String> = stored.spec["submission"]["suggestion"]
                .as_str()
                .and_then(|id| ledger.suggestion(id).ok().flatten())
                .map(|s| s.files)
                .unwrap_or_default();
            let record = learning::record_for(
                ledger,
                "suggestion",
                &modules_of(files.iter().map(String::as_str)),
                None,
            );
            let (p, _) = learning::adapted_priority(base, &record, min);
            if p != u.priority
                && let Err(e) = ledger.set_priority(&u.id, p)
            {
                self.warn(
                    &u.id,
                    format!("its adapted priority {p} could not be recorded: {e}"),
                );
            }
        }
    }

    /// Expire waiting upgrades and run what the schedules say is due.
    pub fn tick(&self, now: DateTime<Utc>) -> Result<Tick, PipelineError> {
        let expired = self.expire(now)?;
        let mut ran = Vec::new();
        let sched = self.ws.config.schedule.clone();
        for (name, every) in [("scan", &sched.scan), ("autofix", &sched.autofix)] {
            let ledger = &self.ws.ledger;
            let last = ledger
                .last_schedule_run(name)?
                .and_then(|t| schedule::parse_time(&t));
            if last.is_none() && *every != graft_config::Every::Manual {
                ledger.record_schedule_run(name, &schedule::format_time(now), "baseline", &json!({}))?;
                continue;
            }
            let Some(due) = schedule::due(every, last, now) else {
                continue;
            };
            let due_s = schedule::format_time(due);
            if !ledger.record_schedule_run(name, &due_s, "started", &json!({}))? {
                continue;
            }
            let detail = match name {
                "scan" => self.scheduled_scan(now),
                _ => self.scheduled_autofix(now),
            };
            let outcome = if detail.get("error").is_some() {
                "failed"
            } else {
                "done"
            };
            ledger.update_schedule_run(name, &due_s, outcome, &detail)?;
            ran.push(json!({ "schedule": name, "due": due_s, "detail": detail }));
        }
        Ok(Tick { expired, ran })
    }

    fn scheduled_scan(&self, now: DateTime<Utc>) -> serde_json::Value {
        let Some(analyzer) = self.analyzer else {
            return json!({ "error": "no analyzer in this build" });
        };
        let suggestions = match analyzer.scan(self.ws) {
            Ok(s) => s,
            Err(e) => return json!({ "error": e }),
        };
        let mut budget = match self.schedule_budget(now) {
            Ok(b) => b,
            Err(e) => return json!({ "error": e.to_string() }),
        };
        let sched = &self.ws.config.schedule;
        let mut queued = Vec::new();
        let mut skipped = 0;
        let mut already = 0;
        let mut limited = None;
        // A finding already waiting (queued or for approval) from an earlier
        // scan is not queued again.
        let open: Vec<String> = self
            .ws
            .ledger
            .upgrades(&[UpgradeState::Queued, UpgradeState::AwaitingApproval], 10_000)
            .unwrap_or_default()
            .into_iter()
            .map(|u| u.title)
            .collect();
        let wanted: Vec<_> = suggestions
            .iter()
            .filter(|s| s.priority >= sched.min_priority)
            .collect();
        for sug in &wanted {
            if open.contains(&sug.title) {
                already += 1;
                continue;
            }
            if budget == 0 || limited.is_some() {
                skipped += 1;
                continue;
            }
            let mut s = Submission::new(
                RequestKind::Suggestion,
                "schedule",
                Vec::new(),
                "schedule",
                "schedule",
            );
            s.suggestion = Some(sug.id.clone());
            s.priority = sug.priority;
            s.title = Some(sug.title.clone());
            match self.submit(s, now) {
                Ok(done) => {
                    queued.push(json!({ "id": done.id, "state": done.state, "suggestion": sug.id }));
                    budget -= 1;
                }
                Err(SubmitError::Limited { message, .. }) => {
                    skipped += 1;
                    limited = Some(message);
                }
                Err(e) => return json!({ "error": e.to_string(), "queued": queued }),
            }
        }
        let mut detail = json!({
            "suggestions": suggestions.len(),
            "below_min_priority": suggestions.len() - wanted.len(),
            "queued": queued,
            "already_waiting": already,
            "left_for_later": skipped,
            "rate_limited": limited,
        });
        if skipped > 0 && budget == 0 {
            detail["note"] = json!(format!(
                "{skipped} suggestion(s) left for a later scan: {}",
                self.day_is_full(now)
            ));
        }
        detail
    }

    fn scheduled_autofix(&self, now: DateTime<Utc>) -> serde_json::Value {
        match self.schedule_budget(now) {
            Ok(0) => {
                return json!({
                    "queued": [],
                    "left_for_later": 1,
                    "note": format!(
                        "the autofix was not queued (it waits for its next run): {}",
                        self.day_is_full(now)
                    ),
                });
            }
            Ok(_) => {}
            Err(e) => return json!({ "error": e.to_string() }),
        }
        let mut s = Submission::new(
            RequestKind::Autofix,
            "schedule",
            Vec::new(),
            "schedule",
            "schedule",
        );
        s.title = Some("Scheduled autofix".into());
        match self.submit(s, now) {
            Ok(done) => json!({ "queued": [{ "id": done.id, "state": done.state }] }),
            Err(e) => json!({ "error": e.to_string() }),
        }
    }

    /// How many more upgrades the schedules may create in the 24 hours
    /// ending `now` (`[schedule] max_upgrades_per_day`), counted by the
    /// schedules' own clock, which `graft schedule tick --now` sets.
    fn schedule_budget(&self, now: DateTime<Utc>) -> Result<u64, PipelineError> {
        let made = self
            .ws
            .ledger
            .count_asked_between(now - chrono::Duration::days(1), now, Some("schedule"))
            .map_err(Self::ledger_err)?;
        Ok(self.ws.config.schedule.max_upgrades_per_day.saturating_sub(made))
    }

    /// What to say when the schedules' day is full.
    fn day_is_full(&self, now: DateTime<Utc>) -> String {
        format!(
            "`[schedule] max_upgrades_per_day` ({}) reached: the schedules created that many upgrades in the 24 hours up to {}",
            self.ws.config.schedule.max_upgrades_per_day,
            schedule::format_time(now)
        )
    }
}

/// A request held to `[limits]` before anything is stored: its size, and
/// for a patch or edits what the change alone shows (its files, what it
/// surely writes). Anything else wrong with it is the pipeline's to find
/// and record. The parsed change, when it parses.
fn intake(s: &Submission, limits: &Limits) -> Result<Option<Change>, ChangeError> {
    graft_change::check_request_bytes(&s.name, s.body.len(), limits)?;
    let change = match s.kind {
        RequestKind::Patch => graft_change::parse_unified_diff(&s.name, &s.body).ok(),
        RequestKind::Edits => graft_change::parse_edits_json(&s.name, &s.body).ok(),
        _ => None,
    };
    if let Some(c) = &change {
        graft_change::check_change(c, limits)?;
    }
    Ok(change)
}

/// What a tick did.
#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub expired: Vec<UpgradeId>,
    pub ran: Vec<serde_json::Value>,
}

/// Whether `level` needs a person's approval under `policy`.
pub fn needs_approval(level: RiskLevel, policy: &graft_config::PolicyConfig) -> bool {
    match level {
        RiskLevel::Low => !policy.auto_approve_low_risk,
        RiskLevel::Medium => !policy.auto_approve_medium_risk,
        RiskLevel::High => true,
    }
}

/// The highest level policy approves by itself.
fn approvable(policy: &graft_config::PolicyConfig) -> RiskLevel {
    if policy.auto_approve_medium_risk {
        RiskLevel::Medium
    } else {
        RiskLevel::Low
    }
}

/// A failure with numbers and ids taken out: the same failure twice has
/// the same signature.
pub fn signature(reason: &str, message: &str) -> String {
    let re = regex::Regex::new(r"[0-9a-f]{7,40}|\d+(\.\d+)?").expect("valid regex");
    let first: String = message.lines().take(5).collect::<Vec<_>>().join("\n");
    format!("{reason}|{}", re.replace_all(&first, "#"))
}

fn default_title(s: &Submission, ledger: &graft_ledger::Ledger) -> String {
    match s.kind {
        RequestKind::Instruction => {
            let text = String::from_utf8_lossy(&s.body);
            let line = text.lines().next().unwrap_or("").trim();
            let t: String = line.chars().take(100).collect();
            if t.is_empty() { "Instruction".into() } else { t }
        }
        RequestKind::Suggestion => s
            .suggestion
            .as_deref()
            .and_then(|id| ledger.suggestion(id).ok().flatten())
            .map(|s| s.title)
            .unwrap_or_else(|| "Suggestion".into()),
        RequestKind::Autofix => "Autofix".into(),
        RequestKind::Patch => graft_pipeline::upgrade::patch_title(&s.name, &s.body),
        RequestKind::Edits => graft_pipeline::upgrade::edits_title(&s.name),
    }
}

/// The orchestrator's review: risk on the staged change, held when it
/// exceeds what was approved; the touched files' figures recorded on the
/// way (before: the main checkout, still at the base; after: staging).
struct RiskReview<'a> {
    rules: Rules,
    policy: graft_config::PolicyConfig,
    approved: RiskLevel,
    provider: Option<String>,
    suggestion_risk: Option<RiskLevel>,
    protected_approved: bool,
    ws: &'a Workspace,
    analyzer: Option<&'a dyn Analyzer>,
}

impl Review for RiskReview<'_> {
    fn review(&self, input: &ReviewInput<'_>) -> Result<Verdict, Failure> {
        let deltas = risk::deltas_from_diff(input.diff);
        let modules = modules_of(input.files.iter().map(|f| f.path.as_str()));
        let record = learning::record_for(
            &self.ws.ledger,
            input.kind.as_str(),
            &modules,
            self.provider.as_deref(),
        );
        let mut risk = self.rules.assess_with(&deltas, &record, self.protected_approved);
        if let Some(f) = self.suggestion_risk
            && f > risk.level
        {
            risk.level = f;
            risk.reasons.push(format!(
                "{}: the analyzer rates the suggestion {}",
                f.as_str(),
                f.as_str()
            ));
        }
        if let Some(analyzer) = self.analyzer {
            let before: Vec<String> = input
                .files
                .iter()
                .filter(|f| f.kind != ChangeKind::Create.to_string())
                .map(|f| f.old_path.clone().unwrap_or_else(|| f.path.clone()))
                .collect();
            let after: Vec<String> = input
                .files
                .iter()
                .filter(|f| f.kind != ChangeKind::Delete.to_string())
                .map(|f| f.path.clone())
                .collect();
            let figures = analyzer
                .metrics(input.root, &before)
                .into_iter()
                .map(|(path, f)| (path, "before", f))
                .chain(
                    analyzer
                        .metrics(input.staging, &after)
                        .into_iter()
                        .map(|(path, f)| (path, "after", f)),
                );
            for (path, when, f) in figures {
                // Figures for learning, not for this upgrade's verdict: a
                // failed write is said, and the review goes on.
                if let Err(e) = self.ws.ledger.record_file_metrics(input.id, &path, when, &f) {
                    (input.message)(&format!(
                        "warning: the code figures of {path} ({when} the change) could not be recorded in the ledger: {e}"
                    ));
                }
            }
        }
        let hold = needs_approval(risk.level, &self.policy) && risk.level > self.approved;
        Ok(Verdict {
            risk: risk.level.as_str().into(),
            reasons: risk.reasons,
            hold,
        })
    }
}
