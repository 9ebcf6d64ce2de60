//! The workflows built from the parts: the [`engine`] front door, the pipeline's steps
//! ([`pipeline`]), one run ([`run`]), a plan ([`orchestrate`]), the events they report
//! ([`progress`]) and the host checks ([`doctor`]).

pub mod doctor;
pub mod engine;
pub mod orchestrate;
pub mod pipeline;
pub mod progress;
pub mod run;
