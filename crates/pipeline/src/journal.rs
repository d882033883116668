//! Every pipeline step goes through [`Journal::step`], which writes the
//! journal row before the step runs and after it ends. That is what lets
//! recovery, after a crash at any instant, see which step was under way.

use graft_ledger::{Ledger, StepOutcome, UpgradeId, UpgradeState};
use serde_json::{Value, json};

use crate::error::Failure;
use crate::events::{Event, Observer};
use crate::fault;

#[derive(Clone, Copy)]
pub struct Journal<'a> {
    pub ledger: &'a Ledger,
    pub id: &'a UpgradeId,
    pub observer: &'a dyn Observer,
}

impl Journal<'_> {
    /// Run `work` as step `name`, journaled before and after.
    pub fn step<T>(
        &self,
        name: &str,
        detail: Value,
        work: impl FnOnce() -> Result<(T, Value), Failure>,
    ) -> Result<T, Failure> {
        self.ledger
            .step_begin(self.id, name, &detail)
            .map_err(|e| Failure::internal(&e.into()))?;
        self.emit(Event::StepBegin {
            id: self.id.to_string(),
            step: name.to_string(),
        });
        fault::point(&format!("{name}:before"));
        let result = work();
        fault::point(&format!("{name}:after"));
        let (outcome, end_detail) = match &result {
            Ok((_, d)) => (StepOutcome::Ok, d.clone()),
            Err(f) => (
                StepOutcome::Failed,
                json!({ "reason": f.reason, "message": f.message, "detail": f.detail }),
            ),
        };
        self.ledger
            .step_end(self.id, name, outcome, &end_detail)
            .map_err(|e| Failure::internal(&e.into()))?;
        self.emit(Event::StepEnd {
            id: self.id.to_string(),
            step: name.to_string(),
            outcome: outcome.to_string(),
            detail: end_detail,
        });
        result.map(|(t, _)| t)
    }

    /// Record a state change and announce it.
    pub fn state(&self, state: UpgradeState) -> Result<(), Failure> {
        self.ledger
            .set_state(self.id, state)
            .map_err(|e| Failure::internal(&e.into()))?;
        self.emit(Event::StateChanged {
            id: self.id.to_string(),
            state: state.to_string(),
        });
        Ok(())
    }

    pub fn emit(&self, event: Event) {
        self.observer.on_event(&event);
    }

    pub fn message(&self, text: impl Into<String>) {
        self.emit(Event::Message {
            id: self.id.to_string(),
            text: text.into(),
        });
    }
}
