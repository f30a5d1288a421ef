//! The whole benchmark: every scenario against every implementation, in
//! interleaved rounds (A B C ... A B C ...) so that drift in the machine's
//! speed spreads over all implementations instead of favouring one; each
//! run starts a fresh server process.

pub mod python;
pub mod report;
mod runner;
pub mod scenarios;
pub mod stats;

pub use runner::Runner;
pub use scenarios::{Scenario, Timing};

use crate::record::{json_string, Record};

/// One run: which, and what it measured or why it failed.
#[derive(Debug, Clone)]
pub struct Run {
    pub scenario: &'static str,
    pub implementation: String,
    pub round: usize,
    pub outcome: Result<Record, String>,
}

impl Run {
    /// The run as a JSON object for results.json.
    pub fn to_json(&self) -> String {
        let outcome = match &self.outcome {
            Ok(r) => format!("\"result\": {}", r.to_json()),
            Err(e) => format!("\"error\": {}", json_string(e)),
        };
        format!(
            "{{\"scenario\": {}, \"impl\": {}, \"round\": {}, {outcome}}}",
            json_string(self.scenario),
            json_string(&self.implementation),
            self.round
        )
    }
}
