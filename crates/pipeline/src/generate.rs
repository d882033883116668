//! Generation: how a request becomes a staged, gated change, in rounds.
//!
//! A patch or a list of edits is one round: parse, stage, gates. A
//! [`Generator`] (an LLM, an external coding command, the autofixers) may
//! take several: when a required gate fails, or its change is refused
//! (does not apply, leaves the repo), the pipeline hands it a
//! [`GateFeedback`] and asks again, up to [`Generator::max_rounds`], and
//! stops early when the same error comes back twice (it is stuck).
//!
//! ```text
//! round n:  generate[:n] → stage[:n] → gate:parse[:n] → gate:<name>[:n]…
//! ```
//!
//! Round 1's steps keep their plain names; later rounds carry `:n`, so the
//! journal (and crash recovery) sees every round. Each round starts from
//! the base commit: the staging worktree is reset before the generator runs
//! and again before the change is applied.
//!
//! Architecture invariants:
//! - The pipeline knows nothing of HTTP or LLMs: a provider is any
//!   [`Generator`], wired in by the binary.
//! - Gates always run here, on the staged tree; nothing a generator says
//!   about its change is believed.
//! - A generator that edits the staging tree itself ([`Output::InPlace`])
//!   gets no shortcut: its edits are read back into a [`Change`], the tree
//!   is reset, and the change goes through the same policy checks
//!   (`graft_change::resolve`) as a patch.

use std::path::Path;
use std::time::Instant;

use graft_change::{Change, ChangeError, Edit, Limits, Policy, RelPath};
use graft_ledger::{GateStatus, GenerationRound, UpgradeId, UpgradeState, UpgradeUpdate};
use serde::Serialize;
use serde_json::json;

use crate::error::{Failure, FailureClass};
use crate::git::Git;
use crate::journal::Journal;
use crate::staging;
use crate::upgrade::{ChangeSource, Pipeline, Run, UpgradeRequest, commit_message, file_changes, policy_for};

/// Turns a request into a change, possibly over several rounds.
pub trait Generator {
    /// The provider's name, as configured (`claude`, `aider`, `autofix`).
    fn name(&self) -> &str;
    /// The model, when there is one.
    fn model(&self) -> Option<&str> {
        None
    }
    /// A title for the ledger.
    fn title(&self) -> String;
    /// What was asked, for the ledger's `request` column (never a secret).
    fn describe(&self) -> serde_json::Value;
    /// Rounds of generate → stage → gates at most, the first included.
    fn max_rounds(&self) -> u32;
    /// Produce round `ctx.round`'s change. `feedback` says why the previous
    /// round failed. `Err` ends the upgrade (the provider cannot go on:
    /// unreachable, over budget); a reply that cannot be used is
    /// [`Output::Unusable`], which is fed back like a failed gate.
    fn generate(
        &mut self,
        ctx: &GenerateContext<'_>,
        feedback: Option<&GateFeedback>,
    ) -> Result<Generated, Failure>;
}

/// What a generator gets to work with.
pub struct GenerateContext<'a> {
    pub id: &'a UpgradeId,
    pub round: u32,
    /// The staging worktree, a clean checkout of `base`.
    pub staging: &'a Path,
    pub base: &'a str,
    /// Files tracked at `base`, relative to the root.
    pub tracked: &'a [String],
    pub policy: &'a Policy,
    /// Show a progress message.
    pub message: &'a dyn Fn(&str),
    /// Whether the upgrade was cancelled (poll it during long work).
    pub cancelled: &'a dyn Fn() -> bool,
    /// Call with the process group id of a child as it starts, and with
    /// `None` when it ended: journaled, so that recovery can kill it. An
    /// `Err` on start means it could not be recorded: the child must be
    /// stopped (hand it back from `process::run`'s `on_start`).
    pub process: &'a dyn Fn(Option<i32>) -> Result<(), String>,
}

/// One round's product.
pub struct Generated {
    pub output: Output,
    pub usage: Usage,
    /// How many edits the provider made (blocks, files).
    pub edits: usize,
    /// A bounded tail of the provider's own output (command providers).
    pub log: String,
}

