//! REST under `/api/v2` plus `/healthz`, `/readyz`, `/metrics`.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use temporalio_client::{
    WorkflowDescribeOptions, WorkflowExecutionStatus, WorkflowGetResultOptions,
};

use crate::error::ApiError;
use crate::health::check_dependencies;
use crate::jobs;
use crate::state::ApiState;
use avb_workflows::speech::SpeechProgress;
use avb_workflows::speech_workflow::GenerateSpeechWorkflow;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v2/voices", get(voices))
        .route("/api/v2/jobs/{job_id}", get(get_job))
        .route("/api/v2/audio/{job_id}", get(get_audio))
        .with_state(state)
}

async fn readyz(State(state): State<ApiState>) -> Response {
    let components = check_dependencies(&state).await;
    let ready = components.iter().all(|c| c.healthy);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "ready": ready, "components": components })),
    )
        .into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn voices(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "voices": state.voices.as_ref() }))
}

#[derive(Serialize)]
struct JobView {
    job_id: String,
    status: &'static str,
    tool: Option<String>,
    progress: Option<SpeechProgress>,
    result: Option<serde_json::Value>,
}

fn status_name(s: WorkflowExecutionStatus) -> &'static str {
    match s {
        WorkflowExecutionStatus::Running => "running",
        WorkflowExecutionStatus::Completed => "completed",
        WorkflowExecutionStatus::Failed => "failed",
        WorkflowExecutionStatus::Canceled => "cancelled",
        WorkflowExecutionStatus::Terminated => "terminated",
        WorkflowExecutionStatus::TimedOut => "timed_out",
        WorkflowExecutionStatus::ContinuedAsNew => "continued",
        _ => "unknown",
    }
}

/// Looks a job up, answering "not found" for ids that are not jobs of this tenant.
async fn describe_job(
    state: &ApiState,
    job_id: &str,
) -> Result<(jobs::SpeechHandle, WorkflowExecutionStatus), ApiError> {
    if !job_id.starts_with("job_") {
        return Err(ApiError::NotFound(format!("job {job_id} not found")));
    }
    let handle = state
        .temporal
        .get_workflow_handle::<GenerateSpeechWorkflow>(job_id.to_string());
    let desc = handle
        .describe(WorkflowDescribeOptions::default())
        .await
        .map_err(|_| ApiError::NotFound(format!("job {job_id} not found")))?;
    let tenant = desc.search_attributes().get(&avb_workflows::search::TENANT);
    if tenant.as_deref() != Some(state.tenant()) {
        return Err(ApiError::NotFound(format!("job {job_id} not found")));
    }
    Ok((handle, desc.status()))
}

async fn get_job(
    State(state): State<ApiState>,
    Path(job_id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let (handle, status) = describe_job(&state, &job_id).await?;
    let progress = jobs::speech_progress(&handle).await;
    let result = if status == WorkflowExecutionStatus::Completed {
        handle
            .get_result(WorkflowGetResultOptions::default())
            .await
            .ok()
            .and_then(|a| serde_json::to_value(a).ok())
    } else {
        None
    };
    Ok(Json(JobView {
        job_id,
        status: status_name(status),
        tool: Some("generate_speech".into()),
        progress,
        result,
    }))
}

async fn get_audio(
    State(state): State<ApiState>,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let (handle, status) = describe_job(&state, &job_id).await?;
    if status != WorkflowExecutionStatus::Completed {
        return Err(ApiError::Conflict(format!(
            "job {job_id} is {}; audio exists only for completed jobs",
            status_name(status)
        )));
    }
    let artifact = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot read result of {job_id}: {e}")))?;
    let bytes = state
        .artifacts
        .get(&artifact.audio)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "audio/wav".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{job_id}.wav\""),
            ),
            (header::ETAG, format!("\"{}\"", artifact.audio.sha256)),
        ],
        bytes,
    )
        .into_response())
}
