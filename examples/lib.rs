//! Runnable examples of tether; see the `[[example]]` targets.
