//! `durable_echo`: a diagnostic tool that proves the durable path works end to end (and measures
//! its latency): api → Temporal → workflow worker → activity → back.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use serde_json::json;

use super::AvbServer;
use super::results::{job_result, tool_error};
use crate::jobs;
use crate::jobs::output::JobOutput;
use crate::jobs::view::failure_of;
use avb_workflows::echo_workflow::{EchoInput, EchoOutput};

#[tool_router(router = echo_tools, vis = "pub(crate)")]
impl AvbServer {
    /// Sends a message through a durable workflow and activity and returns it unchanged: a check
    /// that the durable path (Temporal and the workers) is working.
    #[tool(
        name = "durable_echo",
        output_schema = schema_for_output::<EchoOutput>(),
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn durable_echo(&self, Parameters(input): Parameters<EchoInput>) -> CallToolResult {
        let state = &self.state;
        let timer = state
            .metrics
            .tool_latency
            .with_label_values(&["durable_echo"])
            .start_timer();
        let result = jobs::run_echo(
            &state.temporal,
            self.tenant(),
            input,
            state.config.temporal.eager_start,
            state.config.temporal.echo_local_activity,
        )
        .await;
        timer.observe_duration();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        state
            .metrics
            .tool_calls
            .with_label_values(&["durable_echo", outcome])
            .inc();
        state
            .metrics
            .job_outcomes
            .with_label_values(&[
                "durable_echo",
                if result.is_ok() {
                    "completed"
                } else {
                    "failed"
                },
            ])
            .inc();
        match result {
            Ok((job_id, out)) => job_result(state, &job_id, Ok(JobOutput::Echo(out))).await,
            Err(e) => {
                let f = failure_of(&e);
                tool_error(
                    &f.kind,
                    None,
                    &format!("durable_echo failed: {}", f.message),
                    json!({}),
                )
            }
        }
    }
}
