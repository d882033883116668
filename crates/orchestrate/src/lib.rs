//! Orchestration: the queue every upgrade goes through, its risk, the
//! approvals policy asks for, retries, schedules, and what Graft learns
//! from outcomes.
//!
//! [`orchestrator`] is the queue (submit, run, approve, reject, expire,
//! tick); [`risk`] judges a change; [`learning`] turns the ledger's
//! outcomes into statistics, recommendations and feedback; [`schedule`]
//! says when scans and autofixes are due.
//!
//! API boundary: built on the pipeline (it runs upgrades through
//! `graft_pipeline::Pipeline` with a `Review` of its own) and the ledger;
//! providers and the analyzer come in through the [`Generators`] and
//! [`Analyzer`] traits, so this crate depends on neither.

pub mod learning;
pub mod orchestrator;
pub mod rate;
pub mod risk;
pub mod schedule;

pub use orchestrator::{
    Analyzer, Generators, Orchestrator, Submission, SubmitError, Submitted, Tick, needs_approval,
};
pub use risk::{Risk, Rules};
