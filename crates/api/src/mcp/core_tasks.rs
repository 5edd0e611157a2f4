//! MCP tasks of protocol revision 2025-11-25 (the revision's own, experimental tasks): the server
//! declares `capabilities.tasks`, durable tools declare `execution.taskSupport: "optional"`, and
//! a client that asks for a task (`params.task` on `tools/call`) gets `CreateTaskResult {task}`,
//! follows it with `tasks/get`, takes the result with `tasks/result`, lists with `tasks/list` and
//! cancels with `tasks/cancel`. A client that does not ask gets the plain result, as always.
//!
//! rmcp models only the 2026-07-28 Tasks extension (its `tools/call` drops `params.task`, its
//! types have no `capabilities.tasks` nor `execution`), so this layer answers these requests in
//! front of it on `/mcp`, over the same jobs: a task is a job, read from Temporal, so every api
//! replica answers for every task. 2026-07-28 requests never reach this code.

use std::sync::Arc;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{ClientJsonRpcMessage, ClientNotification, CustomNotification};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::{Value, json};

use super::tasks::{POLL_INTERVAL_MS, last_updated, status_message};
use crate::auth::Caller;
use crate::core::problem::Problem;
use crate::jobs::durable::{self, ClientInput, Started, ToolCall};
use crate::jobs::list::{JobFilter, list_jobs};
use crate::jobs::view::{JobStatus, JobView, LookupError, cancel_job, get_job, rfc3339};
use crate::state::ApiState;

/// The protocol revision whose tasks these are.
pub const REVISION: &str = "2025-11-25";
/// `_meta` key that ties a task's result to its task.
const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";
/// What `initialize` adds to the server's capabilities on this revision.
fn capability() -> Value {
    json!({ "list": {}, "cancel": {}, "requests": { "tools": { "call": {} } } })
}
/// MCP bodies are small; rmcp refuses more than this too.
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The client notification this layer hands a session so that its server follows a task and
/// pushes `notifications/tasks/status` on the session's stream (see `AvbServer::follow_task`).
pub const FOLLOW_TASK: &str = "notifications/agentvoicebox/follow_task";
/// This revision's task status notification.
pub const TASK_STATUS: &str = "notifications/tasks/status";

/// What the layer needs: the api, and the sessions (to reach the session a task was created on).
#[derive(Clone)]
pub struct CoreTasks {
    pub state: ApiState,
    pub sessions: Arc<LocalSessionManager>,
}

/// The middleware on `/mcp`.
pub async fn layer(State(layer): State<CoreTasks>, request: Request, next: Next) -> Response {
    let state = layer.state.clone();
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let header = request.headers().get("mcp-protocol-version");
    let on_revision = header.is_some_and(|v| v.as_bytes() == REVISION.as_bytes());
    // Requests of another revision (every 2026-07-28 request names its own) pass untouched:
    // only this revision's requests, and `initialize` (which carries no header), are read.
    if header.is_some() && !on_revision {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, BODY_LIMIT).await else {
        return Problem::invalid("body", format!("is larger than {BODY_LIMIT} bytes"))
            .into_response();
    };
    let message: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let method = message["method"].as_str().unwrap_or_default();
    let params = &message["params"];
    let caller = parts.extensions.get::<Caller>().cloned();
    let forward = |parts, bytes: Bytes| next.run(Request::from_parts(parts, Body::from(bytes)));
    match method {
        "initialize" if params["protocolVersion"] == REVISION => {
            rewrite_result(forward(parts, bytes).await, |result| {
                result["capabilities"]["tasks"] = capability();
            })
            .await
        }
        "tools/list" if on_revision => {
            let response = forward(parts, bytes).await;
            rewrite_result(response, |result| {
                if let Some(tools) = result["tools"].as_array_mut() {
                    tools.iter_mut().for_each(declare_task_support);
                }
            })
            .await
        }
        "tools/call" if on_revision && params["task"].is_object() => {
            let name = params["name"].as_str().unwrap_or_default();
            match (state.tools.family(name), caller) {
                (Some(family), Some(caller)) if family.takes_tasks() => {
                    let answer = create(&state, &caller, family.as_ref(), params).await;
                    if let (Ok(created), Some(session)) = (&answer, session_of(&parts)) {
                        follow(&layer.sessions, &session, &created["task"]["taskId"]).await;
                    }
                    reply(&message["id"], answer)
                }
                // Not a task tool: answered as usual (rmcp ignores `params.task`).
                _ => forward(parts, bytes).await,
            }
        }
        "tasks/get" | "tasks/result" | "tasks/list" | "tasks/cancel" if on_revision => {
            let Some(caller) = caller else {
                return forward(parts, bytes).await;
            };
            let answer = match method {
                "tasks/get" => get(&state, &caller, params).await,
                "tasks/result" => result(&state, &caller, params).await,
                "tasks/list" => list(&state, &caller, params).await,
                _ => cancel(&state, &caller, params).await,
            };
            reply(&message["id"], answer)
        }
        _ => forward(parts, bytes).await,
    }
}

