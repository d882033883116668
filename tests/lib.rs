//! Graft's integration tests: one binary (link time matters), each module
//! a story told against real git repos in temp dirs and the real `graft`.

mod support;

mod api;
mod autofix;
mod cli;
mod control;
mod crash;
mod dashboard;
mod hostile;
mod intake;
mod mcp;
mod orchestrate;
mod perf;
mod provider;
mod recipes;
mod rollback;
mod scan;
mod supervisor;
mod upgrade;
mod webhooks;
