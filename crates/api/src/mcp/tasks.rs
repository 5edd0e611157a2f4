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

use super::AvbServer;
use avb_config::Approver;

use crate::approval::client;
use crate::core::problem::{ErrorKind, Problem};
use crate::jobs::durable::{self, ClientInput, DurableTool, Started, ToolCall};
use crate::jobs::view::{JobStatus, JobView, LookupError, cancel_job, get_job, rfc3339};

/// Suggested `tasks/get` interval: speech chunks take a few hundred ms each.
pub const POLL_INTERVAL_MS: u64 = 500;

fn new_task(job_id: &str) -> Task {
    let now = rfc3339(std::time::SystemTime::now());
    Task::new(job_id, TaskStatus::Working, now.clone(), now)
        .with_poll_interval_ms(POLL_INTERVAL_MS)
        .with_status_message("started")
}

/// The most bytes (as JSON) one tool call's arguments may have: 256 KiB.
pub const MAX_ARGUMENTS_BYTES: usize = 256 * 1024;

impl AvbServer {
    /// `tools/call`: every call of a known tool takes a token of the caller's bucket for that
    /// tool and is timed and counted; durable tools become tasks for clients that declared the
    /// extension; everything else (and every other client) gets the direct call.
    pub(crate) async fn call_tool_or_task(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let caller = self.request_caller(&context.extensions)?;
        let bound = self.bound(caller.clone());
        if !self.tool_router.map.contains_key(request.name.as_ref()) {
            bound.upstreams_checked().await;
        }
        let mounted_tool = bound.mounted(&request.name);
        let mounted = mounted_tool.is_some();
        // Metrics are the installation's: a tenant's provisioned server (its name, its tools) is
        // not shown to whoever reads them, only that such a tool was called.
        let label = match &mounted_tool {
            Some(_) => crate::upstream::metric_label(&self.state, &caller.tenant, &request.name),
            None => request.name.as_ref(),
        }
        .to_string();
        // Arguments go into Temporal's history: a call carries at most MAX_ARGUMENTS_BYTES.
        let size = request
            .arguments
            .as_ref()
            .map_or(0, |a| serde_json::to_vec(a).map_or(0, |v| v.len()));
        if size > MAX_ARGUMENTS_BYTES {
            return Err(McpError::invalid_params(
                format!(
                    "the arguments of {} are {size} bytes; a call takes at most \
                     {MAX_ARGUMENTS_BYTES}",
                    request.name
                ),
                None,
            ));
        }
        // A device tool no home of the tenant offers does not exist for it.
        if !crate::devices::offered_to(&self.state, &caller.tenant, &request.name) {
            return Err(McpError::invalid_params("tool not found", None));
        }
        // Unknown tools fall through to the router's error, uncounted.
        if !mounted && !self.tool_router.map.contains_key(request.name.as_ref()) {
            let server = self.bound(caller);
            let tcc = ToolCallContext::new(server.as_ref(), request, context);
            return server.tool_router.call(tcc).await;
        }
        let metrics = &self.state.metrics;
        let timer = metrics
            .tool_latency
            .with_label_values(&[label.as_str()])
            .start_timer();
        let tool = label;
        let response = self
            .call_known_tool(caller, mounted, request, context)
            .await;
        timer.observe_duration();
        let outcome = match &response {
            Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => "error",
            Ok(_) => "ok",
            Err(_) => "error",
        };
        metrics
            .tool_calls
            .with_label_values(&[tool.as_str(), outcome])
            .inc();
        response
    }

    async fn call_known_tool(
        &self,
        caller: crate::auth::Caller,
        mounted: bool,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let label = if mounted {
            crate::upstream::metric_label(&self.state, &caller.tenant, &request.name)
        } else {
            &request.name
        };
        if let Err(limited) = self
            .state
            .limiter
            .check_tool_as(&caller, &request.name, label)
            .await
        {
            tracing::info!(tool = %request.name, caller = %caller.rate_limit_id(), %limited, "tool call rate-limited");
            return Ok(CallToolResponse::Complete(
                Problem::from(limited).into_tool_result(),
            ));
        }
        let server = self.bound(caller);
        let server = server.as_ref();
        if mounted {
            // Tools mounted from upstream servers: the registry's mounted family.
            let family = server.state.tools.mounted().clone();
            let Some(caller) = server.caller.get() else {
                return Err(McpError::invalid_request("unauthenticated request", None));
            };
            let call = ToolCall {
                state: &server.state,
                caller,
                name: &request.name,
                arguments: request.arguments.unwrap_or_default(),
                client: client_input(&context, request.input_responses, request.request_state),
            };
            return Ok(durable::call(family.as_ref(), call, |_| Box::pin(async {})).await);
        }
        let client_has_tasks = takes_extension_tasks(&context);
        let family = server
            .state
            .tools
            .family(&request.name)
            .filter(|f| client_has_tasks && f.takes_tasks())
            .cloned();
        let Some(family) = family else {
            let tcc = ToolCallContext::new(server, request, context);
            return server.tool_router.call(tcc).await;
        };
        let task = match server.start_task(family.as_ref(), request).await {
            Ok(task) => task,
            Err(p) => return Ok(CallToolResponse::Complete(p.into_tool_result())),
        };
        Ok(
            match server
                .finished_within_shortcut(family.as_ref(), &task.task_id)
                .await
            {
                Some(result) => CallToolResponse::Complete(result),
                None => CallToolResponse::Task(CreateTaskResult::new(task)),
            },
        )
    }

