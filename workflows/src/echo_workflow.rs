//! `DurableEcho`: the smallest durable job — one workflow, one activity on the workflow's own task
//! queue (a local activity by default; a regular one is dispatched eagerly). Used by the `durable_echo` tool to check the
//! durable path end to end, and by the latency benchmark.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_workflow::{ActivityOptions, LocalActivityOptions, WorkflowContext, WorkflowResult};

use crate::queues;

pub const ECHO_ACTIVITY: &str = "echo";

/// Arguments of `durable_echo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoInput {
    /// Any text; it comes back unchanged after a round trip through a workflow and an activity.
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

#[workflow]
#[derive(Default)]
pub struct DurableEchoWorkflow;

#[workflow_methods]
impl DurableEchoWorkflow {
    #[run(name = "DurableEcho")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, job: EchoJob) -> WorkflowResult<EchoOutput> {
        let input = EchoInput {
            message: job.message,
        };
        if job.local_activity {
            let options = LocalActivityOptions::builder()
                .start_to_close_timeout(Duration::from_secs(10))
                .build();
            return Ok(ctx
                .execute_local_activity(EchoActivityDefs::echo, input, options)
                .await?);
        }
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10))
            .task_queue(queues::WORKFLOWS.to_string())
            .build();
        Ok(ctx
            .execute_activity(EchoActivityDefs::echo, input, options)
            .await?)
    }
}