pub enum Output {
    /// The change, relative to the base commit.
    Change(Change),
    /// The generator edited the staging worktree; the change is read back
    /// from it.
    InPlace,
    /// The provider answered, but with nothing that can be applied; the
    /// failure is fed back to it.
    Unusable(Failure),
}

/// What one round cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    pub model: Option<String>,
    pub prompt_chars: u64,
    pub reply_chars: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// False when the model's price is unknown (the cost is then 0).
    pub cost_known: bool,
}

impl Default for Usage {
    fn default() -> Self {
        Usage {
            model: None,
            prompt_chars: 0,
            reply_chars: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            cost_known: true,
        }
    }
}

/// Why the previous round failed, for the generator to repair.
#[derive(Debug, Clone, Serialize)]
pub struct GateFeedback {
    /// The round that failed.
    pub round: u32,
    /// The failing required gate; `None` when the change was refused
    /// before any gate ran (it did not apply, or left the repo).
    pub gate: Option<String>,
    pub reason: String,
    pub message: String,
    /// The relevant part of the gate's output (bounded).
    pub output: String,
}

/// Most gate output handed back to a generator.
const FEEDBACK_LINES: usize = 80;
const FEEDBACK_BYTES: usize = 8 * 1024;

impl GateFeedback {
    /// What a person (or a model) reads.
    pub fn text(&self) -> String {
        match &self.gate {
            Some(g) => format!(
                "round {}: gate `{g}` failed ({})\n{}",
                self.round, self.reason, self.output
            ),
            None => format!("round {}: the change was refused: {}", self.round, self.message),
        }
    }

