//! The ledger's records: upgrades and what happened to them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `upg_20261121_103001_a1b2c3`: UTC time of the request plus 24 random bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UpgradeId(String);

impl UpgradeId {
    /// A new id for an upgrade asked for at `now`. Ids sort by that time
    /// (to the second): every id asked for at `t` or later is at least
    /// [`UpgradeId::time_prefix`]`(t)`.
    pub fn generate(now: chrono::DateTime<chrono::Utc>) -> UpgradeId {
        let suffix: u32 = rand::random::<u32>() & 0x00ff_ffff;
        UpgradeId(format!("{}_{suffix:06x}", Self::time_prefix(now)))
    }

    /// What the ids of upgrades asked for at `t` start with.
    pub fn time_prefix(t: chrono::DateTime<chrono::Utc>) -> String {
        format!("upg_{}", t.format("%Y%m%d_%H%M%S"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The git branch an upgrade is staged on.
    pub fn branch(&self) -> String {
        format!("graft/{}", self.0)
    }

    /// The tag a landed upgrade gets.
    pub fn promoted_tag(&self) -> String {
        format!("graft/promoted/{}", self.0)
    }
}

impl FromStr for UpgradeId {
    type Err = String;
    /// Accepts exactly the generated shape, so an id is always safe to use in
    /// a ref name or a path.
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = s.len() == 26
            && s.starts_with("upg_")
            && s.as_bytes()[12] == b'_'
            && s.as_bytes()[19] == b'_'
            && s[4..12].bytes().all(|b| b.is_ascii_digit())
            && s[13..19].bytes().all(|b| b.is_ascii_digit())
            && s[20..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if ok {
            Ok(UpgradeId(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not an upgrade id (they look like upg_20261121_103001_a1b2c3; `graft status` lists them)"
            ))
        }
    }
}

impl fmt::Display for UpgradeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($name::$variant),)+
                    other => Err(format!("unknown {} `{other}`", stringify!($name))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// Where an upgrade is. `queued → awaiting_approval → generating →
    /// staging → validating → deploying → watching → promoted`, or one of
    /// the other terminal states.
    UpgradeState {
        Queued = "queued",
        AwaitingApproval = "awaiting_approval",
        Generating = "generating",
        Staging = "staging",
        Validating = "validating",
        Deploying = "deploying",
        Watching = "watching",
        Promoted = "promoted",
        RolledBack = "rolled_back",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl UpgradeState {
    /// Nothing more will happen to it (but a promoted upgrade can still be
    /// rolled back by hand).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            UpgradeState::Promoted
                | UpgradeState::RolledBack
                | UpgradeState::Failed
                | UpgradeState::Cancelled
        )
    }

    /// The states in which a process is working on an upgrade.
    pub const ACTIVE: &[UpgradeState] = &[
        UpgradeState::Generating,
        UpgradeState::Staging,
        UpgradeState::Validating,
        UpgradeState::Deploying,
        UpgradeState::Watching,
    ];

    /// A process is working on it right now (or was, when it crashed).
    pub fn is_active(self) -> bool {
        UpgradeState::ACTIVE.contains(&self)
    }
}

string_enum! {
    /// What kind of request started an upgrade.
    RequestKind {
        Instruction = "instruction",
        Patch = "patch",
        Edits = "edits",
        Suggestion = "suggestion",
        Autofix = "autofix",
    }
}

string_enum! {
    /// How a journal step ended.
    StepOutcome {
        Ok = "ok",
        Failed = "failed",
        Skipped = "skipped",
    }
}

string_enum! {
    /// How a gate run ended. `misconfigured`: its command could not judge
    /// the change (not found, not executable, or its tool refused its
    /// arguments).
    GateStatus {
        Passed = "passed",
        Failed = "failed",
        TimedOut = "timed_out",
        Error = "error",
        Skipped = "skipped",
        Misconfigured = "misconfigured",
    }
}

/// One upgrade, as the ledger holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upgrade {
    pub id: UpgradeId,
    pub kind: RequestKind,
    pub title: String,
    pub request: serde_json::Value,
    pub requested_by: String,
    pub priority: i64,
    pub risk: Option<String>,
    pub risk_reasons: Vec<String>,
    pub state: UpgradeState,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub dry_run: bool,
    pub target_branch: Option<String>,
    pub base_commit: Option<String>,
    pub staged_commit: Option<String>,
    pub branch: Option<String>,
    pub landed_commit: Option<String>,
    pub revert_commit: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    /// Who queued it: cli, api, mcp, schedule, retry.
    pub source: String,
    /// requested | approved | auto | rejected | expired.
    pub approval: Option<String>,
    /// The highest risk level approved (by hand, or automatically).
    pub approved_level: Option<String>,
    pub approval_requested_at: Option<String>,
    pub approved_by: Option<String>,
    /// The upgrade this one retries.
    pub retry_of: Option<String>,
    pub attempt: i64,
}

/// What is known when an upgrade is created.
#[derive(Debug, Clone)]
pub struct NewUpgrade {
    pub id: UpgradeId,
    pub kind: RequestKind,
    pub title: String,
    pub request: serde_json::Value,
    pub requested_by: String,
    pub priority: i64,
    pub dry_run: bool,
    pub state: UpgradeState,
}

/// Fields to change on an upgrade; `None` leaves a field as it is.
/// `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct UpgradeUpdate {
    pub state: Option<UpgradeState>,
    pub reason: Option<Option<String>>,
    pub error: Option<Option<String>>,
    pub target_branch: Option<String>,
    pub base_commit: Option<String>,
    pub staged_commit: Option<String>,
    pub branch: Option<Option<String>>,
    pub landed_commit: Option<String>,
    pub revert_commit: Option<String>,
    pub risk: Option<String>,
    pub risk_reasons: Option<Vec<String>>,
    pub source: Option<String>,
    pub approval: Option<Option<String>>,
    pub approved_level: Option<Option<String>>,
    pub approval_requested_at: Option<Option<String>>,
    pub approved_by: Option<Option<String>>,
    pub retry_of: Option<String>,
    pub attempt: Option<i64>,
}