    /// The result of a job that ends within the task shortcut (`mcp.task_shortcut_ms`), as the
    /// direct call renders it: a quick job answers at once instead of costing the client a
    /// poll round. `None`: still running (or the shortcut is off), the client gets the task.
    async fn finished_within_shortcut(
        &self,
        family: &dyn DurableTool,
        job_id: &str,
    ) -> Option<rmcp::model::CallToolResult> {
        let shortcut = self.state.config.mcp.task_shortcut_ms;
        if shortcut == 0 {
            return None;
        }
        // Only the result is awaited (no progress reads): the shortcut is for quick jobs, and
        // each extra Temporal read would cost them what the shortcut saves.
        let budget = std::time::Duration::from_millis(shortcut);
        let outcome = tokio::time::timeout(budget, crate::jobs::outcome(&self.state, job_id))
            .await
            .ok()?;
        Some(durable::render_outcome(family, &self.state, job_id, outcome).await)
    }

    /// Validates like the direct call, starts the job's workflow, and only then names the task.
    async fn start_task(
        &self,
        family: &dyn DurableTool,
        request: CallToolRequestParams,
    ) -> Result<Task, Problem> {
        let caller = self
            .caller
            .get()
            .ok_or_else(|| Problem::new(ErrorKind::Forbidden, "unauthenticated request"))?;
        // A task that needs approval waits for it as a job (the client answers through
        // tasks/update when it is the approver), so nothing is asked before the task exists.
        let call = ToolCall {
            state: &self.state,
            caller,
            name: &request.name,
            arguments: request.arguments.unwrap_or_default(),
            client: ClientInput::default(),
        };
        let job_id = match family.start(&call).await? {
            Started::Running { job_id, .. } | Started::Waiting { job_id, .. } => job_id,
            // Only families that always start a job take tasks.
            Started::Answered(_) | Started::NeedsInput(_) => {
                return Err(Problem::internal(format!(
                    "{} answered without a job",
                    request.name
                )));
            }
        };
        tracing::info!(job_id = %job_id, tool = %request.name, tenant = %caller.tenant, "task started");
        Ok(new_task(&job_id))
    }

    pub(crate) async fn task_state(&self, task_id: &str) -> Result<DetailedTask, McpError> {
        let state = &self.state;
        let record = get_job(state, &self.scope(), task_id)
            .await
            .map_err(task_error)?;
        let task = task_of(&record.view);
        let payload = match (record.view.status, record.outcome) {
            // Waiting for approval: when the client approves, the question is for it (answered
            // with tasks/update); otherwise a person decides and the client has nothing to answer.
            (JobStatus::InputRequired, _) => TaskPayload::InputRequired {
                input_requests: match &record.view.approval_request {
                    Some(p) if state.config.devices.approver == Approver::Client => {
                        client::requests(&p.tool, &p.arguments, &p.digest, &p.expires_at)
                    }
                    _ => Default::default(),
                },
            },
            (JobStatus::Running, _) | (_, None) => TaskPayload::Working,
            (JobStatus::Cancelled, _) => TaskPayload::Cancelled,
            (_, Some(outcome)) => {
                let family = state.tools.family_of_job(&record.view.tool).clone();
                let result =
                    durable::render_outcome(family.as_ref(), state, task_id, outcome).await;
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

    /// `tasks/update`: answers the approval question of a task waiting for the client's
    /// approval (`approver = "client"`); the decision is signalled to the job and recorded in its
    /// history. Keys the task did not ask for are ignored. Any other task asks for nothing.
    pub(crate) async fn update_task_by_id(
        &self,
        task_id: &str,
        responses: &rmcp::model::InputResponses,
    ) -> Result<(), McpError> {
        let record = get_job(&self.state, &self.scope(), task_id)
            .await
            .map_err(task_error)?;
        let pending = match (&record.view.approval_request, record.view.status) {
            (Some(p), JobStatus::InputRequired)
                if self.state.config.devices.approver == Approver::Client =>
            {
                p
            }
            (_, JobStatus::InputRequired) => {
                return Err(McpError::invalid_params(
                    format!(
                        "task {task_id} waits for a person's approval: approve_job or \
                         reject_job (a HUMAN key) decides, not tasks/update"
                    ),
                    None,
                ));
            }
            _ => {
                return Err(McpError::invalid_params(
                    format!("task {task_id} asks the client for no input"),
                    None,
                ));
            }
        };
        let Some(answer) = responses.get(client::APPROVAL_KEY) else {
            return Ok(());
        };
        let caller = self
            .caller
            .get()
            .ok_or_else(|| McpError::invalid_request("unauthenticated request", None))?;
        let decision = client::decision_of(
            caller,
            &pending.tool,
            answer,
            &pending.digest,
            "tasks/update",
        )
        .map_err(|p| McpError::invalid_params(p.message, None))?;
        tracing::info!(job_id = task_id, by = %decision.by, approved = decision.approved, "approval decided at the client");
        crate::approval::signal_decision(&self.state, task_id, decision)
            .await
            .map_err(|e| McpError::internal_error(format!("Temporal is unavailable: {e}"), None))
    }

    /// Pushes `notifications/tasks/status` (protocol 2025-11-25) on this session's stream
    /// whenever the task's status or message changes, until it ends. Only jobs in the session
    /// caller's scope are followed (any other is "not found" and ends the watch).
    pub(crate) fn follow_task(&self, task_id: String, peer: rmcp::Peer<RoleServer>) {
        let Some(caller) = self.caller.get().cloned() else {
            return;
        };
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut last = serde_json::Value::Null;
            loop {
                let Ok(record) = get_job(&state, &caller.scope(), &task_id).await else {
                    return;
                };
                let task = super::core_tasks::task_of(&record.view);
                if task != last {
                    let note = rmcp::model::CustomNotification::new(
                        super::core_tasks::TASK_STATUS,
                        Some(task.clone()),
                    );
                    let sent = peer
                        .send_notification(rmcp::model::ServerNotification::CustomNotification(
                            note,
                        ))
                        .await;
                    if sent.is_err() {
                        return;
                    }
                    last = task;
                }
                if record.outcome.is_some() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(POLL_INTERVAL_MS)).await;
            }
        });
    }

