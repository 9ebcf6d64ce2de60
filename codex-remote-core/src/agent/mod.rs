//! The agent: Codex launched detached on the host and followed ([`executor`]), and its typed
//! `exec --json` events ([`events`]), and the scripted model server that stands in for OpenAI
//! in the demo and the tests ([`model_server`]).

pub mod events;
pub mod executor;
pub mod model_server;