    /// The error with what varies between runs of the same failure
    /// (timings, ids, addresses) taken out: equal signatures in two rounds
    /// mean the generator is stuck.
    fn signature(&self) -> String {
        let text = format!("{}\n{}\n{}", self.reason, self.message, self.output);
        let mut out = String::with_capacity(text.len());
        let mut in_digits = false;
        for c in text.chars() {
            if c.is_ascii_digit() {
                if !in_digits {
                    out.push('#');
                }
                in_digits = true;
            } else {
                in_digits = false;
                out.push(c);
            }
        }
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// The last lines of `text`, bounded by lines and bytes.
fn bounded_tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut bytes = 0;
    for l in lines.iter().rev() {
        if kept.len() >= FEEDBACK_LINES || bytes + l.len() + 1 > FEEDBACK_BYTES {
            break;
        }
        bytes += l.len() + 1;
        kept.push(l);
    }
    kept.reverse();
    let dropped = lines.len() - kept.len();
    let mut s = String::new();
    if dropped > 0 {
        s.push_str(&format!("[… {dropped} earlier lines not shown]\n"));
    }
    for l in kept {
        s.push_str(l);
        s.push('\n');
    }
    s
}

impl Pipeline<'_> {
    /// Generate, stage and gate, in rounds. Returns the staged commit that
    /// passed every required gate.
    pub(crate) fn produce(
        &self,
        run: &mut Run<'_>,
        req: &mut UpgradeRequest,
        base: &str,
    ) -> Result<String, Failure> {
        let policy = policy_for(self.ws, req.approve_protected)?;
        let max_rounds = |req: &UpgradeRequest| match &req.source {
            ChangeSource::Generator(g) => g.max_rounds().max(1),
            _ => 1,
        };
        let provider = match &req.source {
            ChangeSource::Generator(g) => Some(g.name().to_string()),
            _ => None,
        };
        let mut feedback: Option<GateFeedback> = None;
        let mut last_signature: Option<String> = None;
        let mut tracked: Option<Vec<String>> = None;
        let mut round = 0;
        loop {
            round += 1;
            if round > 1 {
                self.check_cancel(run)?;
            }
            let started_at = graft_ledger::now();
            let start = Instant::now();
            let gates_before = run.report.gates.len();
            let mut generated: Option<(Usage, usize, String)> = None;
            let result = self.round(
                run,
                req,
                base,
                &policy,
                round,
                feedback.as_ref(),
                &mut tracked,
                &mut generated,
            );
            let Some(first_name) = &provider else {
                return result;
            };
            // A fallback may have handed the round to another provider.
            let provider = match &req.source {
                ChangeSource::Generator(g) => g.name().to_string(),
                _ => first_name.clone(),
            };
            let provider = &provider;
            let (usage, edits, log) = generated.unwrap_or_default();
            let id = run.journal.id;
            let outcome = match &result {
                Ok(_) => "passed",
                Err(f) if f.class == FailureClass::Gate => "gate_failed",
                Err(f) if f.class == FailureClass::Refused => "refused",
                Err(_) => "error",
            };
            let gates: Vec<_> = run.report.gates[gates_before..]
                .iter()
                .map(|g| json!({ "name": g.name, "status": g.status.as_str() }))
                .collect();
            let row = GenerationRound {
                upgrade_id: id.to_string(),
                round,
                provider: provider.clone(),
                model: usage.model.clone(),
                prompt_chars: usage.prompt_chars,
                reply_chars: usage.reply_chars,
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                cost_usd: usage.cost_usd,
                cost_known: usage.cost_known,
                edits: edits as u64,
                outcome: outcome.to_string(),
                reason: result.as_ref().err().map(|f| f.reason.clone()),
                feedback: None,
                gates: json!(gates),
                output_tail: log,
                started_at,
                duration_ms: start.elapsed().as_millis() as u64,
            };
            self.ws
                .ledger
                .record_round(&row)
                .map_err(|e| Failure::internal(&e.into()))?;
            run.report.rounds.push(row);
            let failure = match result {
                Ok(staged) => return Ok(staged),
                Err(f) => f,
            };
            let repairable = matches!(failure.class, FailureClass::Gate | FailureClass::Refused)
                && !failure.reason.starts_with("gate_modified_tree");
            // Asked each round: a provider may have handed over to one
            // that cannot repair (an LLM falling back to the autofixers).
            let max = max_rounds(req);
            if !repairable || round >= max {
                return Err(failure);
            }
            let fb = self.feedback(run, round, &failure, gates_before);
            let signature = fb.signature();
            if last_signature.as_ref() == Some(&signature) {
                self.ws
                    .ledger
                    .mark_round_stuck(id, round)
                    .map_err(|e| Failure::internal(&e.into()))?;
                if let Some(r) = run.report.rounds.last_mut() {
                    r.outcome = "stuck".into();
                }
                return Err(Failure::new(
                    failure.class,
                    failure.reason,
                    format!(
                        "{}\nstopped after round {round} of {max}: the same error came back twice in a row, so another round would not help",
                        failure.message
                    ),
                ));
            }
            let text = fb.text();
            self.ws
                .ledger
                .set_round_feedback(id, round, &text)
                .map_err(|e| Failure::internal(&e.into()))?;
            if let Some(r) = run.report.rounds.last_mut() {
                r.feedback = Some(text);
            }
            run.journal.message(format!(
                "round {round} failed ({}); asking {provider} for a corrected change (round {} of at most {max})",
                failure.reason,
                round + 1
            ));
            last_signature = Some(signature);
            feedback = Some(fb);
        }
    }

    fn feedback(&self, run: &Run<'_>, round: u32, failure: &Failure, gates_before: usize) -> GateFeedback {
        let failed_gate = (failure.class == FailureClass::Gate)
            .then(|| {
                run.report.gates[gates_before..]
                    .iter()
                    .rev()
                    .find(|g| g.required && g.status != GateStatus::Passed)
            })
            .flatten();
        GateFeedback {
            round,
            gate: failed_gate.map(|g| g.name.clone()),
            reason: failure.reason.clone(),
            message: failure.message.clone(),
            output: failed_gate
                .map(|g| bounded_tail(&g.output_tail))
                .unwrap_or_default(),
        }
    }

