//! The upgrade pipeline: a change goes in, passes gates in an isolated
//! worktree, lands on the target branch, is deployed and watched; any
//! failure leaves the target as it was, or rolls it back.
//!
//! ```text
//! checkpoint → generate → stage → gates → backup → land → deploy → watch → promoted
//!                                             any failure ─▶ failed / rolled back
//! ```
//!
//! Module map: [`upgrade`] runs the steps; [`generate`] turns a request
//! into a staged, gated change, in rounds for a provider; [`journal`] records each one
//! before and after; [`staging`] owns the worktree; [`gates`] and
//! [`process`] run the checks; [`land`] moves the branch; [`rollback`],
//! [`cancel`] and [`recover`] undo; [`deploy`] is the interface to
//! whatever runs the target; [`git`] is the only place that calls git.
//!
//! Architecture invariants:
//! - Nothing outside `.graft/` changes before every required gate passed.
//! - Every step is journaled before and after it runs ([`journal::Journal::step`]).
//! - The target branch only ever moves by fast-forward from a commit we
//!   checked, and only while holding the pipeline lock.

pub mod advice;
pub mod cancel;
pub mod data;
pub mod deploy;
pub mod error;
pub mod events;
pub mod fault;
pub mod gates;
pub mod generate;
pub mod git;
pub mod journal;
pub mod land;
pub mod process;
pub mod recover;
pub mod review;
pub mod rollback;
pub mod staging;
pub mod upgrade;
pub mod workspace;

pub use deploy::{Deploy, DeployContext, DeployResult, LandOnly, RecordOnly};
pub use error::{Failure, FailureClass, PipelineError};
pub use events::{Event, NullObserver, Observer};
pub use generate::{GateFeedback, GenerateContext, Generated, Generator, Output, Usage};
pub use review::{Review, ReviewInput, Verdict};
pub use upgrade::{ChangeSource, Pipeline, UpgradeReport, UpgradeRequest};
pub use workspace::Workspace;
