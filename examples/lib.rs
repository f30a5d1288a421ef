//! Runnable examples of tether; see the `[[example]]` targets.

pub mod rows;
