//! REST of approvals: `POST /api/v2/jobs/{id}/approve` and `/reject`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Deserialize;

use crate::auth::Caller;
use crate::core::problem::{ErrorKind, Problem};
use crate::jobs::view::JobView;
use crate::state::ApiState;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v2/jobs/{job_id}/approve", post(approve))
        .route("/api/v2/jobs/{job_id}/reject", post(reject))
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
) -> Result<Json<JobView>, Problem> {
    let Json(b) = body.map_err(|e| {
        Problem::new(
            ErrorKind::InvalidInput,
            format!(
                "{} (send {{\"digest\": \"sha256:…\"}}: the approval_request digest)",
                e.body_text()
            ),
        )
    })?;
    let view = super::decide(&state, &caller, &job_id, true, Some(b.digest), None).await?;
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
) -> Result<Json<JobView>, Problem> {
    let reason = body.and_then(|Json(b)| b.reason);
    let view = super::decide(&state, &caller, &job_id, false, None, reason).await?;
    Ok(Json(view))
}
