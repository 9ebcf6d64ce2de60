//! The workflows built from the parts: the [`engine`] front door, the pipeline's steps
//! ([`pipeline`]), one run ([`run`]), a plan ([`orchestrate`]), the events they report
//! ([`progress`]), the host checks ([`doctor`]) and the cheap check a run makes before pushing
//! ([`prerequisites`]).

pub mod doctor;
pub mod engine;
pub mod interactive;
pub mod orchestrate;
pub mod pipeline;
pub mod prerequisites;
pub mod progress;
pub mod run;
