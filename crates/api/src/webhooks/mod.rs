//! Webhooks told of each upgrade's state changes: [`notify`] turns
//! pipeline events into notifications in the ledger's outbox,
//! [`deliver`] sends them, [`payload`] is what they look like.

pub mod deliver;
pub mod notify;
pub mod payload;

pub use deliver::{COMMAND_BUDGET, Flushed, flush};
pub use notify::Notifier;
