//! `approve_job` / `reject_job` (HUMAN callers only).

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::core::problem::{ErrorKind, Problem};
use crate::jobs::view::JobView;
use crate::mcp::AvbServer;
use crate::mcp::results::structured;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveInput {
    pub job_id: String,
    /// The `digest` of the job's `approval_request`: the approval covers exactly those
    /// arguments.
    pub digest: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectInput {
    pub job_id: String,
    /// Why, recorded with the decision.
    pub reason: Option<String>,
}

impl AvbServer {
    /// The session's caller decides on `job_id`; the result names the job and the decision.
    async fn decide_for_session(
        &self,
        job_id: &str,
        approved: bool,
        digest: Option<String>,
        reason: Option<String>,
    ) -> CallToolResult {
        let Some(caller) = self.caller_of_session() else {
            return Problem::new(ErrorKind::Forbidden, "no caller").into_tool_result();
        };
        let verb = if approved { "approved" } else { "rejected" };
        match super::decide(&self.state, &caller, job_id, approved, digest, reason).await {
            Ok(view) => structured(format!("Job {}: {verb}.", view.job_id), &view),
            Err(p) => p.into_tool_result(),
        }
    }
}

#[tool_router(router = approval_tools, vis = "pub(crate)")]
impl AvbServer {
    /// Approve a job waiting for approval (status input_required), naming the digest of the
    /// arguments you approve. HUMAN keys only; recorded with who and when.
    #[tool(
        name = "approve_job",
        output_schema = schema_for_output::<JobView>(),
        annotations(idempotent_hint = true)
    )]
    async fn approve_job(&self, Parameters(input): Parameters<ApproveInput>) -> CallToolResult {
        self.decide_for_session(&input.job_id, true, Some(input.digest), None)
            .await
    }

    /// Reject a job waiting for approval: it ends without sending anything. HUMAN keys only.
    #[tool(
        name = "reject_job",
        output_schema = schema_for_output::<JobView>(),
        annotations(idempotent_hint = true)
    )]
    async fn reject_job(&self, Parameters(input): Parameters<RejectInput>) -> CallToolResult {
        self.decide_for_session(&input.job_id, false, None, input.reason)
            .await
    }
}
