//! A durable tool is one unit: its family implements [`DurableTool`] once (start, read a
//! finished job, render it), and the [`Registry`] (built once, in `crate::registry`) is what every
//! path reads: `tools/list` and direct calls (the registry's routes), MCP tasks, `get_job` and
//! `list_jobs`, the REST jobs, and the metrics. A direct call is start + wait + render; a task
//! is start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::model::{CallToolResponse, CallToolResult, JsonObject, Tool};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{JobError, wait};
use crate::auth::Caller;
use crate::core::problem::Problem;
use crate::state::ApiState;

// How far a running job is (from its family's heartbeats), in every view of the job.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct JobProgress {
    /// Units of work done (for speech: chunks synthesized).
    pub done: u32,
    /// Units in the whole job, once known.
    pub total: Option<u32>,
    pub message: String,
    /// Attempt of the running activity: above 1 after a worker crash or a retried fault.
    pub attempt: u32,
}

/// One call of a durable tool: who calls, what, with which arguments.
pub struct ToolCall<'a> {
    pub state: &'a ApiState,
    pub caller: &'a Caller,
    /// The tool name as called (a mounted upstream tool's mounted name).
    pub name: &'a str,
    pub arguments: JsonObject,
    /// What the client can answer, and answered, on this request (multi round-trip input).
    pub client: ClientInput,
}

/// A client's side of a multi round-trip call: whether it can be asked (a 2026-07-28 request
/// that declares elicitation), and what its retry carries from the previous round.
#[derive(Debug, Clone, Default)]
pub struct ClientInput {
    pub can_elicit: bool,
    pub responses: Option<rmcp::model::InputResponses>,
    pub request_state: Option<String>,
}

impl ToolCall<'_> {
    pub fn tenant(&self) -> &str {
        &self.caller.tenant
    }

    /// The arguments as the tool's input type; a mismatch is `InvalidInput` naming the tool.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        serde_json::from_value(Value::Object(self.arguments.clone())).map_err(|e| {
            Problem::new(
                crate::core::problem::ErrorKind::InvalidInput,
                format!("invalid arguments for {}: {e}", self.name),
            )
        })
    }
}

/// What starting a call came to.
pub enum Started {
    /// The job runs: a direct call waits for it (answering `still_running` if the wait budget
    /// runs out first); a task hands out its id.
    Running {
        job_id: String,
        still_running: CallToolResult,
    },
    /// The job waits for a person (an approval): a direct call answers `answer` at once.
    Waiting {
        job_id: String,
        answer: CallToolResult,
    },
    /// Answered without a job (an upstream server configured for the fast path).
    Answered(CallToolResult),
    /// Nothing started: the client must answer first (`input_required`), then retry.
    NeedsInput(rmcp::model::InputRequiredResult),
}

/// A family of durable tools: how a call starts, and how a finished job of the family reads.
/// Implementations live in the family's folder; `crate::registry` lists them.
#[async_trait::async_trait]
pub trait DurableTool: Send + Sync {
    /// The tools of this family whose calls are jobs (their jobs' `AvbTool`).
    fn names(&self) -> &'static [&'static str];

    /// The MCP definitions (name, description, input and output schema) of `names`.
    fn definitions(&self) -> Vec<Tool>;

    /// Whether a client that supports MCP tasks gets a task for a call.
    fn takes_tasks(&self) -> bool {
        true
    }

    /// How long a direct call waits before answering with a handle to the job; `None` waits
    /// until the job ends (short diagnostic jobs).
    fn wait_budget(&self, state: &ApiState) -> Option<Duration> {
        Some(state.config.wait_budget())
    }

    /// Validates (bad input never starts a job), prices and starts the job's workflow.
    async fn start(&self, call: &ToolCall<'_>) -> Result<Started, Problem>;

    /// The job's progress, from the heartbeat of its running activity, if the family reports
    /// any.
    fn progress(&self, _heartbeat: &Value) -> Option<JobProgress> {
        None
    }

    /// The finished job's structured result: REST `result`, `get_job`'s `result`, and the
    /// direct call's `structuredContent`. `output` is what the workflow returned.
    fn structured(&self, state: &ApiState, job_id: &str, output: Value) -> Result<Value, Problem>;

    /// The MCP result of a finished job, exactly as a direct call returns it (a task's result,
    /// `get_job`'s content). By default, the structured result and one line.
    async fn render(&self, state: &ApiState, job_id: &str, output: Value) -> CallToolResult {
        match self.structured(state, job_id, output) {
            Ok(value) => CallToolResult::structured(value),
            Err(p) => p.into_tool_result(),
        }
    }
}

/// Reads a workflow's result as the family's type.
pub fn output_as<T: DeserializeOwned>(output: Value) -> Result<T, Problem> {
    serde_json::from_value(output)
        .map_err(|e| Problem::internal(format!("the job's result does not parse: {e}")))
}