fn session_of(parts: &axum::http::request::Parts) -> Option<String> {
    parts
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// Asks the session's server to push the task's status changes on the session's stream: the
/// server, not this layer, holds the session's way to the client.
async fn follow(sessions: &LocalSessionManager, session: &str, task_id: &Value) {
    if !task_id.is_string() {
        return;
    }
    let handle = sessions.sessions.read().await.get(session).cloned();
    let Some(handle) = handle else {
        return;
    };
    let note = CustomNotification::new(FOLLOW_TASK, Some(json!({ "taskId": task_id })));
    let message = ClientJsonRpcMessage::notification(ClientNotification::CustomNotification(note));
    if let Err(e) = handle.push_message(message, None).await {
        tracing::debug!(session, error = %e, "cannot follow the task on its session");
    }
}

/// A durable tool that takes tasks (marked in `_meta` under the extension's id) declares it the
/// way this revision reads it.
fn declare_task_support(tool: &mut Value) {
    let support = tool["_meta"][rmcp::model::TASKS_EXTENSION_ID]["taskSupport"].clone();
    if support.is_string() {
        tool["execution"] = json!({ "taskSupport": support });
    }
}

/// A JSON-RPC error: code and message.
type RpcError = (i64, String);

fn invalid_params(message: impl Into<String>) -> RpcError {
    (-32602, message.into())
}

fn reply(id: &Value, answer: Result<Value, RpcError>) -> Response {
    let body = match answer {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err((code, message)) => {
            json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
        }
    };
    axum::Json(body).into_response()
}

fn task_id(params: &Value) -> Result<&str, RpcError> {
    params["taskId"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid_params("params.taskId is required (a string)"))
}

fn lookup_error(e: LookupError) -> RpcError {
    match e {
        LookupError::NotFound(id) => invalid_params(format!("task {id} not found")),
        LookupError::AlreadyFinished { job_id, status } => invalid_params(format!(
            "task {job_id} is already {}; it cannot be cancelled",
            status.as_str()
        )),
        LookupError::Unavailable(m) => (-32603, format!("Temporal is unavailable: {m}")),
    }
}

fn status_of(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Running => "working",
        JobStatus::InputRequired => "input_required",
        JobStatus::Completed => "completed",
        JobStatus::Cancelled => "cancelled",
        JobStatus::Failed | JobStatus::Terminated | JobStatus::TimedOut => "failed",
    }
}

/// This revision's `Task`.
fn task(id: &str, status: &str, message: &str, created: &str, updated: &str) -> Value {
    json!({
        "taskId": id,
        "status": status,
        "statusMessage": message,
        "createdAt": created,
        "lastUpdatedAt": updated,
        // Jobs stay readable as long as Temporal keeps their history.
        "ttl": null,
        "pollInterval": POLL_INTERVAL_MS,
    })
}

/// A job as this revision's `Task`.
pub(crate) fn task_of(view: &JobView) -> Value {
    task(
        &view.job_id,
        status_of(view.status),
        &status_message(view),
        view.created_at.as_deref().unwrap_or_default(),
        &last_updated(view),
    )
}

/// `tools/call` with `params.task`: validated, priced and started like the direct call; the
/// task is named only once its workflow started.
async fn create(
    state: &ApiState,
    caller: &Caller,
    family: &dyn durable::DurableTool,
    params: &Value,
) -> Result<Value, RpcError> {
    let name = params["name"].as_str().unwrap_or_default();
    if let Err(limited) = state.limiter.check_tool(caller, name).await {
        return Ok(tool_error(Problem::from(limited)));
    }
    let call = ToolCall {
        state,
        caller,
        name,
        arguments: params["arguments"].as_object().cloned().unwrap_or_default(),
        // A task waits for its approval as a job; nothing is asked of the client first.
        client: ClientInput::default(),
    };
    let job_id = match family.start(&call).await {
        Ok(Started::Running { job_id, .. } | Started::Waiting { job_id, .. }) => job_id,
        Ok(Started::Answered(_) | Started::NeedsInput(_)) => {
            return Err((-32603, format!("{name} answered without a job")));
        }
        // Bad input and refusals are the tool's errors, as on a direct call.
        Err(problem) => return Ok(tool_error(problem)),
    };
    tracing::info!(job_id = %job_id, tool = name, tenant = %caller.tenant, revision = REVISION, "task started");
    let now = rfc3339(std::time::SystemTime::now());
    Ok(json!({ "task": task(&job_id, "working", "started", &now, &now) }))
}

fn tool_error(problem: Problem) -> Value {
    serde_json::to_value(problem.into_tool_result()).unwrap_or_default()
}

async fn get(state: &ApiState, caller: &Caller, params: &Value) -> Result<Value, RpcError> {
    let record = get_job(state, &caller.scope(), task_id(params)?)
        .await
        .map_err(lookup_error)?;
    Ok(task_of(&record.view))
}

