//! MCP Tasks (SEP-2663) served from Temporal: a task is a job. The task id is the job id (the
//! workflow id), handed out only after the workflow start succeeded, so a task survives api
//! restarts and is visible from every api replica; `tasks/get` reads the workflow, and a
//! completed task carries exactly the result the direct call returns.

use rmcp::ErrorData as McpError;
use rmcp::RoleServer;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CreateTaskResult, DetailedTask, JsonObject, Task,
    TaskPayload, TaskStatus,
};
use rmcp::service::RequestContext;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::AvbServer;
use super::results::{job_result, tool_error};
use crate::jobs;
use crate::jobs::view::{JobStatus, JobView, LookupError, cancel_job, get_job, rfc3339};
use avb_workflows::echo_workflow::EchoInput;
use avb_workflows::speech::GenerateSpeechInput;

/// Tools that run as tasks when the client declares the tasks extension.
pub const TASK_TOOLS: &[&str] = &[
    "generate_speech",
    "durable_echo",
    "smart_home_control",
    "call_service",
];
/// Suggested `tasks/get` interval: speech chunks take a few hundred ms each.
pub const POLL_INTERVAL_MS: u64 = 500;

fn args<T: DeserializeOwned>(
    request: &CallToolRequestParams,
) -> Result<T, rmcp::model::CallToolResult> {
    let value = serde_json::Value::Object(request.arguments.clone().unwrap_or_default());
    serde_json::from_value(value).map_err(|e| {
        tool_error(
            "InvalidInput",
            None,
            &format!("invalid arguments for {}: {e}", request.name),
            json!({}),
        )
    })
}

fn new_task(job_id: &str) -> Task {
    let now = rfc3339(std::time::SystemTime::now());
    Task::new(job_id, TaskStatus::Working, now.clone(), now)
        .with_poll_interval_ms(POLL_INTERVAL_MS)
        .with_status_message("started")
}

impl AvbServer {
    /// `tools/call`: task-capable tools become tasks for clients that declared the extension;
    /// everything else (and every other client) gets the direct call.
    pub(crate) async fn call_tool_or_task(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let caller = self.request_caller(&context.extensions)?;
        let mounted = self.mounted(&request.name);
        // Every tools/call (direct or as a task) of a known tool takes a token of the caller's
        // bucket for that tool; unknown tools fall through to the router's error.
        if (mounted.is_some() || self.tool_router.map.contains_key(request.name.as_ref()))
            && let Err(limited) = self.state.limiter.check_tool(&caller, &request.name).await
        {
            tracing::info!(tool = %request.name, caller = %caller.rate_limit_id(), %limited, "tool call rate-limited");
            return Ok(CallToolResponse::Complete(tool_error(
                "RateLimited",
                None,
                &limited.to_string(),
                limited.details(),
            )));
        }
        let server = self.bound(caller);
        let server = server.as_ref();
        if let Some(tool) = mounted {
            let result = server
                .call_mounted(&request.name, &tool, request.arguments)
                .await;
            return Ok(CallToolResponse::Complete(result));
        }
        let client_has_tasks = context
            .client_capabilities()
            .is_some_and(|caps| caps.supports_tasks());
        if !client_has_tasks || !TASK_TOOLS.contains(&request.name.as_ref()) {
            let tcc = ToolCallContext::new(server, request, context);
            return server.tool_router.call(tcc).await;
        }
        Ok(match server.start_task(&request).await {
            Ok(task) => CallToolResponse::Task(CreateTaskResult::new(task)),
            Err(result) => CallToolResponse::Complete(result),
        })
    }