    /// One round: generate, stage, gates.
    #[allow(clippy::too_many_arguments)]
    fn round(
        &self,
        run: &mut Run<'_>,
        req: &mut UpgradeRequest,
        base: &str,
        policy: &Policy,
        round: u32,
        feedback: Option<&GateFeedback>,
        tracked: &mut Option<Vec<String>>,
        generated: &mut Option<(Usage, usize, String)>,
    ) -> Result<String, Failure> {
        let ws = self.ws;
        let name = |s: &str| {
            if round == 1 {
                s.to_string()
            } else {
                format!("{s}:{round}")
            }
        };
        let j = Journal {
            ledger: run.journal.ledger,
            id: run.journal.id,
            observer: run.journal.observer,
        };
        let is_generator = matches!(req.source, ChangeSource::Generator(_));
        if is_generator {
            j.state(UpgradeState::Generating)?;
        }
        let detail = match &req.source {
            ChangeSource::Generator(g) => {
                json!({ "kind": req.kind.as_str(), "provider": g.name(), "round": round })
            }
            _ => json!({ "kind": req.kind.as_str() }),
        };
        let output = j.step(&name("generate"), detail, || {
            let output = match &mut req.source {
                ChangeSource::Patch { name, bytes } => Output::Change(
                    graft_change::parse_unified_diff(name, bytes).map_err(|e| Failure::refused(&e))?,
                ),
                ChangeSource::Edits { name, bytes } => Output::Change(
                    graft_change::parse_edits_json(name, bytes).map_err(|e| Failure::refused(&e))?,
                ),
                ChangeSource::Change(c) => Output::Change(c.clone()),
                ChangeSource::Generator(g) => {
                    let staging = staging::prepare(ws, base)?;
                    if tracked.is_none() {
                        let out = staging.run(&["ls-files", "-z"]).map_err(Failure::from)?;
                        *tracked = Some(
                            out.split('\0')
                                .filter(|s| !s.is_empty())
                                .map(String::from)
                                .collect(),
                        );
                    }
                    let cancelled = || ws.ledger.cancel_requested(j.id).unwrap_or(false);
                    let process = |pgid: Option<i32>| -> Result<(), String> {
                        let step = format!("{}:process", name("generate"));
                        match pgid {
                            Some(pgid) => crate::fault::write_point("generate:process")
                                .and_then(|()| {
                                    ws.ledger
                                        .step_begin(j.id, &step, &json!({ "pgid": pgid }))
                                        .map(|_| ())
                                        .map_err(|e| e.to_string())
                                })
                                .map_err(|e| {
                                    format!("its process group could not be recorded in the ledger ({e}), so it was stopped at once: a command Graft could not find again after a crash must not run")
                                }),
                            None => {
                                if let Err(e) =
                                    ws.ledger.step_end(j.id, &step, graft_ledger::StepOutcome::Ok, &json!({}))
                                {
                                    j.message(format!(
                                        "warning: the end of the provider's process could not be recorded in the ledger: {e}"
                                    ));
                                }
                                Ok(())
                            }
                        }
                    };
                    let message = |m: &str| j.message(m.to_string());
                    let ctx = GenerateContext {
                        id: j.id,
                        round,
                        staging: staging.dir(),
                        base,
                        tracked: tracked.as_deref().unwrap_or_default(),
                        policy,
                        message: &message,
                        cancelled: &cancelled,
                        process: &process,
                    };
                    let g = g.generate(&ctx, feedback)?;
                    *generated = Some((g.usage, g.edits, g.log));
                    match g.output {
                        Output::Unusable(f) => return Err(f),
                        other => other,
                    }
                }
            };
            let detail = match (&output, &*generated) {
                (Output::Change(c), None) => json!({ "edits": c.edits.len() }),
                (_, Some((u, edits, _))) => json!({
                    "edits": edits,
                    "prompt_chars": u.prompt_chars,
                    "reply_chars": u.reply_chars,
                    "input_tokens": u.input_tokens,
                    "output_tokens": u.output_tokens,
                }),
                _ => json!({}),
            };
            Ok((output, detail))
        })?;

        // stage: apply to a clean checkout of the base and commit.
        j.state(UpgradeState::Staging)?;
        let title = run.report.title.clone();
        let requested_by = req.requested_by.clone();
        let (staging, resolved, staged) =
            j.step(&name("stage"), json!({ "base": base, "round": round }), || {
                let change = match output {
                    Output::Change(c) => c,
                    Output::InPlace => read_back(&Git::new(&ws.staging_dir()), base, policy.limits())?,
                    Output::Unusable(f) => return Err(f),
                };
                let staging = staging::prepare(ws, base)?;
                let resolved = graft_change::resolve(&change, staging.dir(), policy)
                    .map_err(|e| Failure::refused(&e))?;
                if resolved.is_empty() {
                    return Err(Failure::new(
                        FailureClass::Refused,
                        "empty_change",
                        "the change makes no difference to the files it names; nothing to upgrade",
                    ));
                }
                let message = commit_message(&title, j.id, &requested_by);
                let staged = staging::commit(&staging, &resolved, &message)?;
                staging
                    .run(&["branch", "--force", &j.id.branch(), &staged])
                    .map_err(Failure::from)?;
                let detail =
                    json!({ "commit": staged, "branch": j.id.branch(), "files": resolved.files.len() });
                Ok(((staging, resolved, staged), detail))
            })?;
        run.report.staged_commit = Some(staged.clone());
        run.report.branch = Some(j.id.branch());
        ws.ledger
            .update_upgrade(
                j.id,
                &UpgradeUpdate {
                    staged_commit: Some(staged.clone()),
                    branch: Some(Some(j.id.branch())),
                    ..Default::default()
                },
            )
            .map_err(|e| Failure::internal(&e.into()))?;
        let files = file_changes(&staging, base, &staged)?;
        let diff = staging
            .run(&["diff", "--no-color", "--no-ext-diff", "-M", base, &staged])
            .map_err(Failure::from)?;
        let clear = if round > 1 {
            ws.ledger.clear_file_changes(j.id)
        } else {
            Ok(())
        };
        clear
            .and_then(|_| ws.ledger.record_file_changes(j.id, &files))
            .and_then(|_| ws.ledger.set_diff(j.id, &diff))
            .map_err(|e| Failure::internal(&e.into()))?;
        run.report.files = files;
        run.report.diff = diff;
        run.staging = Some(staging);
        run.resolved = Some(resolved);

        j.state(UpgradeState::Validating)?;
        self.gates(run, base, round)?;
        Ok(staged)
    }
}

