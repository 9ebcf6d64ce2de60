//! What comes home and stays local: run records ([`runs`]), the result patch judged and applied
//! ([`patch`]), checklist ticks ([`checkpoint`]) and task_plan.json ([`taskplan`]).

pub mod checkpoint;
pub(crate) mod json_edit;
pub mod patch;
pub mod runs;
pub mod taskplan;
