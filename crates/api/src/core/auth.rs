//! Who is calling. With `auth.required` (the default) every MCP and `/api/v2` request carries
//! `Authorization: Bearer avb_…`, an API key checked against the store, and acts for that key's
//! tenant with its role; anything else is 401 with `WWW-Authenticate`. With `[auth.oidc]` a
//! bearer token that is not an API key is checked as a JWT of that issuer (`crate::oidc`): its
//! claims name an existing tenant and the role. With auth off (tests, single-user setups) every
//! caller is the operator of the `local` tenant.

pub use avb_store::Role;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::core::problem::Problem;
use crate::core::resource_metadata;
use crate::state::ApiState;

/// The tenant every caller belongs to when authentication is off.
pub use avb_config::LOCAL_TENANT;

/// The authenticated caller of one request (or of one MCP session, for stdio and legacy SSE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Tenant name: jobs carry it as their `AvbTenant` search attribute.
    pub tenant: String,
    pub role: Role,
    /// The API key's id (`jwt:<sub>` for a JWT): rate limits count per key. `None` when
    /// authentication is off. Jobs record it as their owner (`AvbOwner`).
    pub key_id: Option<String>,
    /// The key's label (a JWT's subject): how job views name the owner.
    pub label: Option<String>,
}

impl Caller {
    /// The operator of the local tenant: every caller when authentication is off.
    pub fn local() -> Self {
        Self::operator_of(LOCAL_TENANT)
    }

    /// An operator (HUMAN, no key) of `tenant`: jobs it starts have no owner.
    pub fn operator_of(tenant: &str) -> Self {
        Self {
            tenant: tenant.into(),
            role: Role::Human,
            key_id: None,
            label: None,
        }
    }

    /// Whose jobs this caller sees and acts on: an AGENT its own, a HUMAN every job of its
    /// tenant.
    pub fn scope(&self) -> crate::jobs::JobScope {
        crate::jobs::JobScope {
            tenant: self.tenant.clone(),
            owner: match self.role {
                Role::Agent => Some(self.key_id.clone().unwrap_or_default()),
                Role::Human => None,
            },
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
    /// A JWT that failed a check; the message names it.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("{0}")]
    IssuerUnavailable(String),
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
    if let Some(oidc) = &state.oidc
        && !token.starts_with(API_KEY_PREFIX)
    {
        return jwt_caller(oidc, store, token).await;
    }
    match store.authenticate(token).await {
        Ok(Some(p)) => Ok(Caller {
            tenant: p.tenant_name,
            role: p.role,
            key_id: Some(p.key_id),
            label: Some(p.label).filter(|l| !l.is_empty()),
        }),
        Ok(None) => Err(AuthError::Invalid),
        Err(e) => Err(AuthError::Store(e.to_string())),
    }
}

/// How API keys start; other bearer tokens are JWTs (when `[auth.oidc]` is set).
pub const API_KEY_PREFIX: &str = "avb_";

async fn jwt_caller(
    oidc: &crate::oidc::OidcVerifier,
    store: &avb_store::Store,
    token: &str,
) -> Result<Caller, AuthError> {
    use crate::oidc::JwtError;
    let verified = oidc.verify(token).await.map_err(|e| match e {
        JwtError::Invalid(m) => AuthError::InvalidToken(m),
        e @ JwtError::Unavailable(_) => AuthError::IssuerUnavailable(e.to_string()),
    })?;
    match store.tenant_by_name(&verified.tenant).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(AuthError::InvalidToken(format!(
                "unknown tenant {:?} (claim {:?})",
                verified.tenant,
                oidc.settings().tenant_claim
            )));
        }
        Err(e) => return Err(AuthError::Store(e.to_string())),
    }
    let subject = verified.subject.as_deref().unwrap_or(&verified.tenant);
    Ok(Caller {
        key_id: Some(format!("jwt:{subject}")),
        label: Some(subject.to_string()),
        tenant: verified.tenant,
        role: verified.role,
    })
}

/// The token of an `Authorization: Bearer …` header, or, for WebSocket clients that cannot set
/// headers (browsers), of a `bearer.<token>` WebSocket subprotocol offered beside `avb.v1`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return headers
            .get(header::SEC_WEBSOCKET_PROTOCOL)?
            .to_str()
            .ok()?
            .split(',')
            .find_map(|p| p.trim().strip_prefix(WEBSOCKET_BEARER_PREFIX))
            .filter(|t| !t.is_empty());
    };
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The WebSocket subprotocol that carries a token: `bearer.<token>`.
pub const WEBSOCKET_BEARER_PREFIX: &str = "bearer.";

/// Middleware: authenticates the request and puts its `Caller` into the request extensions
/// (rmcp hands those to MCP handlers with the request's `http::request::Parts`).
pub async fn authenticate(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    match caller_for(&state, bearer(req.headers())).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e @ (AuthError::Missing | AuthError::Invalid | AuthError::InvalidToken(_))) => {
            let metadata = resource_metadata::metadata_url(&state.config, req.uri().path());
            // With an issuer, OAuth clients ask it for the scope that calls tools.
            let scope = state
                .config
                .auth
                .oidc
                .is_some()
                .then_some(crate::core::oidc::AGENT_SCOPE);
            let mut response = unauthorized(&e, &metadata, scope);
            if !drained(req.into_body()).await {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
        Err(e) => Problem::unavailable(e.to_string()).into_response(),
    }
}

/// The most of a refused request's body read before answering, and for how long.
const DRAIN_BYTES: usize = 1 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads the rest of a refused request's body. Answering before the body has arrived makes the
/// server close the connection after the answer, and a client that sends its signed-in retry
/// on the same connection (OAuth clients do, right after the 401) then sees it closed under it.
/// A body too big or too slow to read is not waited for: the answer says `Connection: close`.
async fn drained(body: axum::body::Body) -> bool {
    matches!(
        tokio::time::timeout(DRAIN_TIME, axum::body::to_bytes(body, DRAIN_BYTES)).await,
        Ok(Ok(_))
    )
}

/// A 401 whose challenge names the Protected Resource Metadata (`resource_metadata`, RFC 9728)
/// where an OAuth client finds the authorization server, and the error when a token was given.
fn unauthorized(e: &AuthError, metadata_url: &str, scope: Option<&str>) -> Response {
    let mut base = format!(
        r#"Bearer realm="agentvoicebox", resource_metadata="{}""#,
        description(metadata_url)
    );
    if let Some(scope) = scope {
        base.push_str(&format!(r#", scope="{scope}""#));
    }
    let challenge = match e {
        AuthError::Invalid => format!(
            r#"{base}, error="invalid_token", error_description="invalid or revoked API key""#
        ),
        AuthError::InvalidToken(m) => format!(
            r#"{base}, error="invalid_token", error_description="{}""#,
            description(m)
        ),
        _ => base,
    };
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": { "code": "unauthorized", "message": e.to_string() } })),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&challenge)
            .unwrap_or_else(|_| HeaderValue::from_static(r#"Bearer realm="agentvoicebox""#)),
    );
    response
}

/// `error_description` allows printable ASCII without `"` and `\` (RFC 6750 §3).
fn description(m: &str) -> String {
    m.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
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

    #[test]
    fn websocket_clients_may_offer_the_token_as_a_subprotocol() {
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("avb.v1, bearer.avb_x_y"),
        );
        assert_eq!(bearer(&h), Some("avb_x_y"));
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("avb.v1, bearer."),
        );
        assert_eq!(bearer(&h), None);
        // A header names the caller when both are sent.
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer avb_header"),
        );
        assert_eq!(bearer(&h), Some("avb_header"));
    }
}
