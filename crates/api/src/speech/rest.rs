//! REST of speech: the voice catalog and the audio of a finished speech job.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};

use crate::auth::Caller;
use crate::core::problem::{ErrorKind, Problem};
use crate::jobs::durable::output_as;
use crate::jobs::view::get_job;
use crate::state::ApiState;
use avb_workflows::speech::SpeechArtifact;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v2/voices", get(voices))
        .route("/api/v2/audio/{job_id}", get(get_audio))
}

async fn voices(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "voices": state.voices.as_ref() }))
}

async fn get_audio(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
) -> Result<Response, Problem> {
    let record = get_job(&state, &caller.tenant, &job_id).await?;
    let artifact: SpeechArtifact = match record.outcome {
        Some(Ok(output)) if record.view.tool == super::TOOL => output_as(output)?,
        Some(Ok(_)) => {
            return Err(Problem::not_found(format!(
                "job {job_id} is a {} job; it has no audio",
                record.view.tool
            )));
        }
        _ => {
            return Err(Problem::new(
                ErrorKind::Conflict,
                format!(
                    "job {job_id} is {}; audio exists only for completed speech jobs",
                    record.view.status.as_str()
                ),
            ));
        }
    };
    let bytes = state
        .artifacts
        .get(&artifact.audio)
        .await
        .map_err(|e| Problem::internal(e.to_string()))?;
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
