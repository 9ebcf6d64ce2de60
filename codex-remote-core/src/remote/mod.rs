//! The host side of the data: where things live on a host ([`layout`]), how the project gets
//! there ([`sync`]) and the run trees the agents work in ([`workspace`]).

pub mod layout;
pub mod sync;
pub mod workspace;
