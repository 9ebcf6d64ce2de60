//! The agent: Codex launched detached on the host and followed ([`executor`]), and its typed
//! `exec --json` events ([`events`]).

pub mod events;
pub mod executor;
