//! One module per command. Each returns the exit code it wants, or a
//! [`CliError`]; printing the error is `main`'s job.

pub mod demo;
pub mod diff;
pub mod init;
pub mod ledger;
pub mod logs;
pub mod provider;
pub mod rollback;
pub mod run;
pub mod scan;
pub mod status;
pub mod upgrade;

use std::path::PathBuf;

use graft_pipeline::{Deploy, LandOnly, RecordOnly, Workspace, recover};
use graft_supervisor::client::Client;

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
        for r in recover::recover(&ws, local_deploy(&ws))? {
            if !self.json {
                eprintln!("graft: recovered {} ({})", r.id, r.action);
            }
        }
        Ok(ws)
    }

    /// The running `graft run` for this repo, if there is one: changes then
    /// go through it and deploy for real.
    pub fn daemon(&self) -> Option<Client> {
        let root = graft_pipeline::workspace::find_root(&self.repo).ok()?;
        Client::find(&root)
    }
}

/// The deploy step when no `graft run` serves the target: a landed commit
/// is live at once, or, for a supervised target (`[run]`), goes live when
/// `graft run` next starts.
pub fn local_deploy(ws: &Workspace) -> &'static dyn Deploy {
    if ws.config.run.is_some() {
        &LandOnly
    } else {
        &RecordOnly
    }
}

/// Parse an upgrade id given on the command line.
pub fn parse_id(id: &str) -> Result<graft_ledger::UpgradeId, CliError> {
    id.parse()
        .map_err(|e: String| CliError::new(crate::output::EXIT_NOT_FOUND, "bad_id", e))
}