/// Read what a generator changed in the staging worktree, relative to
/// `base`, as a change of whole files. Every path is checked as a patch's
/// would be; a symlink the generator made is refused here (and the
/// change's paths again by `resolve`, against the clean tree). What it
/// wrote is held to the limits by the files' sizes before git stores a
/// byte of it or Graft reads one; refused, the tree is reset to `base`.
fn read_back(staging: &Git, base: &str, limits: &Limits) -> Result<Change, Failure> {
    let refused = |e: ChangeError| -> Failure {
        let failure = Failure::refused(&e);
        match staging::reset(staging, base) {
            Ok(()) => failure,
            Err(reset) => Failure::internal(&reset),
        }
    };
    // What the generator left in the tree (its own commits aside: git
    // already holds those), before `add -A` hashes it into git's store.
    let status = staging
        .run(&[
            "status",
            "--porcelain",
            "-z",
            "--untracked-files=all",
            "--no-renames",
        ])
        .map_err(Failure::from)?;
    let left: Vec<&str> = status
        .split('\0')
        .filter(|s| s.len() > 3)
        .map(|entry| &entry[3..])
        .collect();
    check_written(staging.dir(), &left, limits).map_err(refused)?;
    // `add -A` also catches what a generator committed or staged itself;
    // ignored files (build output) stay out.
    staging.run(&["add", "-A"]).map_err(Failure::from)?;
    let out = staging
        .run(&["diff", "--cached", "--name-status", "-z", "--no-renames", base])
        .map_err(Failure::from)?;
    let entries: Vec<(&str, &str)> = {
        let mut fields = out.split('\0').filter(|s| !s.is_empty());
        std::iter::from_fn(|| Some((fields.next()?, fields.next()?))).collect()
    };
    let paths: Vec<&str> = entries.iter().map(|(_, path)| *path).collect();
    check_written(staging.dir(), &paths, limits).map_err(refused)?;
    let mut edits = Vec::new();
    for (status, path) in entries {
        let rel = RelPath::new(path).map_err(|e| Failure::refused(&e))?;
        if status.starts_with('D') {
            edits.push(Edit::Delete {
                path: rel,
                expect: None,
            });
            continue;
        }
        let full = staging.dir().join(path);
        let meta = std::fs::symlink_metadata(&full).map_err(|e| unreadable(&full, e))?;
        if meta.file_type().is_symlink() {
            return Err(Failure::new(
                FailureClass::Refused,
                "symlink_escape",
                format!(
                    "the provider made `{path}` a symbolic link (to `{}`); Graft never lands symlinks a provider made",
                    std::fs::read_link(&full).unwrap_or_default().display()
                ),
            ));
        }
        let content = std::fs::read(&full).map_err(|e| unreadable(&full, e))?;
        use std::os::unix::fs::PermissionsExt as _;
        let executable = meta.permissions().mode() & 0o111 != 0;
        edits.push(if status.starts_with('A') {
            Edit::Create {
                path: rel,
                content,
                executable,
            }
        } else {
            Edit::Replace { path: rel, content }
        });
    }
    staging
        .run(&["reset", "--quiet", "--hard", base])
        .map_err(Failure::from)?;
    if edits.is_empty() {
        return Err(Failure::new(
            FailureClass::Refused,
            "empty_change",
            "the provider changed no file in the staging tree; nothing to upgrade",
        ));
    }
    Ok(Change { edits })
}

