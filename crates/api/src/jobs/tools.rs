//! `get_job`, `list_jobs`, `cancel_job`: find a durable job again after the call that started it
//! returned (or the client went away), follow it, stop it.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::core::problem::Problem;
use crate::jobs::durable::render_outcome;
use crate::jobs::list::{JobFilter, JobPage, list_jobs};
use crate::jobs::view::{JobView, LookupError, cancel_job, get_job};
use crate::mcp::AvbServer;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobIdInput {
    /// The job id a tool call or task returned, e.g. `job_3f2a…`.
    pub job_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelJobInput {
    pub job_id: String,
    /// Why, recorded in Temporal (shown in its UI).
    pub reason: Option<String>,
}

fn lookup_error(e: LookupError) -> CallToolResult {
    Problem::from(e).with_field("job_id").into_tool_result()
}

fn view_result(view: &JobView, mut content: Vec<ContentBlock>) -> CallToolResult {
    let progress = view
        .progress
        .as_ref()
        .map(|p| format!(": {}", p.message))
        .unwrap_or_default();
    let error = view
        .error
        .as_ref()
        .map(|e| format!(": {}: {}", e.kind, e.message))
        .unwrap_or_default();
    content.push(ContentBlock::text(format!(
        "Job {} ({}) is {}{progress}{error}.",
        view.job_id,
        view.tool,
        view.status.as_str()
    )));
    let mut r = CallToolResult::success(content);
    r.structured_content = serde_json::to_value(view).ok();
    r
}

#[tool_router(router = job_tools, vis = "pub(crate)")]
impl AvbServer {
    /// Status, progress and, once finished, the result of a job (for speech: the audio, as the
    /// generate_speech call itself returns it).
    #[tool(
        name = "get_job",
        output_schema = schema_for_output::<JobView>(),
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn get_job_tool(&self, Parameters(input): Parameters<JobIdInput>) -> CallToolResult {
        let state = &self.state;
        match get_job(state, &self.scope(), &input.job_id).await {
            Ok(record) => {
                let content = match record.outcome {
                    Some(Ok(out)) => {
                        let family = state.tools.family_of_job(&record.view.tool).clone();
                        render_outcome(family.as_ref(), state, &record.view.job_id, Ok(out))
                            .await
                            .content
                    }
                    _ => Vec::new(),
                };
                view_result(&record.view, content)
            }
            Err(e) => lookup_error(e),
        }
    }

    /// Your jobs (an AGENT key's own, a HUMAN key's whole tenant), newest first, filtered by
    /// tool, status, creation time and owner; paginated.
    #[tool(
        name = "list_jobs",
        output_schema = schema_for_output::<JobPage>(),
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn list_jobs_tool(&self, Parameters(filter): Parameters<JobFilter>) -> CallToolResult {
        let state = &self.state;
        match list_jobs(state, &self.scope(), &filter).await {
            Ok(page) => {
                let mut lines: Vec<String> = page
                    .jobs
                    .iter()
                    .map(|j| format!("{} {} {}", j.job_id, j.tool, j.status.as_str()))
                    .collect();
                if lines.is_empty() {
                    lines.push("No jobs match.".into());
                }
                if let Some(t) = &page.next_page_token {
                    lines.push(format!("More: page_token={t}"));
                }
                let mut r = CallToolResult::success(vec![ContentBlock::text(lines.join("\n"))]);
                r.structured_content = serde_json::to_value(&page).ok();
                r
            }
            Err(e) => Problem::from(e).into_tool_result(),
        }
    }

    /// Stops a running job: the worker stops after the chunk in progress and the job ends as
    /// cancelled (no result, nothing billed). Cancelling a cancelled job is a no-op.
    #[tool(
        name = "cancel_job",
        output_schema = schema_for_output::<JobView>(),
        annotations(destructive_hint = true, idempotent_hint = true)
    )]
    async fn cancel_job_tool(
        &self,
        Parameters(input): Parameters<CancelJobInput>,
    ) -> CallToolResult {
        let state = &self.state;
        if let Err(p) = super::check_reason(input.reason.as_deref()) {
            return p.into_tool_result();
        }
        let reason = input
            .reason
            .as_deref()
            .unwrap_or("cancelled by the caller (cancel_job)");
        match cancel_job(state, &self.scope(), &input.job_id, reason).await {
            Ok(record) => view_result(&record.view, Vec::new()),
            Err(e) => lookup_error(e),
        }
    }
}
