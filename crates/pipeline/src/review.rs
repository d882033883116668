//! Review: the pause between "every gate passed" and "it lands", where
//! policy may ask a person to approve, and how an approved upgrade resumes.
//!
//! The pipeline knows no risk rules. After the gates pass it hands the
//! staged change to a [`Review`] (the orchestrator's risk assessment) and
//! records its verdict in the journal step `review`. `Hold` parks the
//! upgrade in `awaiting_approval`: its staged commit stays on `graft/<id>`
//! and nothing else changes. Once approved, [`Pipeline::resume`] carries
//! it on from that commit: straight to release and landing when the branch
//! has not moved, else re-applied on the new tip and gated again (a tree no
//! gate has seen never lands).

use std::path::Path;
use std::time::Instant;

use graft_change::{ChangeKind, RelPath, ResolvedFile};
use graft_ledger::{FileChange, UpgradeId, UpgradeState, UpgradeUpdate};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Failure, FailureClass, PipelineError};
use crate::events::Event;
use crate::git::Git;
use crate::land::{self, Target};
use crate::upgrade::{Pipeline, Run, UpgradeReport, commit_message, file_changes};
use crate::{recover, staging};

/// What a review sees.
pub struct ReviewInput<'a> {
    pub id: &'a UpgradeId,
    pub kind: graft_ledger::RequestKind,
    /// The staged change as a unified diff (base..staged).
    pub diff: &'a str,
    pub files: &'a [FileChange],
    pub base: &'a str,
    pub staged: &'a str,
    /// The main checkout (the base's files) and staging (the staged files).
    pub root: &'a Path,
    pub staging: &'a Path,
    /// Tell the person following the upgrade (a warning, say).
    pub message: &'a dyn Fn(&str),
}

/// A review's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// low | medium | high.
    pub risk: String,
    pub reasons: Vec<String>,
    /// Stop here until a person approves.
    pub hold: bool,
}

/// Decides whether a gated change may land on its own.
pub trait Review {
    fn review(&self, input: &ReviewInput<'_>) -> Result<Verdict, Failure>;
}

impl Pipeline<'_> {
    /// The `review` step: ask, record the risk, and hold when told to.
    pub(crate) fn review(
        &self,
        run: &mut Run<'_>,
        review: &dyn Review,
        kind: graft_ledger::RequestKind,
        base: &str,
        staged: &str,
    ) -> Result<bool, Failure> {
        let j = run.journal;
        let staging_dir = self.ws.staging_dir();
        let (diff, files) = (run.report.diff.clone(), run.report.files.clone());
        let verdict = j.step("review", json!({}), || {
            let v = review.review(&ReviewInput {
                id: j.id,
                kind,
                diff: &diff,
                files: &files,
                base,
                staged,
                root: &self.ws.root,
                staging: &staging_dir,
                message: &|m| j.message(m.to_string()),
            })?;
            let detail = serde_json::to_value(&v).unwrap_or_default();
            Ok((v, detail))
        })?;
        self.ws
            .ledger
            .update_upgrade(
                j.id,
                &UpgradeUpdate {
                    risk: Some(verdict.risk.clone()),
                    risk_reasons: Some(verdict.reasons.clone()),
                    ..Default::default()
                },
            )
            .map_err(|e| Failure::internal(&e.into()))?;
        run.report.risk = Some(verdict.risk.clone());
        run.report.risk_reasons = verdict.reasons.clone();
        if verdict.hold {
            j.message(format!(
                "risk {}: {}; it waits for approval (`graft approve {}`)",
                verdict.risk,
                verdict.reasons.join("; "),
                j.id
            ));
        }
        Ok(verdict.hold)
    }

    /// Carry an approved upgrade on from its staged commit.
    pub fn resume(&self, id: &UpgradeId) -> Result<UpgradeReport, PipelineError> {
        let started = Instant::now();
        let _lock = recover::exclusive(self.ws, self.deploy, true, self.observer)?
            .expect("a blocking lock is always taken");
        let u = self.ws.ledger.get_upgrade(id.as_str())?;
        let (Some(base), Some(staged)) = (u.base_commit.clone(), u.staged_commit.clone()) else {
            return Err(PipelineError::Invalid(format!(
                "upgrade {id} has no staged change to resume; it was approved before it was staged, so run it from the queue"
            )));
        };
        let mut run = Run::resumed(self, id, &u)?;
        let outcome = self.resume_steps(&mut run, &base, &staged);
        let state = match outcome {
            Ok(state) => {
                self.ws.ledger.set_state(id, state)?;
                state
            }
            Err(failure) => self.fail_run(&mut run, failure)?,
        };
        run.report.state = state;
        run.report.duration_ms = started.elapsed().as_millis() as u64;
        run.journal.emit(Event::StateChanged {
            id: id.to_string(),
            state: state.to_string(),
        });
        Ok(run.report)
    }

