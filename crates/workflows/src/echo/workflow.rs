//! `DurableEcho`: the smallest durable job — one workflow, one activity on the workflow's own task
//! queue (a local activity by default; a regular one is dispatched eagerly). Used by the
//! `durable_echo` tool to check the durable path end to end, and by the latency benchmark.

use temporalio_macros::{workflow, workflow_methods};
use temporalio_workflow::{WorkflowContext, WorkflowResult};

use super::contract::{EchoActivityDefs, EchoInput, EchoJob, EchoOutput};
use crate::policy;

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
            return Ok(ctx
                .execute_local_activity(EchoActivityDefs::echo, input, policy::echo_local())
                .await?);
        }
        Ok(ctx
            .execute_activity(EchoActivityDefs::echo, input, policy::echo())
            .await?)
    }
}
