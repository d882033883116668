//! `graft run`: keep a target serving through every upgrade, and roll
//! back on its own.
//!
//! Graft binds the target's listening sockets once and passes them to
//! every release (systemd socket activation); a deploy starts the new
//! release beside the old one and switches only once the new one is ready
//! by its own channel; a watch window after each switch rolls back to the
//! last known good release on the first crash, failed check, missed
//! watchdog or missed heartbeat.
//!
//! Module map: [`sockets`] binds and passes sockets; [`release`] keeps
//! built releases; [`instance`] runs one release process; [`health`]
//! checks it; [`supervisor`] decides which process serves, and
//! [`report`] says so on `graft run`'s terminal; [`deploy`]
//! plugs the supervisor into the pipeline; [`daemon`] is `graft run`
//! itself, serving [`control`] (the CLI's Unix socket, [`client`] is the
//! other end, [`wire`] what travels) and [`agent_api`] (heartbeat, task,
//! history for the supervised program).
//!
//! API boundary: this crate implements `graft_pipeline::Deploy`; the
//! pipeline knows nothing of processes or sockets.

pub mod agent_api;
pub mod client;
pub mod control;
pub mod daemon;
pub mod deploy;
pub mod error;
pub mod health;
pub mod instance;
pub mod release;
pub mod report;
pub mod sockets;
pub mod supervisor;
pub mod wire;

pub use error::SupervisorError;
