//! The one error type at the API boundary. Every failure a caller sees is a [`Problem`]: a kind
//! from the shared vocabulary ([`ErrorKind`]), the offending field when there is one, a message
//! that names the problem, and facts (`details`). It renders to both surfaces:
//! - REST (`IntoResponse`): the kind's HTTP status and
//!   `{"error": {"code", "kind", "message", "field"?, "details"?}}`; `code` is the status's short
//!   name (`bad_request`, `not_found`, …) that REST clients switch on;
//! - MCP ([`Problem::into_tool_result`]): an `isError` tool result whose text names kind, field
//!   and message, with the same facts as structured content.
//!
//! The domain errors of each family convert into it (`From` impls next to those errors), and the
//! extractors [`AppJson`] / [`AppQuery`] reject bad bodies and query strings with it.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

pub use avb_workflows::errors::ErrorKind;

#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: ErrorKind,
    /// The argument, body field or query parameter at fault.
    pub field: Option<String>,
    pub message: String,
    /// Facts about the failure (e.g. `InsufficientCredits`: needed, balance, shortfall), an
    /// object; `{}` when there are none.
    pub details: Value,
    /// What failed underneath, for logs (never shown to callers beyond `message`).
    pub source: Option<String>,
}

impl Problem {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            field: None,
            message: message.into(),
            details: json!({}),
            source: None,
        }
    }

    /// Bad input in `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message).with_field(field)
    }

    /// Refused because the caller's role is not an operator's (HUMAN key, or a token with the
    /// operator scope): REST answers 403 with `WWW-Authenticate: Bearer
    /// error="insufficient_scope"` naming the scope that would do.
    pub fn operator_only(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
            .with_details(json!({ "required_scope": crate::core::oidc::OPERATOR_SCOPE }))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds the keys of `details` (an object) to the problem's facts.
    pub fn with_details(mut self, details: Value) -> Self {
        if let (Some(map), Value::Object(extra)) = (self.details.as_object_mut(), details) {
            map.extend(extra);
        }
        self
    }

    /// The underlying error, for the server's log only: callers see `message`, which says what
    /// failed without the internals (paths, addresses, driver messages) a source may carry.
    pub fn with_source(mut self, source: impl std::fmt::Display) -> Self {
        self.source = Some(source.to_string());
        self
    }

    /// The message with the field in front (REST has no separate field in older clients).
    fn rest_message(&self) -> String {
        match &self.field {
            Some(f) => format!("{f}: {}", self.message),
            None => self.message.clone(),
        }
    }

    /// An `isError` MCP tool result that names the problem in its text, with the same facts
    /// for programs in `_meta` under [`ERROR_META_KEY`] (`{kind, field, message, details}`).
    /// Not as `structuredContent`: that must match the tool's `outputSchema`, which describes
    /// the tool's result, and clients that validate it (the MCP Inspector) would show a schema
    /// complaint instead of the message.
    pub fn into_tool_result(self) -> CallToolResult {
        self.log_source();
        let text = match &self.field {
            Some(f) => format!("{}: {f}: {}", self.kind, self.message),
            None => format!("{}: {}", self.kind, self.message),
        };
        let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
        let mut meta = rmcp::model::JsonObject::new();
        meta.insert(
            ERROR_META_KEY.to_string(),
            json!({
                "kind": self.kind,
                "field": self.field,
                "message": self.message,
                "details": self.details,
            }),
        );
        r.meta = Some(rmcp::model::MetaObject(meta));
        r
    }

    /// Logs the source of a failure that is the server's (5xx) as a warning, others at debug.
    fn log_source(&self) {
        let Some(source) = &self.source else { return };
        if self.kind.http_status() >= 500 {
            tracing::warn!(kind = %self.kind, message = %self.message, %source, "request failed");
        } else {
            tracing::debug!(kind = %self.kind, message = %self.message, %source, "request failed");
        }
    }

    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.rest_message())
    }
}

impl std::error::Error for Problem {}

