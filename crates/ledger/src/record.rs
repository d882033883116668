//! One upgrade whole, as everything that reads one upgrade shows it:
//! `GET /v1/upgrades/{id}`, `graft show ID` (text and `--json`), and
//! `graft show ID --url` reading the former.

use serde::{Deserialize, Serialize};

use crate::{FileChange, GateRun, GenerationRound, Ledger, Result, Rollback, StepRow, Upgrade, UpgradeUsage};

/// An upgrade and everything the ledger recorded about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpgradeRecord {
    pub upgrade: Upgrade,
    /// Every gate run of every round, with its whole stored output.
    pub gates: Vec<GateRun>,
    pub files: Vec<FileChange>,
    /// A provider's rounds (none for a patch or edits).
    pub rounds: Vec<GenerationRound>,
    pub usage: Option<UpgradeUsage>,
    pub rollbacks: Vec<Rollback>,
    pub approvals: Vec<Approval>,
    /// The journal: a row before and a row after each step.
    pub steps: Vec<StepRow>,
    /// What was asked, as text (the patch, the edits, the instruction),
    /// cut at [`ASKED_MAX`] characters; none for an autofix.
    pub asked: Option<String>,
}

/// Who approved an upgrade, and when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub at: String,
    pub approved_by: String,
}

/// The most of a request's text a record carries (the rest is `…`).
pub const ASKED_MAX: usize = 64 * 1024;

impl Ledger {
    /// Upgrade `id` whole, or None when there is no such upgrade.
    pub fn upgrade_record(&self, id: &str) -> Result<Option<UpgradeRecord>> {
        let Some(upgrade) = self.upgrade(id)? else {
            return Ok(None);
        };
        let asked = self.request(id)?.filter(|r| !r.body.is_empty()).map(|r| {
            let text = String::from_utf8_lossy(&r.body);
            match text.char_indices().nth(ASKED_MAX) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text.into_owned(),
            }
        });
        Ok(Some(UpgradeRecord {
            upgrade,
            gates: self.gate_runs(id)?,
            files: self.file_changes(id)?,
            rounds: self.rounds(id)?,
            usage: self.usage(id)?,
            rollbacks: self.rollbacks(Some(id))?,
            approvals: self
                .approvals(id)?
                .into_iter()
                .map(|(at, approved_by)| Approval { at, approved_by })
                .collect(),
            steps: self.steps(id)?,
            asked,
        }))
    }
}
