//! What the pipeline tells the outside while it runs: the CLI draws
//! progress from these, the daemon turns them into server-sent events and
//! webhooks. Observers must be quick: they run on the pipeline's thread.

use serde::{Deserialize, Serialize};

/// One thing that happened to an upgrade.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    UpgradeCreated {
        id: String,
        kind: String,
        title: String,
    },
    StateChanged {
        id: String,
        state: String,
    },
    StepBegin {
        id: String,
        step: String,
    },
    StepEnd {
        id: String,
        step: String,
        outcome: String,
        detail: serde_json::Value,
    },
    GateStarted {
        id: String,
        gate: String,
    },
    GateOutput {
        id: String,
        gate: String,
        line: String,
    },
    GateFinished {
        id: String,
        gate: String,
        status: String,
        duration_ms: u64,
        exit_code: Option<i32>,
    },
    Message {
        id: String,
        text: String,
    },
}

impl Event {
    pub fn upgrade_id(&self) -> &str {
        match self {
            Event::UpgradeCreated { id, .. }
            | Event::StateChanged { id, .. }
            | Event::StepBegin { id, .. }
            | Event::StepEnd { id, .. }
            | Event::GateStarted { id, .. }
            | Event::GateOutput { id, .. }
            | Event::GateFinished { id, .. }
            | Event::Message { id, .. } => id,
        }
    }
}

/// Receives pipeline events.
pub trait Observer: Send + Sync {
    fn on_event(&self, event: &Event);
}

/// Ignores everything.
pub struct NullObserver;

impl Observer for NullObserver {
    fn on_event(&self, _: &Event) {}
}

/// Sends every event to each of several observers.
pub struct Fanout<'a>(pub Vec<&'a dyn Observer>);

impl Observer for Fanout<'_> {
    fn on_event(&self, event: &Event) {
        for o in &self.0 {
            o.on_event(event);
        }
    }
}
