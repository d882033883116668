//! What travels between the `graft` CLI and a running `graft run` over
//! the control socket.
//!
//! A request that runs the pipeline answers with a stream of JSON lines:
//! pipeline events as they happen, then one line with the outcome. The
//! change itself is the raw request body, so bytes that are not UTF-8
//! reach the same intake checks as they would locally.

use graft_ledger::RequestKind;
use graft_orchestrate::Submission;
use serde::{Deserialize, Serialize};

/// `POST /v1/upgrades` query parameters. The body is the patch or edits,
/// or the instruction's text; `autofix` and `suggestion` need none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpgradeQuery {
    /// `patch`, `edits`, `instruction`, `suggestion` or `autofix`.
    pub kind: String,
    /// The input's name, for error messages.
    pub name: String,
    pub title: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub approve_protected: bool,
    #[serde(default = "five")]
    pub priority: i64,
    pub requested_by: String,
    /// For `kind = suggestion`: its id.
    pub suggestion: Option<String>,
    /// A configured provider by name (default: `[provider] default`).
    pub provider: Option<String>,
    /// Where the request came from (`cli` when not given): the rate limit
    /// applies to every source but the operator's own CLI.
    #[serde(default)]
    pub source: Option<String>,
    /// Only queue it: answer with its report at once, not at its end.
    #[serde(default)]
    pub queue: bool,
}

fn five() -> i64 {
    5
}

impl UpgradeQuery {
    /// The orchestrator's submission for this query, whose kind the
    /// caller has read (each way in words a bad kind its own way).
    pub fn submission(&self, kind: RequestKind, body: Vec<u8>, source: &str) -> Submission {
        let mut sub = Submission::new(kind, &self.name, body, &self.requested_by, source);
        sub.title = self.title.clone();
        sub.priority = self.priority.clamp(1, 10);
        sub.dry_run = self.dry_run;
        sub.approve_protected = self.approve_protected;
        sub.suggestion = self.suggestion.clone();
        sub.provider = self.provider.clone();
        sub
    }
}

/// One line of a streamed answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    Event(graft_pipeline::Event),
    /// The final `UpgradeReport`.
    Report(serde_json::Value),
    /// The final `RollbackReport`.
    Rollback(serde_json::Value),
    Error(ErrorLine),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorLine {
    pub code: String,
    /// A `FailureClass` name, when the error is an upgrade failure.
    pub class: Option<graft_pipeline::FailureClass>,
    pub message: String,
}

/// Builds the provider of a request that is not a patch or edits (an
/// instruction, a suggestion, an autofix). Supplied by the binary, so that
/// this crate knows nothing of LLMs.
pub type GeneratorFactory = std::sync::Arc<dyn graft_orchestrate::Generators + Send + Sync>;
