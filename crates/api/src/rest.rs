//! REST under `/api/v2` (each family's router, merged) plus `/healthz`, `/readyz`, `/metrics`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::health::cached_dependencies;
use crate::state::ApiState;

/// `/api/v2` and the OpenAI-compatible `/v1`: need an authenticated caller (see `auth`).
pub fn api_router(state: ApiState) -> Router {
    Router::new()
        .merge(crate::speech::rest::router())
        .merge(crate::speech::ws::router())
        .merge(crate::openai::rest::router())
        .merge(crate::jobs::rest::router())
        .merge(crate::billing::rest::router())
        .merge(crate::servers::rest::router())
        .merge(crate::devices::rest::router())
        .merge(crate::approval::rest::router())
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

/// Ready when Temporal, the artifact store and the database answer and the upstream MCP
/// servers have been checked once (before that their tools are not mounted). Open for probes, so it
/// answers from a check at most a second old, and names the components without their details
/// (addresses, versions, errors) unless the request carries a valid key.
async fn readyz(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let mut components = cached_dependencies(&state).await;
    if !state.upstreams.checked_once() {
        components.push(crate::health::ComponentHealth {
            name: "upstream_catalog".into(),
            healthy: false,
            detail: "the upstream MCP servers have not been checked yet".into(),
        });
    }
    let ready = components.iter().all(|c| c.healthy);
    let detailed = match crate::auth::bearer(&headers) {
        Some(token) => crate::auth::caller_for(&state, Some(token)).await.is_ok(),
        None => !state.config.auth.required,
    };
    let components: Vec<serde_json::Value> = components
        .iter()
        .map(|c| {
            if detailed {
                serde_json::json!(c)
            } else {
                serde_json::json!({ "name": c.name, "healthy": c.healthy })
            }
        })
        .collect();
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
