//! The `durable_echo` contract: the tool's arguments, the workflow's input and output, and the
//! echo activity's definition.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_macros::activity_definitions;

pub const ECHO_ACTIVITY: &str = "echo";

/// Arguments of `durable_echo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoInput {
    /// Any text up to 16 KiB; it comes back unchanged after a round trip through a workflow
    /// and an activity.
    pub message: String,
}

/// Workflow input: the tool arguments plus how to run the activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoJob {
    pub message: String,
    /// Run the echo as a local activity (inside the workflow task, no second dispatch through the
    /// server) instead of a regular, eagerly dispatched one.
    #[serde(default)]
    pub local_activity: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EchoOutput {
    pub message: String,
    /// The activity attempt that answered (1 unless a worker failed).
    pub attempt: u32,
}

pub struct EchoActivityDefs;

#[activity_definitions]
impl EchoActivityDefs {
    #[activity(name = ECHO_ACTIVITY)]
    pub fn echo(input: EchoInput) -> Result<EchoOutput, temporalio_common::ActivityError> {
        unimplemented!()
    }
}

/// The activity definitions as types, for `#[activity(definition = …)]` in `avb-activities`.
pub mod activity {
    pub use super::echo_activity_defs::Echo;
}
