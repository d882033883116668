//! Supervisor errors: what went wrong, and what to do about it.

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// `graft run` cannot start as configured (port in use, no [run]).
    #[error("{0}")]
    Setup(String),
    /// A release cannot be built, kept or started.
    #[error("{0}")]
    Release(String),
    #[error(transparent)]
    Pipeline(#[from] graft_pipeline::PipelineError),
    #[error(transparent)]
    Ledger(#[from] graft_ledger::LedgerError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl SupervisorError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> SupervisorError {
        SupervisorError::Io {
            context: context.into(),
            source,
        }
    }
}
