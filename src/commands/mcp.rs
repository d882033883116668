//! `graft mcp`: the Model Context Protocol server for the repo containing
//! `-C DIR` (or the current directory), on stdin/stdout. Nothing but the
//! protocol goes to stdout; diagnostics go to stderr.

use super::Ctx;
use crate::output::{CliError, EXIT_INTERNAL, EXIT_OK};

pub fn run(ctx: &Ctx) -> Result<i32, CliError> {
    let root = graft_pipeline::workspace::find_root(&ctx.repo)?;
    // Fail now, not at the first tool call, on a missing or broken graft.toml.
    graft_pipeline::Workspace::open(&root)?;
    let hooks = graft_mcp::ops::Hooks {
        generators: super::run::generator_factory(),
        scan: super::analyzer::scan_hook(),
        analyzer: super::analyzer_sync(),
    };
    graft_mcp::serve_blocking(root, hooks).map_err(|e| CliError::new(EXIT_INTERNAL, "mcp", e))?;
    Ok(EXIT_OK)
}
