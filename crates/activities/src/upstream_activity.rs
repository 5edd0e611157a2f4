//! `call_upstream_tool` on `avb-upstream`: calls a tool of an upstream MCP server through this
//! worker's sessions and returns the upstream's result untouched. Retryability is decided here,
//! by what went wrong: an upstream that refused the call (unknown tool, invalid arguments) fails
//! at once; one that could not be reached is retried (the call never left); one that went away
//! or timed out mid-call is retried only when the call may run twice.

use std::sync::Arc;

use crate::non_retryable;
use avb_upstream::{UpstreamError, UpstreamHub};
use avb_workflows::errors::ErrorKind;
use avb_workflows::upstream::UpstreamCallRequest;
use avb_workflows::upstream::activity as defs;
use serde_json::Value;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub struct UpstreamActivities {
    pub hub: Arc<UpstreamHub>,
}

/// How a failed call is reported to Temporal.
fn call_failure(e: UpstreamError, request: &UpstreamCallRequest) -> ActivityError {
    match &e {
        UpstreamError::UnknownServer(_) | UpstreamError::Disabled { .. } => {
            non_retryable(ErrorKind::UnknownServer, e.to_string())
        }
        UpstreamError::Refused { .. } => non_retryable(ErrorKind::UpstreamRefused, e.to_string()),
        _ if e.may_have_run() && !request.may_retry => non_retryable(
            ErrorKind::UpstreamNotRetried,
            format!(
                "{e}. Not retried: {tool} may already have done its work, and it is not marked \
                 read-only or idempotent (list it in mcp_servers.{server}.retry_tools to retry \
                 it anyway)",
                tool = request.tool,
                server = request.server,
            ),
        ),
        _ => ActivityError::from(anyhow::Error::new(e)),
    }
}

#[activities]
impl UpstreamActivities {
    #[activity(definition = defs::CallUpstreamTool)]
    pub async fn call_upstream_tool(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: UpstreamCallRequest,
    ) -> Result<Value, ActivityError> {
        let attempt = ctx.info().attempt;
        tracing::info!(server = %request.server, tool = %request.tool, attempt, "calling upstream tool");
        let result = self
            .hub
            .call(
                &request.server,
                &request.tool,
                request.arguments.clone(),
                request.endpoint.as_deref(),
            )
            .await
            .map_err(|e| {
                tracing::warn!(server = %request.server, tool = %request.tool, attempt, error = %e, "upstream call failed");
                call_failure(e, &request)
            })?;
        serde_json::to_value(&result).map_err(|e| ActivityError::from(anyhow::Error::new(e)))
    }
}
