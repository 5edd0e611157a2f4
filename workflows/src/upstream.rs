//! `UpstreamCall`: one call of a tool mounted from an upstream MCP server, as a workflow. Its one
//! activity on `avb-upstream` calls the upstream and returns the result exactly as the upstream
//! sent it (text, images, audio, structured content). Whether a failure is tried again is decided
//! by the activity: an upstream that could not be reached is always retried (nothing ran); one
//! that went away mid-call is retried only for tools that may run twice (read-only or idempotent
//! hints, or the server's `retry_tools`). Where the server's `require_approval` covers the tool,
//! the workflow first waits for a human's decision on the exact arguments, as device commands do.
//! A priced call (`credits_per_call`) holds its credits first and is charged only when the
//! upstream answered.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use temporalio_common::RetryPolicy;
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_workflow::{ActivityOptions, SyncWorkflowContext, WorkflowContext, WorkflowResult};

use crate::approval::{AwaitsApproval, await_approval};
use crate::billing::BillingPlan;
use crate::devices::{ApprovalDecision, ApprovalGate};
use crate::errors::ErrorKind;
use crate::queues;
use crate::saga::Saga;

pub const CALL_UPSTREAM_TOOL: &str = "call_upstream_tool";

/// What the activity is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamCallRequest {
    pub server: String,
    /// The tool's name on the upstream.
    pub tool: String,
    #[serde(default)]
    pub arguments: Option<Map<String, Value>>,
    /// The call may run twice: retry even when it may have reached the upstream.
    pub may_retry: bool,
    /// A provisioned server's MCP endpoint (workers know configured servers by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Workflow input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamCallJob {
    pub tenant: String,
    /// The mounted name the agent called (`<namespace>_<tool>`).
    pub mounted_as: String,
    pub request: UpstreamCallRequest,
    /// The server's per-call timeout (seconds), for the activity's start-to-close timeout.
    pub timeout_secs: u64,
    /// Set when the server's `require_approval` covers the tool: nothing is called before a
    /// human approves these very arguments (signal `decide_approval`, as for device commands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalGate>,
    /// The price (the server's `credits_per_call`), when billing is on: held before the call,
    /// charged when the upstream answered, returned when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingPlan>,
}

pub struct UpstreamActivityDefs;

#[activity_definitions]
impl UpstreamActivityDefs {
    /// Returns the upstream's `CallToolResult` as JSON.
    #[activity(name = CALL_UPSTREAM_TOOL)]
    pub fn call_upstream_tool(
        request: UpstreamCallRequest,
    ) -> Result<Value, temporalio_common::ActivityError> {
        unimplemented!()
    }
}

fn options(timeout_secs: u64) -> ActivityOptions {
    // The pool's own timeout fires first and says which tool it was; this one only catches a
    // worker that died mid-call.
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(timeout_secs + 30))
        .task_queue(queues::UPSTREAM.to_string())
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_millis(500))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(5))
                .maximum_attempts(6)
                .non_retryable_error_types(ErrorKind::non_retryable_names())
                .build(),
        )
        .build()
}

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
                options(job.timeout_secs),
            )
            .await;
        Ok(Saga::conclude(saga, ctx, outcome).await??)
    }

    /// A human's decision; the first one counts.
    #[signal(name = "decide_approval")]
    pub fn decide_approval(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        decision: ApprovalDecision,
    ) {
        self.record_decision(decision);
    }
}

/// One call of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchCall {
    pub mounted_as: String,
    pub request: UpstreamCallRequest,
    pub timeout_secs: u64,
    /// What this call costs (charged only when it produced a result).
    #[serde(default)]
    pub credits: i64,
}

/// `batch_execute`: several mounted tools' calls as one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamBatchJob {
    pub tenant: String,
    pub calls: Vec<BatchCall>,
    /// Every call's price, held before the first; only the calls that produced a result are
    /// charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingPlan>,
}

/// One call's outcome, in the order of the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BatchItem {
    pub tool: String,
    /// The upstream's `CallToolResult` (which may itself be an `isError` result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why the call produced no result (the upstream refused it, or could not be reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
                    options(call.timeout_secs),
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
