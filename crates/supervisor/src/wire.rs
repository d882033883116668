//! What travels between the `graft` CLI and a running `graft run` over
//! the control socket.
//!
//! A request that runs the pipeline answers with a stream of JSON lines:
//! pipeline events as they happen, then one line with the outcome. The
//! change itself is the raw request body, so bytes that are not UTF-8
//! reach the same intake checks as they would locally.

use serde::{Deserialize, Serialize};

/// `POST /v1/upgrades` query parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpgradeQuery {
    /// `patch` or `edits`.
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
}

fn five() -> i64 {
    5
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
