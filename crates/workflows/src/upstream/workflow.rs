//! `UpstreamCall`: one call of a tool mounted from an upstream MCP server, as a workflow. Its one
//! activity on `avb-upstream` calls the upstream and returns the result exactly as the upstream
//! sent it (text, images, audio, structured content). Whether a failure is tried again is decided
//! by the activity: an upstream that could not be reached is always retried (nothing ran); one
//! that went away mid-call is retried only for tools that may run twice (read-only or idempotent
//! hints, or the server's `retry_tools`). Where the server's `require_approval` covers the tool,
//! the workflow first waits for a human's decision on the exact arguments, as device commands do.
//! A priced call (`credits_per_call`) holds its credits first and is charged only when the
//! upstream answered.

use serde_json::Value;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_workflow::{SyncWorkflowContext, WorkflowContext, WorkflowResult};

use super::contract::{BatchItem, UpstreamActivityDefs, UpstreamBatchJob, UpstreamCallJob};
use crate::approval::{ApprovalDecision, AwaitsApproval, DECIDE_APPROVAL, await_approval};
use crate::billing::Saga;
use crate::policy;

#[workflow]
#[derive(Default)]
pub struct UpstreamCallWorkflow {
    decision: Option<ApprovalDecision>,
}

impl AwaitsApproval for UpstreamCallWorkflow {
    fn decision_slot(&mut self) -> &mut Option<ApprovalDecision> {
        &mut self.decision
    }
    fn decision(&self) -> Option<&ApprovalDecision> {
        self.decision.as_ref()
    }
}

#[workflow_methods]
impl UpstreamCallWorkflow {
    #[run(name = "UpstreamCall")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        job: UpstreamCallJob,
    ) -> WorkflowResult<Value> {
        if let Some(gate) = &job.approval {
            let arguments = Value::Object(job.request.arguments.clone().unwrap_or_default());
            await_approval(ctx, gate, &job.mounted_as, &arguments).await?;
        }
        let job_id = ctx.workflow_id().to_owned();
        let saga = Saga::hold_if_priced(ctx, &job.tenant, &job_id, job.billing.as_ref()).await?;
        let outcome = ctx
            .execute_activity(
                UpstreamActivityDefs::call_upstream_tool,
                job.request,
                policy::upstream(job.timeout_secs),
            )
            .await;
        Ok(Saga::conclude(saga, ctx, outcome).await??)
    }

    /// A human's decision; the first one counts.
    #[signal(name = DECIDE_APPROVAL)]
    pub fn decide_approval(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        decision: ApprovalDecision,
    ) {
        self.record_decision(decision);
    }
}

#[workflow]
#[derive(Default)]
pub struct UpstreamBatchWorkflow;

#[workflow_methods]
impl UpstreamBatchWorkflow {
    /// The calls one after the other (each with its own retries); one failing does not stop
    /// the others.
    #[run(name = "UpstreamBatch")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        job: UpstreamBatchJob,
    ) -> WorkflowResult<Vec<BatchItem>> {
        let job_id = ctx.workflow_id().to_owned();
        let saga = Saga::hold_if_priced(ctx, &job.tenant, &job_id, job.billing.as_ref()).await?;
        let mut items = Vec::with_capacity(job.calls.len());
        let mut used = 0;
        for call in job.calls {
            let outcome = ctx
                .execute_activity(
                    UpstreamActivityDefs::call_upstream_tool,
                    call.request,
                    policy::upstream(call.timeout_secs),
                )
                .await;
            if outcome.is_ok() {
                used += call.credits;
            }
            items.push(match outcome {
                Ok(result) => BatchItem {
                    tool: call.mounted_as,
                    result: Some(result),
                    error: None,
                },
                Err(e) => BatchItem {
                    tool: call.mounted_as,
                    result: None,
                    error: Some(e.to_string()),
                },
            });
        }
        if let Some(saga) = saga {
            saga.settle_actual(ctx, used).await?;
        }
        Ok(items)
    }
}
