//! `durable_echo`: a diagnostic tool that proves the durable path works end to end (and measures
//! its latency): api → Temporal → workflow worker → activity → back. A direct call waits for
//! the job however long it takes (it is short unless the platform is broken).

use std::time::Duration;

use avb_workflows::echo::{DurableEchoWorkflow, EchoInput, EchoJob, EchoOutput};
use rmcp::model::{Tool, ToolAnnotations};
use serde_json::Value;
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowHandle};

use crate::core::auth::Caller;
use crate::core::problem::Problem;
use crate::jobs::durable::{DurableTool, Started, ToolCall, definition};
use crate::jobs::{JobError, job_start_options, map_result, new_job_id};
use crate::state::ApiState;

pub const TOOL: &str = "durable_echo";

/// The echo family.
pub struct Echo;

/// The longest `durable_echo` message, in bytes: it is a check of the durable path, and each
/// message is kept twice in Temporal's history (input and result).
pub const MAX_ECHO_BYTES: usize = 16 * 1024;

#[async_trait::async_trait]
impl DurableTool for Echo {
    fn names(&self) -> &'static [&'static str] {
        &[TOOL]
    }

    fn definitions(&self) -> Vec<Tool> {
        vec![
            definition::<EchoInput, EchoOutput>(
                TOOL,
                "Sends a message through a durable workflow and activity and returns it \
                 unchanged: a check\nthat the durable path (Temporal and the workers) is working.",
            )
            .with_annotations(ToolAnnotations::new().read_only(true).idempotent(true)),
        ]
    }

    fn wait_budget(&self, _state: &ApiState) -> Option<Duration> {
        None
    }

    async fn start(&self, call: &ToolCall<'_>) -> Result<Started, Problem> {
        let input: EchoInput = call.input()?;
        if input.message.len() > MAX_ECHO_BYTES {
            return Err(Problem::invalid(
                "message",
                format!(
                    "is {} bytes; durable_echo takes at most {MAX_ECHO_BYTES}",
                    input.message.len()
                ),
            ));
        }
        let cfg = &call.state.config.temporal;
        let (job_id, _) = start_echo(
            &call.state.temporal,
            call.caller,
            input,
            cfg.eager_start,
            cfg.echo_local_activity,
        )
        .await?;
        Ok(Started::Running {
            still_running: Problem::internal("durable_echo waits for its job").into_tool_result(),
            job_id,
        })
    }

    fn structured(
        &self,
        _state: &ApiState,
        _job_id: &str,
        output: Value,
    ) -> Result<Value, Problem> {
        Ok(output)
    }
}

pub type EchoHandle = WorkflowHandle<Client, DurableEchoWorkflow>;

/// Starts `DurableEcho`: the minimal durable round trip (workflow + activity).
/// `eager` asks the server to hand the first workflow task straight back to an in-process worker
/// sharing this client's connection (the SDK falls back silently when there is none).
pub async fn start_echo(
    client: &Client,
    caller: &Caller,
    input: EchoInput,
    eager: bool,
    local_activity: bool,
) -> Result<(String, EchoHandle), JobError> {
    let job = EchoJob {
        message: input.message,
        local_activity,
    };
    let job_id = new_job_id();
    let opts = job_start_options(TOOL, caller, &job_id, eager);
    client
        .start_workflow(DurableEchoWorkflow::run, job, opts)
        .await
        .map_err(|e| JobError::Start(e.to_string()))?;
    let handle = client.get_workflow_handle::<DurableEchoWorkflow>(job_id.clone());
    Ok((job_id, handle))
}

/// Runs `DurableEcho` to completion (benchmarks of the durable path).
pub async fn run_echo(
    client: &Client,
    caller: &Caller,
    input: EchoInput,
    eager: bool,
    local_activity: bool,
) -> Result<(String, EchoOutput), JobError> {
    let (job_id, handle) = start_echo(client, caller, input, eager, local_activity).await?;
    let out = map_result(handle.get_result(WorkflowGetResultOptions::default()).await)?;
    Ok((job_id, out))
}