/// A journal row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRow {
    pub id: i64,
    pub upgrade_id: String,
    pub step: String,
    pub phase: String,
    pub outcome: Option<StepOutcome>,
    pub at: String,
    pub detail: serde_json::Value,
}

/// One run of one gate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateRun {
    pub upgrade_id: String,
    pub round: i64,
    pub name: String,
    pub kind: String,
    pub required: bool,
    pub status: GateStatus,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    pub output_tail: String,
    pub figure: Option<f64>,
    pub baseline: Option<f64>,
    pub started_at: String,
    /// The first line of the output that reads as an error (rustc's
    /// `error[...]`, pytest's first `E`, node's first `not ok`, ...),
    /// caught while the output streamed: the tail may have lost it.
    #[serde(default)]
    pub first_error: Option<String>,
}

/// One file an upgrade changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    pub old_path: Option<String>,
    pub kind: String,
    pub lines_added: u64,
    pub lines_removed: u64,
    pub blob_before: Option<String>,
    pub blob_after: Option<String>,
}

/// A data file saved before an upgrade landed.
#[derive(Debug, Clone, Serialize)]
pub struct DataBackup {
    pub path: String,
    pub existed: bool,
    pub sha256: Option<String>,
    pub backup_path: Option<String>,
}

/// A rollback, by hand or automatic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rollback {
    pub upgrade_id: String,
    pub at: String,
    pub cause: String,
    pub requested_by: String,
    pub revert_commit: Option<String>,
    pub data_restored: bool,
    pub detail: serde_json::Value,
}

/// The content hash of a file at a commit (None: deleted there).
#[derive(Debug, Clone, Serialize)]
pub struct FileVersion {
    pub sha256: Option<String>,
    pub commit: String,
    pub upgrade_id: Option<String>,
}

/// One run of the analyzer.
#[derive(Debug, Clone, Serialize)]
pub struct Scan {
    /// `scan_20261121_103001_a1b2c3`.
    pub id: String,
    pub created_at: String,
    pub root: String,
    /// The path the scan was limited to, if any.
    pub scope: Option<String>,
    pub commit_id: Option<String>,
    pub duration_ms: u64,
    /// Counts and totals, as the analyzer reports them.
    pub summary: serde_json::Value,
    /// When its suggestions were dropped (only the newest scans keep
    /// theirs, `[scan] suggestion_history`); `None` while they are kept.
    pub suggestions_pruned_at: Option<String>,
}

/// A finding turned into something the pipeline can act on.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    /// Unique across scans, e.g. `sug_20261121_103001_a1b2c3_07`.
    pub id: String,
    pub scan_id: String,
    /// god_class | god_module | complex_function | circular_import | duplicate | high_coupling
    pub kind: String,
    pub title: String,
    pub files: Vec<String>,
    /// low | medium | high
    pub risk: String,
    /// 1 (lowest) to 10.
    pub priority: i64,
    /// Plain language a provider can act on.
    pub instruction: String,
    /// The finding's own figures.
    pub detail: serde_json::Value,
    /// The upgrade made from it, once one is.
    pub upgrade_id: Option<String>,
}

/// A suggestion as a scan stores it, borrowed from the scan's report: a
/// scan may hold thousands, and copying them first took longer than
/// writing them. It belongs to the scan it is stored with and is not
/// linked to an upgrade yet.
#[derive(Debug, Clone, Copy)]
pub struct NewSuggestion<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub title: &'a str,
    pub files: &'a [String],
    pub risk: &'a str,
    pub priority: i64,
    pub instruction: &'a str,
    pub detail: &'a serde_json::Value,
}
