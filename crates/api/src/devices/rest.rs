//! REST for smart-home devices under `/api/v2/devices`: the same operations as the MCP tools
//! (commands through the same durable tools).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::Value;

use avb_workflows::devices::ReadRequest;

use crate::auth::Caller;
use crate::core::problem::{AppJson, AppQuery, Problem};
use crate::devices;
use crate::jobs::durable::{self, ToolCall};
use crate::state::ApiState;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v2/devices", get(list))
        .route("/api/v2/devices/state", get(state_of))
        .route("/api/v2/devices/control", post(control))
        .route("/api/v2/devices/services", post(service))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomQuery {
    room: Option<String>,
}

async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    AppQuery(q): AppQuery<RoomQuery>,
) -> Result<Json<Value>, Problem> {
    let v = devices::read(&state, &caller.tenant, "list_devices", |backends| {
        ReadRequest::List {
            room: q.room,
            backends,
        }
    })
    .await?;
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceQuery {
    device: String,
}

async fn state_of(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    AppQuery(q): AppQuery<DeviceQuery>,
) -> Result<Json<Value>, Problem> {
    let v = devices::read(&state, &caller.tenant, "get_device_state", |backends| {
        ReadRequest::State {
            device: q.device,
            backends,
        }
    })
    .await?;
    Ok(Json(v))
}

/// A command through the same durable tool as the MCP call: 200 with the devices' confirmed
/// state, or 202 while the job waits (for approval, or past the wait budget).
async fn command(
    state: &ApiState,
    caller: &Caller,
    tool: &str,
    arguments: Value,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let Value::Object(arguments) = arguments else {
        return Err(Problem::internal("a command's arguments are an object"));
    };
    let family = state
        .tools
        .family(tool)
        .ok_or_else(|| Problem::internal(format!("{tool} is not a durable tool")))?;
    let call = ToolCall {
        state,
        caller,
        name: tool,
        arguments,
        // REST callers approve as operators: there is no client to ask.
        client: durable::ClientInput::default(),
    };
    let result = match durable::call(family.as_ref(), call, |_| Box::pin(async {})).await {
        rmcp::model::CallToolResponse::Complete(result) => result,
        _ => return Err(Problem::internal(format!("{tool} asked REST for input"))),
    };
    if result.is_error == Some(true) {
        return Err(Problem::from(result));
    }
    let out = result.structured_content.unwrap_or_default();
    let status = if out["status"] == "completed" {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(out)))
}

async fn control(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    AppJson(input): AppJson<Value>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    command(&state, &caller, "smart_home_control", input).await
}

async fn service(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    AppJson(input): AppJson<Value>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    command(&state, &caller, "call_service", input).await
}
