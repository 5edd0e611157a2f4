//! REST for smart-home devices under `/api/v2/devices` and approvals under
//! `/api/v2/jobs/{id}/approve|reject` — the same operations as the MCP tools (`crate::devices`).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::Value;

use avb_devices::command::ControlInput;
use avb_devices::ha::ServiceCall;
use avb_workflows::devices::ReadRequest;

use crate::auth::Caller;
use crate::devices::{self, CommandOutcome, DeviceJobOutput, DeviceToolError};
use crate::error::ApiError;
use crate::jobs::JobError;
use crate::jobs::view::JobView;
use crate::state::ApiState;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v2/devices", get(list))
        .route("/api/v2/devices/state", get(state_of))
        .route("/api/v2/devices/control", post(control))
        .route("/api/v2/devices/services", post(service))
        .route("/api/v2/jobs/{job_id}/approve", post(approve))
        .route("/api/v2/jobs/{job_id}/reject", post(reject))
}

impl From<DeviceToolError> for ApiError {
    fn from(e: DeviceToolError) -> Self {
        let message = format!("{}: {e}", e.kind());
        match e {
            DeviceToolError::NotAllowed(_) | DeviceToolError::Forbidden(_) => {
                ApiError::Forbidden(message)
            }
            DeviceToolError::Invalid { .. } => ApiError::BadRequest(message),
            DeviceToolError::Conflict(_) => ApiError::Conflict(message),
            DeviceToolError::Lookup(l) => l.into(),
            DeviceToolError::Job(JobError::Failed { ref kind, .. })
                if matches!(
                    kind.as_deref(),
                    Some("InvalidInput" | "UnknownDevice" | "HomeAssistantRefused")
                ) =>
            {
                ApiError::BadRequest(message)
            }
            DeviceToolError::Job(JobError::Failed { .. }) => ApiError::Conflict(message),
            DeviceToolError::Job(_) => ApiError::Unavailable(message),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomQuery {
    room: Option<String>,
}

async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<RoomQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
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
    query: Result<Query<DeviceQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let v = devices::read(&state, &caller.tenant, "get_device_state", |backends| {
        ReadRequest::State {
            device: q.device,
            backends,
        }
    })
    .await?;
    Ok(Json(v))
}

fn accepted(outcome: CommandOutcome) -> (StatusCode, Json<DeviceJobOutput>) {
    match outcome {
        CommandOutcome::Done(out) => (StatusCode::OK, Json(out)),
        CommandOutcome::Waiting(out) => (StatusCode::ACCEPTED, Json(out)),
    }
}

async fn control(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<ControlInput>, JsonRejection>,
) -> Result<(StatusCode, Json<DeviceJobOutput>), ApiError> {
    let Json(input) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let arguments = serde_json::to_value(&input).unwrap_or_default();
    let outcome = devices::command(&state, &caller.tenant, "smart_home_control", arguments).await?;
    Ok(accepted(outcome))
}

async fn service(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<ServiceCall>, JsonRejection>,
) -> Result<(StatusCode, Json<DeviceJobOutput>), ApiError> {
    let Json(input) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    input
        .check()
        .map_err(|e| ApiError::BadRequest(format!("InvalidInput: {e}")))?;
    let arguments = serde_json::to_value(&input).unwrap_or_default();
    let outcome = devices::command(&state, &caller.tenant, "call_service", arguments).await?;
    Ok(accepted(outcome))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    digest: String,
}

async fn approve(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
    body: Result<Json<ApproveBody>, JsonRejection>,
) -> Result<Json<JobView>, ApiError> {
    let Json(b) = body.map_err(|e| {
        ApiError::BadRequest(format!(
            "{} (send {{\"digest\": \"sha256:…\"}}: the approval_request digest)",
            e.body_text()
        ))
    })?;
    let view = devices::decide(&state, &caller, &job_id, true, Some(b.digest), None).await?;
    Ok(Json(view))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    reason: Option<String>,
}

async fn reject(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
    body: Option<Json<RejectBody>>,
) -> Result<Json<JobView>, ApiError> {
    let reason = body.and_then(|Json(b)| b.reason);
    let view = devices::decide(&state, &caller, &job_id, false, None, reason).await?;
    Ok(Json(view))
}
