//! Who is calling. With `auth.required` (the default) every MCP and `/api/v2` request carries
//! `Authorization: Bearer avb_…`, an API key checked against the store, and acts for that key's
//! tenant with its role; anything else is 401 with `WWW-Authenticate`. With auth off (tests,
//! single-user setups) every caller is the operator of the `local` tenant.

pub use avb_store::Role;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::state::ApiState;

/// The tenant every caller belongs to when authentication is off.
pub const LOCAL_TENANT: &str = "local";

/// The authenticated caller of one request (or of one MCP session, for stdio and legacy SSE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Tenant name: jobs carry it as their `AvbTenant` search attribute.
    pub tenant: String,
    pub role: Role,
    /// The API key's id: rate limits count per key. `None` when authentication is off.
    pub key_id: Option<String>,
}

impl Caller {
    /// The operator of the local tenant: every caller when authentication is off.
    pub fn local() -> Self {
        Self {
            tenant: LOCAL_TENANT.into(),
            role: Role::Human,
            key_id: None,
        }
    }

    /// Whom rate limits count: the API key, or the tenant when there is none (auth off).
    pub fn rate_limit_id(&self) -> String {
        match &self.key_id {
            Some(id) => format!("key:{id}"),
            None => format!("tenant:{}", self.tenant),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send `Authorization: Bearer <API key>`")]
    Missing,
    #[error("invalid or revoked API key")]
    Invalid,
    #[error("authentication is required but no key store is configured")]
    NoStore,
    #[error("cannot check the API key: {0}")]
    Store(String),
}

/// Resolves a bearer token (or its absence) to a caller under the state's auth settings.
pub async fn caller_for(state: &ApiState, token: Option<&str>) -> Result<Caller, AuthError> {
    if !state.config.auth.required {
        return Ok(Caller::local());
    }
    let token = token.ok_or(AuthError::Missing)?;
    let store = state.store.as_ref().ok_or(AuthError::NoStore)?;
    match store.authenticate(token).await {
        Ok(Some(p)) => Ok(Caller {
            tenant: p.tenant_name,
            role: p.role,
            key_id: Some(p.key_id),
        }),
        Ok(None) => Err(AuthError::Invalid),
        Err(e) => Err(AuthError::Store(e.to_string())),
    }
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Middleware: authenticates the request and puts its `Caller` into the request extensions
/// (rmcp hands those to MCP handlers with the request's `http::request::Parts`).
pub async fn authenticate(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    match caller_for(&state, bearer(req.headers())).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e @ (AuthError::Missing | AuthError::Invalid)) => unauthorized(&e),
        Err(e) => ApiError::Unavailable(e.to_string()).into_response(),
    }
}

fn unauthorized(e: &AuthError) -> Response {
    let challenge = match e {
        AuthError::Invalid => {
            r#"Bearer realm="agentvoicebox", error="invalid_token", error_description="invalid or revoked API key""#
        }
        _ => r#"Bearer realm="agentvoicebox""#,
    };
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": { "code": "unauthorized", "message": e.to_string() } })),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer avb_x_y"),
        );
        assert_eq!(bearer(&h), Some("avb_x_y"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  avb_x_y "),
        );
        assert_eq!(bearer(&h), Some("avb_x_y"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }
}
