//! `DurableEcho`: the smallest durable job — one workflow, one activity on the workflow's own task
//! queue (so the SDK can dispatch it eagerly). Used by the `durable_echo` tool to check the
//! durable path end to end, and by the latency benchmark.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_workflow::{ActivityOptions, WorkflowContext, WorkflowResult};

use crate::queues;

pub const ECHO_ACTIVITY: &str = "echo";

/// Arguments of `durable_echo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoInput {
    /// Any text; it comes back unchanged after a round trip through a workflow and an activity.
    pub message: String,
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

#[workflow]
#[derive(Default)]
pub struct DurableEchoWorkflow;

#[workflow_methods]
impl DurableEchoWorkflow {
    #[run(name = "DurableEcho")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: EchoInput,
    ) -> WorkflowResult<EchoOutput> {
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10))
            .task_queue(queues::WORKFLOWS.to_string())
            .build();
        Ok(ctx
            .execute_activity(EchoActivityDefs::echo, input, options)
            .await?)
    }
}