    fn resume_steps(&self, run: &mut Run<'_>, base: &str, staged: &str) -> Result<UpgradeState, Failure> {
        let ws = self.ws;
        let j = run.journal;
        j.state(UpgradeState::Staging)?;
        let (target, tip) = j.step("checkpoint", json!({ "resume": true }), || {
            let target = Target::of(ws).map_err(Failure::from)?;
            let tip = target.tip(&ws.git)?;
            land::check_clean(ws, &target)?;
            let detail = json!({ "branch": target.branch, "head": tip });
            Ok(((target, tip), detail))
        })?;
        run.target = Some(target);
        let (base, staged) = if tip == base {
            // The tree the gates passed is the tree that lands.
            let staging = j.step("restage", json!({ "from": staged, "moved": false }), || {
                let g = staging::prepare(ws, staged)?;
                Ok((g, json!({ "commit": staged })))
            })?;
            run.staging = Some(staging);
            (base.to_string(), staged.to_string())
        } else {
            let new = j.step("restage", json!({ "from": staged, "onto": tip, "moved": true }), || {
                let g = staging::prepare(ws, &tip)?;
                let out = g.output(&["cherry-pick", "--no-commit", staged]).map_err(Failure::from)?;
                if !out.status.success() {
                    let _ = staging::reset(&g, &tip);
                    return Err(Failure::new(
                        FailureClass::Precondition,
                        "base_moved",
                        format!(
                            "the branch moved while {} waited for approval, and its change no longer applies on the new tip: {}\nNothing landed; send it again",
                            j.id,
                            String::from_utf8_lossy(&out.stderr).trim()
                        ),
                    ));
                }
                staging::commit_staged(&g, &commit_message(&run.report.title, j.id, "graft"))?;
                let new = g.head()?;
                g.run(&["branch", "--force", &j.id.branch(), &new]).map_err(Failure::from)?;
                let d = json!({ "commit": new });
                Ok(((g, new), d))
            })?;
            let (g, new) = new;
            let files = file_changes(&g, &tip, &new)?;
            let diff = g
                .run(&["diff", "--no-color", "--no-ext-diff", "-M", &tip, &new])
                .map_err(Failure::from)?;
            ws.ledger
                .update_upgrade(
                    j.id,
                    &UpgradeUpdate {
                        base_commit: Some(tip.clone()),
                        staged_commit: Some(new.clone()),
                        ..Default::default()
                    },
                )
                .and_then(|_| ws.ledger.record_file_changes(j.id, &files))
                .and_then(|_| ws.ledger.set_diff(j.id, &diff))
                .map_err(|e| Failure::internal(&e.into()))?;
            run.report.files = files;
            run.report.diff = diff;
            run.report.base_commit = Some(tip.clone());
            run.report.staged_commit = Some(new.clone());
            run.resolved = Some(resolved_from_git(&g, &tip, &new, &run.report.files)?);
            run.staging = Some(g);
            // A tree no gate has seen: gate it.
            j.state(UpgradeState::Validating)?;
            self.gates(run, &tip, 1)?;
            (tip, new)
        };
        self.deliver(run, &base, &staged)
    }
}

/// The files of `base..staged` as the parse gate and the file versions
/// want them, read from git.
pub(crate) fn resolved_from_git(
    git: &Git,
    base: &str,
    staged: &str,
    files: &[FileChange],
) -> Result<graft_change::Resolved, Failure> {
    let mut out = Vec::new();
    for f in files {
        let show = |rev: &str, path: &str| -> Option<Vec<u8>> { git.show_file(rev, path).ok() };
        let (Ok(path), from) = (
            RelPath::new(&f.path),
            f.old_path.as_deref().and_then(|p| RelPath::new(p).ok()),
        ) else {
            continue;
        };
        let kind = match f.kind.as_str() {
            "create" => ChangeKind::Create,
            "delete" => ChangeKind::Delete,
            "rename" => ChangeKind::Rename,
            _ => ChangeKind::Modify,
        };
        let before = show(base, f.old_path.as_deref().unwrap_or(&f.path));
        let after = if kind == ChangeKind::Delete {
            None
        } else {
            show(staged, &f.path)
        };
        out.push(ResolvedFile {
            path,
            from,
            kind,
            before,
            after,
            executable: false,
        });
    }
    Ok(graft_change::Resolved { files: out })
}

/// An upgrade's report as the ledger holds it (for a resumed or queued
/// upgrade, and for the API).
pub fn report_from_ledger(ws: &crate::Workspace, id: &UpgradeId) -> Result<UpgradeReport, PipelineError> {
    let u = ws.ledger.get_upgrade(id.as_str())?;
    let failure = match (&u.reason, &u.error, u.state) {
        (Some(reason), Some(message), s) if s != UpgradeState::Promoted && reason != "dry_run" => {
            Some(Failure::new(class_of(s, reason), reason.clone(), message.clone()))
        }
        _ => None,
    };
    Ok(UpgradeReport {
        id: id.clone(),
        title: u.title.clone(),
        state: u.state,
        dry_run: u.dry_run,
        failure,
        target_branch: u.target_branch.clone(),
        base_commit: u.base_commit.clone(),
        staged_commit: u.staged_commit.clone(),
        landed_commit: u.landed_commit.clone(),
        branch: u.branch.clone(),
        files: ws.ledger.file_changes(id.as_str())?,
        gates: ws.ledger.gate_runs(id.as_str())?,
        rounds: ws.ledger.rounds(id.as_str())?,
        diff: ws.ledger.diff(id.as_str())?.unwrap_or_default(),
        risk: u.risk.clone(),
        risk_reasons: u.risk_reasons.clone(),
        duration_ms: 0,
        gate_command_ms: 0,
    })
}

/// The failure class a finished upgrade's reason stands for.
pub fn class_of(state: UpgradeState, reason: &str) -> FailureClass {
    let head = reason.split(':').next().unwrap_or(reason);
    match (state, head) {
        (UpgradeState::RolledBack, _) => FailureClass::RolledBack,
        (UpgradeState::Cancelled, _) => FailureClass::Cancelled,
        (_, "gate_failed" | "gate_modified_tree" | "release_failed") => FailureClass::Gate,
        (_, "dirty_tree" | "base_moved" | "no_target_branch" | "land_refused") => FailureClass::Precondition,
        (_, "interrupted" | "internal" | "rollback_failed") => FailureClass::Internal,
        (_, h) if h.starts_with("provider") || h.contains("api_key") || h == "stuck" => {
            FailureClass::Provider
        }
        _ => FailureClass::Refused,
    }
}