/// The MCP definition of a tool whose arguments are `I` and whose structured result is `O`
/// (the same schemas rmcp's `#[tool]` builds).
pub fn definition<I, O>(name: &'static str, description: &'static str) -> Tool
where
    I: schemars::JsonSchema + 'static,
    O: schemars::JsonSchema + 'static,
{
    use rmcp::handler::server::common::{schema_for_input, schema_for_output};
    // An input type whose schema is not an object is a bug caught by the registry's test.
    let input = schema_for_input::<I>().unwrap_or_default();
    Tool::new(name, description, input).with_raw_output_schema(schema_for_output::<O>())
}

/// The families, by tool; the family of jobs whose tool no family names (tools mounted from
/// upstream servers) is `mounted`.
pub struct Registry {
    families: Vec<Arc<dyn DurableTool>>,
    by_tool: HashMap<&'static str, Arc<dyn DurableTool>>,
    mounted: Arc<dyn DurableTool>,
}

impl Registry {
    /// `families` in listing order; `mounted` serves the jobs of mounted upstream tools.
    pub fn new(families: Vec<Arc<dyn DurableTool>>, mounted: Arc<dyn DurableTool>) -> Self {
        let mut by_tool = HashMap::new();
        for f in families.iter().chain([&mounted]) {
            for name in f.names() {
                by_tool.insert(*name, f.clone());
            }
        }
        Self {
            families,
            by_tool,
            mounted,
        }
    }

    /// The family of one of our durable tools.
    pub fn family(&self, tool: &str) -> Option<&Arc<dyn DurableTool>> {
        self.by_tool.get(tool)
    }

    /// The family that reads a job of `tool` (a mounted tool's, for names no family has).
    pub fn family_of_job(&self, tool: &str) -> &Arc<dyn DurableTool> {
        self.by_tool.get(tool).unwrap_or(&self.mounted)
    }

    /// The family that calls tools mounted from upstream servers.
    pub fn mounted(&self) -> &Arc<dyn DurableTool> {
        &self.mounted
    }

    /// Every family, in listing order (the mounted tools' last).
    pub fn families(&self) -> impl Iterator<Item = &Arc<dyn DurableTool>> {
        self.families.iter().chain([&self.mounted])
    }

    /// Every tool whose calls are jobs, for `list_jobs` filters.
    pub fn job_tools(&self) -> Vec<&'static str> {
        self.families()
            .flat_map(|f| f.names().iter().copied())
            .collect()
    }

    /// Tools that become tasks for clients that support them.
    pub fn task_tools(&self) -> Vec<&'static str> {
        self.families()
            .filter(|f| f.takes_tasks())
            .flat_map(|f| f.names().iter().copied())
            .collect()
    }
}

/// A direct call of a durable tool: start, wait (reporting progress), render. The job's
/// outcome is counted per tool.
pub async fn call(
    family: &dyn DurableTool,
    call: ToolCall<'_>,
    on_progress: impl FnMut(JobProgress) -> BoxFuture<'static, ()> + Send,
) -> CallToolResponse {
    let state = call.state;
    let (job_id, still_running) = match family.start(&call).await {
        Err(p) => return p.into_tool_result().into(),
        Ok(Started::Answered(r)) => return r.into(),
        Ok(Started::Waiting { answer, .. }) => return answer.into(),
        Ok(Started::NeedsInput(ask)) => return ask.into(),
        Ok(Started::Running {
            job_id,
            still_running,
        }) => (job_id, still_running),
    };
    let waited = wait(
        state,
        &job_id,
        family.wait_budget(state),
        |hb| family.progress(hb),
        on_progress,
    )
    .await;
    let outcome = match waited {
        Ok(None) => return still_running.into(),
        Ok(Some(output)) => Ok(output),
        Err(e) => Err(e),
    };
    state
        .metrics
        .job_outcomes
        .with_label_values(&[
            crate::upstream::metric_label(state, call.tenant(), call.name),
            outcome_label(&outcome),
        ])
        .inc();
    render_outcome(family, state, &job_id, outcome).await.into()
}

fn outcome_label(outcome: &Result<Value, JobError>) -> &'static str {
    match outcome {
        Ok(_) => "completed",
        Err(JobError::Cancelled) => "cancelled",
        Err(JobError::Terminated) => "terminated",
        Err(_) => "failed",
    }
}

/// The MCP result of a finished job: its family's rendering, or the failure as a problem that
/// names the job.
pub async fn render_outcome(
    family: &dyn DurableTool,
    state: &ApiState,
    job_id: &str,
    outcome: Result<Value, JobError>,
) -> CallToolResult {
    match outcome {
        Ok(output) => family.render(state, job_id, output).await,
        Err(e) => Problem::from(&e)
            .with_details(serde_json::json!({ "job_id": job_id }))
            .into_tool_result(),
    }
}