    pub(crate) async fn cancel_task_by_id(&self, task_id: &str) -> Result<(), McpError> {
        let state = &self.state;
        cancel_job(
            state,
            &self.scope(),
            task_id,
            "cancelled by the client (tasks/cancel)",
        )
        .await
        .map(|_| ())
        .map_err(task_error)
    }
}

/// Whether a `tools/call` may be answered with a task of the Tasks extension: the client
/// declared the extension on a 2026-07-28 (or later) request. The extension's tasks belong to
/// that revision; a client on an older one that declares it anyway (the MCP Inspector does,
/// on 2025-11-25) expects a plain result there, and gets one.
fn takes_extension_tasks(context: &RequestContext<RoleServer>) -> bool {
    let modern = context
        .protocol_version()
        .is_some_and(|v| !v.has_initialize());
    modern
        && context
            .client_capabilities()
            .is_some_and(|caps| caps.supports_tasks())
}

/// What the client of this request can answer in a multi round-trip call, and what its retry
/// carries: it can be asked on 2026-07-28 requests that declare elicitation.
pub(crate) fn client_input(
    context: &RequestContext<RoleServer>,
    responses: Option<rmcp::model::InputResponses>,
    request_state: Option<String>,
) -> ClientInput {
    let modern = context
        .protocol_version()
        .is_some_and(|v| !v.has_initialize());
    ClientInput {
        can_elicit: modern
            && context
                .client_capabilities()
                .is_some_and(|caps| caps.elicitation.is_some()),
        responses,
        request_state,
    }
}

fn task_of(view: &JobView) -> Task {
    let created = view.created_at.clone().unwrap_or_default();
    let updated = last_updated(view);
    Task::new(view.job_id.clone(), TaskStatus::Working, created, updated)
        .with_poll_interval_ms(POLL_INTERVAL_MS)
        .with_status_message(status_message(view))
}

/// When the job last changed: its end, else its last update, else its start.
pub(crate) fn last_updated(view: &JobView) -> String {
    view.closed_at
        .clone()
        .or_else(|| view.updated_at.clone())
        .or_else(|| view.created_at.clone())
        .unwrap_or_default()
}

/// A task's status message: the error, the approval it waits for, or its progress.
pub(crate) fn status_message(view: &JobView) -> String {
    match (&view.progress, &view.error) {
        (_, Some(e)) => format!("{}: {}", e.kind, e.message),
        _ if view.status == JobStatus::InputRequired => match &view.approval_request {
            Some(a) => format!(
                "waiting for approval until {}: approve_job(job_id, digest {}) or \
                 reject_job",
                a.expires_at, a.digest
            ),
            None => "waiting for approval".to_string(),
        },
        (Some(p), None) if view.cancel_requested => format!("cancelling; {}", p.message),
        (Some(p), None) => p.message.clone(),
        (None, None) => view.status.as_str().to_string(),
    }
}

pub(crate) fn task_error(e: LookupError) -> McpError {
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