/// Holds the files at `paths` under `dir` to the limits by their sizes
/// on disk, reading none (a deleted one counts as a file, of no bytes).
fn check_written(dir: &Path, paths: &[&str], limits: &Limits) -> Result<(), ChangeError> {
    limits.check_files(paths.len())?;
    let mut total = 0;
    for path in paths {
        let Ok(meta) = std::fs::symlink_metadata(dir.join(path)) else {
            continue;
        };
        if meta.is_file() {
            let rel = RelPath::new(path)?;
            limits.check_file_bytes(&rel, meta.len(), false)?;
            total += meta.len();
        }
    }
    limits.check_change_bytes(total, false)
}

fn unreadable(path: &Path, e: std::io::Error) -> Failure {
    Failure::new(
        FailureClass::Internal,
        "internal",
        format!("cannot read {} written by the provider: {e}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fb(output: &str) -> GateFeedback {
        GateFeedback {
            round: 1,
            gate: Some("test".into()),
            reason: "gate_failed:test".into(),
            message: "gate `test` failed (exit 1)".into(),
            output: output.into(),
        }
    }

    #[test]
    fn signatures_ignore_timings_but_not_the_error() {
        let a = fb("FAIL: test_greet\nRan 2 tests in 0.001s\nFAILED (failures=1)\n");
        let b = fb("FAIL: test_greet\nRan 2 tests in 0.013s\nFAILED (failures=1)\n");
        let c = fb("FAIL: test_add\nRan 2 tests in 0.001s\nFAILED (failures=1)\n");
        assert_eq!(a.signature(), b.signature());
        assert_ne!(a.signature(), c.signature());
    }

    #[test]
    fn feedback_output_is_bounded() {
        let long: String = (0..500).map(|i| format!("line {i}\n")).collect();
        let t = bounded_tail(&long);
        assert!(t.starts_with("[… 420 earlier lines not shown]\n"), "{}", &t[..40]);
        assert!(t.ends_with("line 499\n"));
        let wide = "x".repeat(3000) + "\n";
        assert!(bounded_tail(&wide.repeat(10)).len() <= FEEDBACK_BYTES + 64);
    }
}