/// `tasks/result`: waits until the job ends, then answers what the direct call would have.
async fn result(state: &ApiState, caller: &Caller, params: &Value) -> Result<Value, RpcError> {
    let id = task_id(params)?;
    // The lookup also checks that the task is in the caller's scope.
    let record = get_job(state, &caller.scope(), id)
        .await
        .map_err(lookup_error)?;
    let family = state.tools.family_of_job(&record.view.tool).clone();
    let outcome = match record.outcome {
        Some(outcome) => outcome,
        None => crate::jobs::outcome(state, id).await,
    };
    let rendered = durable::render_outcome(family.as_ref(), state, id, outcome).await;
    let mut value = serde_json::to_value(rendered).map_err(|e| (-32603, e.to_string()))?;
    value["_meta"][RELATED_TASK] = json!({ "taskId": id });
    Ok(value)
}

async fn list(state: &ApiState, caller: &Caller, params: &Value) -> Result<Value, RpcError> {
    let filter = JobFilter {
        page_token: params["cursor"].as_str().map(String::from),
        ..JobFilter::default()
    };
    let page = list_jobs(state, &caller.scope(), &filter)
        .await
        .map_err(|e| invalid_params(e.to_string()))?;
    let tasks: Vec<Value> = page
        .jobs
        .iter()
        .map(|j| {
            let created = j.created_at.as_deref().unwrap_or_default();
            let updated = j.closed_at.as_deref().unwrap_or(created);
            task(
                &j.job_id,
                status_of(j.status),
                j.status.as_str(),
                created,
                updated,
            )
        })
        .collect();
    let mut result = json!({ "tasks": tasks });
    if let Some(next) = page.next_page_token {
        result["nextCursor"] = json!(next);
    }
    Ok(result)
}

async fn cancel(state: &ApiState, caller: &Caller, params: &Value) -> Result<Value, RpcError> {
    let record = cancel_job(
        state,
        &caller.scope(),
        task_id(params)?,
        "cancelled by the client (tasks/cancel)",
    )
    .await
    .map_err(lookup_error)?;
    let mut task = task_of(&record.view);
    task["status"] = json!("cancelled");
    Ok(task)
}

/// Applies `edit` to the `result` of the JSON-RPC response in `response` (a JSON body, or the
/// `data:` lines of an event stream that ends after the response, as initialize and tools/list
/// do).
async fn rewrite_result(response: Response, edit: impl Fn(&mut Value)) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, BODY_LIMIT).await else {
        return Problem::internal("the response was too large to annotate").into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let edit_message = |raw: &str| -> Option<String> {
        let mut message: Value = serde_json::from_str(raw).ok()?;
        message.get("result")?;
        edit(&mut message["result"]);
        serde_json::to_string(&message).ok()
    };
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let rewritten = if is_sse {
        let mut out = String::with_capacity(text.len() + 64);
        for line in text.split_inclusive('\n') {
            let (content, end) = match line.strip_suffix('\n') {
                Some(c) => (c, "\n"),
                None => (line, ""),
            };
            match content
                .strip_prefix("data:")
                .and_then(|d| edit_message(d.trim_start()))
            {
                Some(edited) => {
                    out.push_str("data: ");
                    out.push_str(&edited);
                    out.push_str(end);
                }
                None => out.push_str(line),
            }
        }
        out
    } else {
        edit_message(&text).unwrap_or_else(|| text.into_owned())
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Ok(len) = HeaderValue::from_str(&rewritten.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, len);
    }
    Response::from_parts(parts, Body::from(rewritten))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_tools_declare_optional_task_support_and_others_nothing() {
        let mut durable = json!({"name": "generate_speech",
            "_meta": {rmcp::model::TASKS_EXTENSION_ID: {"taskSupport": "optional"}}});
        let mut plain = json!({"name": "list_voices"});
        declare_task_support(&mut durable);
        declare_task_support(&mut plain);
        assert_eq!(durable["execution"], json!({"taskSupport": "optional"}));
        assert!(plain.get("execution").is_none());
    }

    #[test]
    fn job_statuses_map_to_the_revisions_task_statuses() {
        assert_eq!(status_of(JobStatus::Running), "working");
        assert_eq!(status_of(JobStatus::InputRequired), "input_required");
        assert_eq!(status_of(JobStatus::TimedOut), "failed");
        assert_eq!(status_of(JobStatus::Cancelled), "cancelled");
    }

    #[tokio::test]
    async fn an_event_stream_response_is_annotated_line_by_line() {
        let body = "id: 0\ndata: \n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":1}}\n\n";
        let response = Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from(body))
            .expect("response");
        let out = rewrite_result(response, |r| r["b"] = json!(2)).await;
        let text = String::from_utf8(
            to_bytes(out.into_body(), 1 << 20)
                .await
                .expect("body")
                .to_vec(),
        )
        .expect("utf8");
        assert!(text.starts_with("id: 0\ndata: \n\n"), "{text}");
        assert!(text.contains("\"result\":{\"a\":1,\"b\":2}"), "{text}");
    }
}
