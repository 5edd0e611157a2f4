//! REST for billing under `/api/v2/billing`: the caller's own tenant's balance and usage, and
//! credit grants (HUMAN keys only). See `crate::billing`.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use crate::auth::Caller;
use crate::billing::{self, BalanceView, GrantInput, GrantView, UsagePage};
use crate::core::problem::{AppQuery, ErrorKind, Problem};
use crate::state::ApiState;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v2/billing/balance", get(balance))
        .route("/api/v2/billing/usage", get(usage))
        .route("/api/v2/billing/grants", post(grant))
}

async fn balance(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<BalanceView>, Problem> {
    Ok(Json(billing::balance(&state, &caller.tenant).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    limit: Option<u32>,
}

async fn usage(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    AppQuery(query): AppQuery<UsageQuery>,
) -> Result<Json<UsagePage>, Problem> {
    Ok(Json(
        billing::usage(&state, &caller.tenant, query.limit).await?,
    ))
}

/// Body `{"credits": N, "note"?: "...", "idempotency_key"?: "..."}`. AGENT keys get 403; a bad
/// body is 400 naming the field.
async fn grant(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<GrantInput>, JsonRejection>,
) -> Result<Json<GrantView>, Problem> {
    // The role first: an AGENT is refused whatever it sent.
    if caller.role != billing::GRANT_ROLE {
        return Err(billing::forbidden_grant(caller.role).into());
    }
    let Json(input) = body.map_err(|e| Problem::new(ErrorKind::InvalidInput, e.body_text()))?;
    Ok(Json(
        billing::grant(&state, &caller.tenant, caller.role, &input, "REST").await?,
    ))
}