/// The short name REST clients switch on, by status.
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        402 => "insufficient_credits",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        422 => "unprocessable",
        429 => "rate_limited",
        502 => "bad_gateway",
        503 => "unavailable",
        504 => "timeout",
        _ => "internal",
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        self.log_source();
        let mut error = json!({
            "code": code_of(status),
            "kind": self.kind,
            "message": self.rest_message(),
        });
        if let Some(field) = &self.field {
            error["field"] = json!(field);
        }
        if self.details.as_object().is_some_and(|d| !d.is_empty()) {
            error["details"] = self.details.clone();
        }
        // A rate-limited caller reads when to come back from the header and the body alike.
        let retry_after = (self.kind == ErrorKind::RateLimited)
            .then(|| self.details.get("retry_after_secs").and_then(Value::as_u64))
            .flatten();
        if let Some(secs) = retry_after {
            error["retry_after_secs"] = json!(secs);
        }
        let mut response = (status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(value) = retry_after.and_then(|s| s.to_string().parse().ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        // OAuth clients (RFC 6750) learn which scope to ask for.
        let scope = (self.kind == ErrorKind::Forbidden)
            .then(|| self.details.get("required_scope").and_then(Value::as_str))
            .flatten();
        if let Some(value) = scope.and_then(|s| {
            format!("Bearer error=\"insufficient_scope\", scope=\"{s}\"")
                .parse()
                .ok()
        }) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// Where an `isError` tool result carries the problem's facts (`_meta` key).
pub const ERROR_META_KEY: &str = "agentvoicebox/error";

/// The facts of an `isError` result made by [`Problem::into_tool_result`].
pub fn error_facts(r: &CallToolResult) -> Option<&Value> {
    r.meta.as_ref()?.0.get(ERROR_META_KEY)
}

impl From<CallToolResult> for Problem {
    /// Reads a problem back from an `isError` tool result made by [`Problem::into_tool_result`].
    fn from(r: CallToolResult) -> Self {
        let error = error_facts(&r).cloned().unwrap_or_default();
        let kind = error["kind"]
            .as_str()
            .and_then(ErrorKind::parse)
            .unwrap_or(ErrorKind::Internal);
        let mut p = Problem::new(kind, error["message"].as_str().unwrap_or_default());
        p.field = error["field"].as_str().map(str::to_string);
        p.with_details(error["details"].clone())
    }
}

/// `Json<T>` whose rejection is a [`Problem`] naming what is wrong with the body.
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| AppJson(v))
            .map_err(|e| Problem::new(ErrorKind::InvalidInput, e.body_text()))
    }
}

/// `Query<T>` whose rejection is a [`Problem`] naming the bad parameter.
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| AppQuery(v))
            .map_err(|e| Problem::new(ErrorKind::InvalidInput, e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rest_and_mcp_render_the_same_facts() {
        let p = Problem::new(ErrorKind::InsufficientCredits, "not enough credits")
            .with_details(json!({ "needed": 10, "balance": 3 }));
        let r = p.clone().into_tool_result();
        assert_eq!(r.is_error, Some(true));
        assert_eq!(
            r.structured_content, None,
            "an error never claims the tool's output schema"
        );
        let facts = error_facts(&r).expect("facts in _meta");
        assert_eq!(facts["kind"], "InsufficientCredits");
        assert_eq!(facts["details"]["needed"], 10);
        let back = Problem::from(r);
        assert_eq!(back.kind, ErrorKind::InsufficientCredits);
        assert_eq!(back.details["balance"], 3);

        let response = p.into_response();
        assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"]["code"], "insufficient_credits");
        assert_eq!(v["error"]["kind"], "InsufficientCredits");
        assert_eq!(v["error"]["details"]["shortfall"], Value::Null);
    }

    #[tokio::test]
    async fn rate_limits_carry_retry_after_and_fields_lead_the_message() {
        let p = Problem::new(ErrorKind::RateLimited, "slow down")
            .with_details(json!({ "retry_after_secs": 7 }));
        let response = p.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let p = Problem::invalid("limit", "0 is out of range");
        assert_eq!(p.to_string(), "limit: 0 is out of range");
        let result = p.clone().into_tool_result();
        let text = result.content[0].as_text().map(|t| t.text.clone());
        assert_eq!(
            text.as_deref(),
            Some("InvalidInput: limit: 0 is out of range")
        );
    }
}
