//! REST for provisioned MCP servers under `/api/v2/mcp-servers` (see `crate::servers`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Json, Router};

use crate::auth::Caller;
use crate::core::problem::{ErrorKind, Problem};
use crate::servers::{self, CreateServerInput, EventView, ServerList, ServerView};
use crate::state::ApiState;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v2/mcp-servers", get(list).post(create))
        .route(
            "/api/v2/mcp-servers/{server_id}",
            get(get_one).delete(delete),
        )
        .route("/api/v2/mcp-servers/{server_id}/events", get(events))
}

async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ServerList>, Problem> {
    Ok(Json(servers::list(&state, &caller.tenant).await?))
}

async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<CreateServerInput>, JsonRejection>,
) -> Result<Json<ServerView>, Problem> {
    let Json(input) = body.map_err(|e| Problem::new(ErrorKind::InvalidInput, e.body_text()))?;
    Ok(Json(servers::create(&state, &caller.tenant, input).await?))
}

async fn get_one(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(server_id): Path<String>,
) -> Result<Json<ServerView>, Problem> {
    Ok(Json(
        servers::get(&state, &caller.tenant, &server_id).await?,
    ))
}

async fn delete(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(server_id): Path<String>,
) -> Result<Json<ServerView>, Problem> {
    Ok(Json(
        servers::delete(&state, &caller.tenant, &server_id).await?,
    ))
}

/// The audit trail of one server, oldest first.
async fn events(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(server_id): Path<String>,
) -> Result<Json<Vec<EventView>>, Problem> {
    let v = servers::get(&state, &caller.tenant, &server_id).await?;
    Ok(Json(v.events.unwrap_or_default()))
}
