//! Providers: what turns a plain-language instruction into a change.
pub mod edits;
pub mod reply;
