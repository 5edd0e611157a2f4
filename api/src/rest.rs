//! REST under `/api/v2` plus `/healthz`, `/readyz`, `/metrics`.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};

use crate::auth::Caller;

use crate::error::ApiError;
use crate::health::check_dependencies;
use crate::jobs::output::JobOutput;
use crate::jobs::view::get_job;
use crate::state::ApiState;

/// `/api/v2`: needs an authenticated caller (see `auth`).
pub fn api_router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v2/voices", get(voices))
        .merge(crate::rest_jobs::router())
        .merge(crate::rest_billing::router())
        .merge(crate::rest_servers::router())
        .merge(crate::rest_devices::router())
        .route("/api/v2/audio/{job_id}", get(get_audio))
        .with_state(state)
}

/// Liveness, readiness and metrics: open, for orchestrators and scrapers.
pub fn probe_router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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

async fn get_audio(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let record = get_job(&state, &caller.tenant, &job_id).await?;
    let artifact = match record.outcome {
        Some(Ok(JobOutput::Speech(a))) => a,
        Some(Ok(_)) => {
            return Err(ApiError::NotFound(format!(
                "job {job_id} is a {} job; it has no audio",
                record.view.tool
            )));
        }
        _ => {
            return Err(ApiError::Conflict(format!(
                "job {job_id} is {}; audio exists only for completed speech jobs",
                record.view.status.as_str()
            )));
        }
    };
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
