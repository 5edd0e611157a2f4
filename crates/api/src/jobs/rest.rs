//! REST for jobs under `/api/v2/jobs`: list (Temporal visibility, filters, pages), get, cancel,
//! and an SSE stream of one job's progress that ends with its result.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::{Stream, StreamExt};
use serde::Deserialize;

use super::follow::follow;
use super::list::{JobFilter, JobPage, list_jobs};
use super::view::{JobView, cancel_job, get_job};
use crate::auth::Caller;
use crate::core::problem::{AppQuery, Problem};
use crate::state::ApiState;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v2/jobs", get(list))
        .route("/api/v2/jobs/{job_id}", get(get_one))
        .route("/api/v2/jobs/{job_id}/cancel", post(cancel))
        .route("/api/v2/jobs/{job_id}/events", get(events))
}

async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    AppQuery(filter): AppQuery<JobFilter>,
) -> Result<Json<JobPage>, Problem> {
    Ok(Json(list_jobs(&state, &caller.scope(), &filter).await?))
}

async fn get_one(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
) -> Result<Json<JobView>, Problem> {
    Ok(Json(get_job(&state, &caller.scope(), &job_id).await?.view))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: Option<String>,
}

async fn cancel(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
    body: Option<Json<CancelBody>>,
) -> Result<Json<JobView>, Problem> {
    let reason = body.and_then(|Json(b)| b.reason);
    super::check_reason(reason.as_deref())?;
    let reason = reason.unwrap_or_else(|| "cancelled by the caller (REST)".into());
    Ok(Json(
        cancel_job(&state, &caller.scope(), &job_id, &reason)
            .await?
            .view,
    ))
}

/// `progress` events (the job view) whenever status or progress changes, then one `result`
/// event (the final view, with `result` or `error`), then the stream ends.
async fn events(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let first = get_job(&state, &caller.scope(), &job_id).await?.view;
    let stream = follow(state, caller.scope(), job_id, Some(first)).map(|view| {
        let name = if view.status.is_terminal() {
            "result"
        } else {
            "progress"
        };
        let data = serde_json::to_string(&view).unwrap_or_default();
        Ok(Event::default().event(name).data(data))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
