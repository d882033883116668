//! One module per command. Each returns the exit code it wants, or a
//! [`CliError`]; printing the error is `main`'s job.

pub mod demo;
pub mod diff;
pub mod init;
pub mod ledger;
pub mod provider;
pub mod rollback;
pub mod status;
pub mod upgrade;

use std::path::PathBuf;

use graft_pipeline::{RecordOnly, Workspace, recover};

use crate::output::CliError;

/// What every command gets.
pub struct Ctx {
    pub repo: PathBuf,
    pub json: bool,
}

impl Ctx {
    /// Open the target repo and recover anything a crashed run left behind.
    pub fn workspace(&self) -> Result<Workspace, CliError> {
        let ws = Workspace::open(&self.repo)?;
        for r in recover::recover(&ws, &RecordOnly)? {
            if !self.json {
                eprintln!("graft: recovered {} ({})", r.id, r.action);
            }
        }
        Ok(ws)
    }
}

/// Parse an upgrade id given on the command line.
pub fn parse_id(id: &str) -> Result<graft_ledger::UpgradeId, CliError> {
    id.parse()
        .map_err(|e: String| CliError::new(crate::output::EXIT_NOT_FOUND, "bad_id", e))
}
