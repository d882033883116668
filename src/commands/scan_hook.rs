//! The scan hook the daemon's API and the MCP server call to run `graft
//! scan`'s analysis and store it in the ledger.

pub fn hook() -> graft_api::ScanHook {
    std::sync::Arc::new(|_root, _scope| {
        Err(graft_api::ScanFailure {
            code: "unavailable".into(),
            message: "this build of graft has no analyzer (`graft scan`); scans stored in the ledger can still be read".into(),
        })
    })
}
