//! How things go wrong, in two layers.
//!
//! [`PipelineError`] is a failure of Graft or its surroundings (no git repo,
//! an invalid `graft.toml`, the ledger unwritable). [`Failure`] is why one
//! upgrade did not land (a gate failed, the change was refused, the working
//! tree was dirty); it is recorded in the ledger as the upgrade's `reason`
//! and `error`, and its [`FailureClass`] decides the CLI's exit code.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Config(#[from] graft_config::ConfigError),
    #[error(transparent)]
    Ledger(#[from] graft_ledger::LedgerError),
    #[error("`{command}` failed in {dir}: {message}")]
    Git {
        command: String,
        dir: PathBuf,
        message: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Something outside Graft is not as it must be (not a git repo, git
    /// missing, wrong branch checked out); the message says what to do.
    #[error("{0}")]
    Environment(String),
    /// A request that cannot be acted on (unknown id, wrong state).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
}

impl PipelineError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> PipelineError {
        PipelineError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Broad kinds of upgrade failure, each with its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The change itself is bad: malformed, hostile path, no match.
    Refused,
    /// The repo was not in a state to take it: dirty tree, branch moved.
    Precondition,
    /// A required gate failed.
    Gate,
    /// Deployed, then rolled back (readiness or watch window).
    RolledBack,
    Cancelled,
    /// The provider could not make a change: unreachable, refused the
    /// request, over its budget, or its command failed.
    Provider,
    /// Graft itself failed (git error, disk full); see the message.
    Internal,
}

/// Why one upgrade did not land.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub class: FailureClass,
    /// Stable machine-readable cause, such as `gate_failed:test`,
    /// `path_traversal` or `dirty_tree`.
    pub reason: String,
    /// For people: what failed, why, and what to do.
    pub message: String,
    /// Figures about the failure, journaled with its step.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl Failure {
    pub fn with_detail(mut self, detail: serde_json::Value) -> Failure {
        self.detail = detail;
        self
    }

    pub fn new(class: FailureClass, reason: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            detail: serde_json::Value::Null,
            class,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn refused(e: &graft_change::ChangeError) -> Failure {
        Failure::new(FailureClass::Refused, e.code(), e.to_string())
    }

    pub fn internal(e: &PipelineError) -> Failure {
        Failure::new(FailureClass::Internal, "internal", e.to_string())
    }
}

impl From<PipelineError> for Failure {
    fn from(e: PipelineError) -> Failure {
        Failure::internal(&e)
    }
}