    /// Validates like the direct call, starts the job's workflow, and only then names the task.
    async fn start_task(
        &self,
        request: &CallToolRequestParams,
    ) -> Result<Task, rmcp::model::CallToolResult> {
        let state = &self.state;
        let tenant = self.tenant();
        if matches!(request.name.as_ref(), "smart_home_control" | "call_service") {
            let arguments = super::device_tools::command_arguments(request)?;
            let started = crate::devices::start_command(state, tenant, &request.name, arguments)
                .await
                .map_err(|e| super::device_tools::error_result(&e))?;
            tracing::info!(job_id = %started.job_id, tool = %request.name, tenant, "task started");
            return Ok(new_task(&started.job_id));
        }
        let started = if request.name == "generate_speech" {
            let input: GenerateSpeechInput = args(request)?;
            self.check_speech_input(&input)?;
            let billing = jobs::speech_billing(&state.config.billing, &input);
            jobs::start_speech(&state.temporal, tenant, input, billing)
                .await
                .map(|(id, _)| id)
        } else {
            let input: EchoInput = args(request)?;
            let cfg = &state.config.temporal;
            jobs::start_echo(
                &state.temporal,
                tenant,
                input,
                cfg.eager_start,
                cfg.echo_local_activity,
            )
            .await
            .map(|(id, _)| id)
        };
        let job_id =
            started.map_err(|e| tool_error("Unavailable", None, &e.to_string(), json!({})))?;
        tracing::info!(job_id = %job_id, tool = %request.name, tenant, "task started");
        Ok(new_task(&job_id))
    }

    pub(crate) async fn task_state(&self, task_id: &str) -> Result<DetailedTask, McpError> {
        let state = &self.state;
        let record = get_job(state, self.tenant(), task_id)
            .await
            .map_err(task_error)?;
        let task = task_of(&record.view);
        let payload = match (record.view.status, record.outcome) {
            // A person (not the client) must approve: nothing for the client to answer.
            (JobStatus::InputRequired, _) => TaskPayload::InputRequired {
                input_requests: Default::default(),
            },
            (JobStatus::Running, _) | (_, None) => TaskPayload::Working,
            (JobStatus::Cancelled, _) => TaskPayload::Cancelled,
            (_, Some(outcome)) => {
                let result = job_result(state, task_id, outcome).await;
                let object: JsonObject = match serde_json::to_value(result) {
                    Ok(serde_json::Value::Object(o)) => o,
                    _ => {
                        return Err(McpError::internal_error(
                            "cannot encode the task result",
                            None,
                        ));
                    }
                };
                TaskPayload::Completed { result: object }
            }
        };
        Ok(DetailedTask::new(task, payload))
    }

    pub(crate) async fn cancel_task_by_id(&self, task_id: &str) -> Result<(), McpError> {
        let state = &self.state;
        cancel_job(
            state,
            self.tenant(),
            task_id,
            "cancelled by the client (tasks/cancel)",
        )
        .await
        .map(|_| ())
        .map_err(task_error)
    }
}

fn task_of(view: &JobView) -> Task {
    let created = view.created_at.clone().unwrap_or_default();
    let updated = view
        .closed_at
        .clone()
        .or_else(|| view.updated_at.clone())
        .unwrap_or_else(|| created.clone());
    let message = match (&view.progress, &view.error) {
        (_, Some(e)) => format!("{}: {}", e.kind, e.message),
        _ if view.status == JobStatus::InputRequired => match &view.approval_request {
            Some(a) => format!(
                "waiting for a person's approval until {}: approve_job(job_id, digest {}) or \
                 reject_job",
                a.expires_at, a.digest
            ),
            None => "waiting for a person's approval".to_string(),
        },
        (Some(p), None) if view.cancel_requested => format!("cancelling; {}", p.message),
        (Some(p), None) => p.message.clone(),
        (None, None) => view.status.as_str().to_string(),
    };
    Task::new(view.job_id.clone(), TaskStatus::Working, created, updated)
        .with_poll_interval_ms(POLL_INTERVAL_MS)
        .with_status_message(message)
}

fn task_error(e: LookupError) -> McpError {
    match e {
        LookupError::NotFound(id) => McpError::invalid_params(format!("task {id} not found"), None),
        LookupError::AlreadyFinished { job_id, status } => McpError::invalid_params(
            format!(
                "task {job_id} is already {}; it cannot be cancelled",
                status.as_str()
            ),
            None,
        ),
        LookupError::Unavailable(m) => {
            McpError::internal_error(format!("Temporal is unavailable: {m}"), None)
        }
    }
}
