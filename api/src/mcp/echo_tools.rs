//! `durable_echo`: a diagnostic tool that proves the durable path works end to end (and measures
//! its latency): api → Temporal → workflow worker → activity → back.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};

use super::AvbServer;
use crate::jobs;
use avb_workflows::echo_workflow::{EchoInput, EchoOutput};

#[tool_router(router = echo_tools, vis = "pub(crate)")]
impl AvbServer {
    /// Sends a message through a durable workflow and activity and returns it unchanged: a check
    /// that the durable path (Temporal and the workers) is working.
    #[tool(
        name = "durable_echo",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn durable_echo(
        &self,
        Parameters(input): Parameters<EchoInput>,
    ) -> Result<Json<EchoOutput>, String> {
        let state = &self.state;
        let timer = state
            .metrics
            .tool_latency
            .with_label_values(&["durable_echo"])
            .start_timer();
        let result = jobs::run_echo(
            &state.temporal,
            state.tenant(),
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
        result
            .map(|(_, out)| Json(out))
            .map_err(|e| format!("durable_echo failed: {e}"))
    }
}
