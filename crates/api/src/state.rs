//! What every handler shares: the daemon's operations, the secret and its
//! challenges, sessions, a ledger connection, the metrics.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use graft_config::ApiConfig;
use graft_ledger::Ledger;
use graft_supervisor::control::Ops;

use crate::auth::{Challenges, Sessions};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::secret::Secret;

/// Runs a scan of the repo (optionally only a path inside it) and stores
/// it in the ledger; returns the scan's id. Supplied by the binary (the
/// analyzer is its own crate).
pub type ScanHook = Arc<dyn Fn(&Path, Option<&str>) -> Result<String, ScanFailure> + Send + Sync>;

/// Why a scan did not run: `code` says what kind of problem (`bad_scope`,
/// `unavailable`, ...), `message` what to do.
#[derive(Debug, Clone)]
pub struct ScanFailure {
    pub code: String,
    pub message: String,
}

pub struct Api {
    pub ops: Arc<Ops>,
    pub root: PathBuf,
    pub config: ApiConfig,
    pub secret: Secret,
    pub challenges: Challenges,
    pub sessions: Sessions,
    /// The API's own connection (reads, agent state, approvals).
    pub ledger: Arc<Mutex<Ledger>>,
    pub metrics: Metrics,
    pub scan: ScanHook,
    /// One scan at a time: a scan keeps every core busy.
    pub scanning: tokio::sync::Mutex<()>,
    pub webhooks: Vec<graft_config::WebhookConfig>,
    /// The name the target goes by (`[target] name` or the directory's).
    pub target_name: String,
    /// One-time dashboard login tokens (`graft run` prints a link).
    pub logins: Arc<crate::dashboard::LoginLinks>,
    /// Paths the dashboard's file excerpts never show.
    pub protected: graft_change::Policy,
}

impl Api {
    /// Run `f` with the ledger on a blocking thread (SQLite may wait for
    /// a writer or an fsync).
    pub async fn ledger<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Ledger) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || f(&ledger.lock().expect("lock")))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
    }
}
