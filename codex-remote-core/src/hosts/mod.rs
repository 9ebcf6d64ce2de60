//! Reaching a host: what a host is ([`host`]), running commands on it ([`transport`]: local,
//! SSH, container engines) and the one module that writes shell syntax ([`shell`]).

pub mod host;
pub mod ondemand;
pub mod shell;
pub mod transport;
