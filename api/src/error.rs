//! The one REST error type: every failure is JSON `{"error": {"code", "message"}}` with the
//! matching status.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    /// 402: the tenant's credits do not cover the request.
    #[error("{0}")]
    PaymentRequired(String),
    /// 429 with `Retry-After` (see `crate::ratelimit`).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::RateLimited {
            message,
            retry_after_secs,
        } = &self
        {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after_secs.to_string())],
                Json(json!({ "error": {
                    "code": "rate_limited",
                    "message": message,
                    "retry_after_secs": retry_after_secs,
                } })),
            )
                .into_response();
        }
        let (status, code) = match &self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::PaymentRequired(_) => (StatusCode::PAYMENT_REQUIRED, "insufficient_credits"),
            ApiError::Internal(_) | ApiError::RateLimited { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        (
            status,
            Json(json!({ "error": { "code": code, "message": self.to_string() } })),
        )
            .into_response()
    }
}

impl From<crate::jobs::view::LookupError> for ApiError {
    fn from(e: crate::jobs::view::LookupError) -> Self {
        use crate::jobs::view::LookupError;
        match e {
            LookupError::NotFound(_) => ApiError::NotFound(e.to_string()),
            LookupError::AlreadyFinished { .. } => ApiError::Conflict(e.to_string()),
            LookupError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<crate::jobs::list::ListError> for ApiError {
    fn from(e: crate::jobs::list::ListError) -> Self {
        use crate::jobs::list::ListError;
        match e {
            ListError::InvalidFilter { .. } => ApiError::BadRequest(e.to_string()),
            ListError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<crate::billing::BillingError> for ApiError {
    fn from(e: crate::billing::BillingError) -> Self {
        use crate::billing::BillingError;
        match e {
            BillingError::Forbidden { .. } => ApiError::Forbidden(e.to_string()),
            BillingError::Invalid { .. } => ApiError::BadRequest(e.to_string()),
            BillingError::NotFound(_) => ApiError::NotFound(e.to_string()),
            BillingError::Conflict(_) => ApiError::Conflict(e.to_string()),
            BillingError::NoStore | BillingError::Unavailable(_) => {
                ApiError::Unavailable(e.to_string())
            }
        }
    }
}
