//! Rate limits: a token bucket per (API key, tool) for MCP tool calls, and one per API key for
//! REST requests under `/api/v2`. Limits come from `[rate_limits]`; the buckets live in Redis
//! when `redis.url` is set (shared by every api process), in this process otherwise.
//!
//! A bucket holds up to `burst` tokens and gains `per_minute / 60` tokens a second; each call
//! takes one. An empty bucket refuses the call and says when the next token arrives.
//!
//! Redis unreachable: **fail open**. Limits protect capacity and fairness, not money or data
//! (credits are held by the ledger, tenants are isolated by auth), so an outage of the cache
//! must not become an outage of the api. The call is then counted in this process's own buckets
//! instead (each process still caps a runaway client at the configured rate, the shared limit is
//! loose until Redis is back), with a warning log and `avb_rate_limit_backend_errors_total`.
//! After a failure Redis is not asked again for `REDIS_RETRY_AFTER`, so an outage costs no
//! latency on every call.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use avb_config::{Limit, RateLimitSettings, RedisSettings};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use prometheus::IntCounterVec;

use crate::auth::Caller;
use crate::core::problem::{ErrorKind, Problem};
use crate::metrics::Metrics;
use crate::state::ApiState;

mod buckets;
mod redis_buckets;

pub use buckets::{LocalBuckets, take_token};
pub use redis_buckets::RedisBuckets;

/// How long the in-process fallback serves alone after Redis failed.
pub const REDIS_RETRY_AFTER: Duration = Duration::from_secs(2);
/// Most buckets kept in one process; full (idle) buckets go first, as they carry no state.
pub const MAX_LOCAL_BUCKETS: usize = 100_000;
/// Prefix of the bucket keys in Redis.
pub const REDIS_KEY_PREFIX: &str = "avb:ratelimit:";

/// What taking a token answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Allowed,
    /// The bucket is empty; the next token comes after `retry_after`.
    Denied {
        retry_after: Duration,
    },
}

/// Where buckets live. `bucket` names one (caller and scope); `limit` is its size and rate.
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn take<'a>(&'a self, bucket: &'a str, limit: Limit) -> BoxFuture<'a, Result<Verdict, String>>;
}

/// What a limit applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Tool(String),
    Rest,
    /// An MCP request other than a tool call that reads state: `tasks/get`, `resources/read`,
    /// `resources/subscribe`, `subscriptions/listen`.
    Method(String),
    /// Opening an MCP session (Streamable HTTP `initialize`, a legacy SSE stream).
    Session,
}

/// A refused call: which limit, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    pub scope: Scope,
    pub limit: Limit,
    /// Whole seconds until a call can pass again (at least 1).
    pub retry_after_secs: u64,
}

impl std::fmt::Display for RateLimited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.scope {
            Scope::Tool(t) => format!("calls of {t}"),
            Scope::Rest => "REST requests".into(),
            Scope::Method(m) => format!("{m} requests"),
            Scope::Session => "MCP sessions opened".into(),
        };
        write!(
            f,
            "rate limit exceeded: at most {} {what} per minute per API key (burst {}); retry \
             after {} s",
            self.limit.per_minute, self.limit.burst, self.retry_after_secs
        )
    }
}

impl std::error::Error for RateLimited {}

impl RateLimited {
    /// The facts as JSON (an MCP error's `details`).
    pub fn details(&self) -> serde_json::Value {
        let (scope, tool) = match &self.scope {
            Scope::Tool(t) => ("tool", Some(t.as_str())),
            Scope::Rest => ("rest", None),
            Scope::Method(m) => ("method", Some(m.as_str())),
            Scope::Session => ("session", None),
        };
        serde_json::json!({
            "retry_after_secs": self.retry_after_secs,
            "scope": scope,
            "tool": tool,
            "per_minute": self.limit.per_minute,
            "burst": self.limit.burst,
        })
    }
}

impl From<RateLimited> for Problem {
    fn from(e: RateLimited) -> Self {
        Problem::new(ErrorKind::RateLimited, e.to_string()).with_details(e.details())
    }
}

/// The api's limiter: settings, the backend, and the in-process fallback for Redis outages.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RateLimitSettings,
    backend: Box<dyn Backend>,
    /// Used while a shared backend is failing (fail open, still bounded per process).
    fallback: Option<LocalBuckets>,
    failing_until: Mutex<Option<Instant>>,
    limited: IntCounterVec,
    backend_errors: IntCounterVec,
}

impl RateLimiter {
    /// Redis when `redis.url` is set, in-process buckets otherwise.
    pub fn new(
        settings: &RateLimitSettings,
        redis: &RedisSettings,
        metrics: &Metrics,
    ) -> anyhow::Result<Self> {
        let (backend, fallback): (Box<dyn Backend>, _) =
            match &redis.url {
                Some(url) => (
                    Box::new(RedisBuckets::new(url).map_err(|e| {
                        anyhow::anyhow!("redis.url (REDIS_URL) cannot be used: {e}")
                    })?),
                    Some(LocalBuckets::default()),
                ),
                None => (Box::new(LocalBuckets::default()), None),
            };
        Ok(Self::with_backend(settings, backend, fallback, metrics))
    }

    pub fn with_backend(
        settings: &RateLimitSettings,
        backend: Box<dyn Backend>,
        fallback: Option<LocalBuckets>,
        metrics: &Metrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                backend,
                fallback,
                failing_until: Mutex::new(None),
                limited: metrics.rate_limited.clone(),
                backend_errors: metrics.rate_limit_backend_errors.clone(),
            }),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// One call of `tool` by `caller`.
    pub async fn check_tool(&self, caller: &Caller, tool: &str) -> Result<(), RateLimited> {
        self.check_tool_as(caller, tool, tool).await
    }

    /// One call of `tool` by `caller`, counted in the metrics as `label` (a tenant's
    /// provisioned tools are not named in the installation's metrics).
    pub async fn check_tool_as(
        &self,
        caller: &Caller,
        tool: &str,
        label: &str,
    ) -> Result<(), RateLimited> {
        let s = &self.inner.settings;
        if !s.enabled {
            return Ok(());
        }
        let bucket = format!("{}|tool|{tool}", caller.rate_limit_id());
        match self
            .check(&bucket, s.tool_limit(tool), Scope::Tool(label.to_string()))
            .await
        {
            Err(mut limited) => {
                // The caller is told about its own tool by name.
                limited.scope = Scope::Tool(tool.to_string());
                Err(limited)
            }
            ok => ok,
        }
    }

    /// One MCP request `method` (not a tool call) by `caller`, at the per-key rate unless
    /// `[rate_limits.tools]` names the method.
    pub async fn check_method(&self, caller: &Caller, method: &str) -> Result<(), RateLimited> {
        let s = &self.inner.settings;
        if !s.enabled {
            return Ok(());
        }
        let bucket = format!("{}|method|{method}", caller.rate_limit_id());
        self.check(
            &bucket,
            s.tool_limit(method),
            Scope::Method(method.to_string()),
        )
        .await
    }

    /// One MCP session opened by `caller`.
    pub async fn check_session_open(&self, caller: &Caller) -> Result<(), RateLimited> {
        let s = &self.inner.settings;
        if !s.enabled {
            return Ok(());
        }
        let bucket = format!("{}|session", caller.rate_limit_id());
        self.check(&bucket, s.session_limit(), Scope::Session).await
    }

    /// One REST request by `caller`.
    pub async fn check_rest(&self, caller: &Caller) -> Result<(), RateLimited> {
        let s = &self.inner.settings;
        if !s.enabled {
            return Ok(());
        }
        let bucket = format!("{}|rest", caller.rate_limit_id());
        self.check(&bucket, s.rest_limit(), Scope::Rest).await
    }

    async fn check(&self, bucket: &str, limit: Limit, scope: Scope) -> Result<(), RateLimited> {
        let verdict = self.take(bucket, limit).await;
        match verdict {
            Verdict::Allowed => Ok(()),
            Verdict::Denied { retry_after } => {
                let label = match &scope {
                    Scope::Tool(t) | Scope::Method(t) => t.as_str(),
                    Scope::Rest => "rest",
                    Scope::Session => "session",
                };
                self.inner.limited.with_label_values(&[label]).inc();
                let secs = retry_after.as_secs_f64().ceil();
                Err(RateLimited {
                    scope,
                    limit,
                    // Saturating float → int; at least 1 s (a `Retry-After: 0` invites a spin).
                    retry_after_secs: (secs as u64).max(1),
                })
            }
        }
    }

    /// The backend's verdict; while it fails, the fallback's (or allowed, with none).
    async fn take(&self, bucket: &str, limit: Limit) -> Verdict {
        let inner = &self.inner;
        let Some(fallback) = &inner.fallback else {
            return inner
                .backend
                .take(bucket, limit)
                .await
                .unwrap_or(Verdict::Allowed);
        };
        let now = Instant::now();
        let failing = inner
            .failing_until
            .lock()
            .map(|f| f.is_some_and(|until| now < until))
            .unwrap_or(false);
        if !failing {
            match inner.backend.take(bucket, limit).await {
                Ok(v) => {
                    if let Ok(mut f) = inner.failing_until.lock()
                        && f.take().is_some()
                    {
                        tracing::info!(
                            backend = inner.backend.name(),
                            "rate-limit backend is back"
                        );
                    }
                    return v;
                }
                Err(error) => {
                    inner
                        .backend_errors
                        .with_label_values(&[inner.backend.name()])
                        .inc();
                    tracing::warn!(
                        backend = inner.backend.name(),
                        %error,
                        "rate-limit backend unavailable: failing open to this process's own \
                         buckets for {} s",
                        REDIS_RETRY_AFTER.as_secs()
                    );
                    if let Ok(mut f) = inner.failing_until.lock() {
                        *f = Some(Instant::now() + REDIS_RETRY_AFTER);
                    }
                }
            }
        }
        fallback.take_at(bucket, limit, Instant::now())
    }
}

/// Middleware for REST routes (after `auth::authenticate`): one token of the caller's REST
/// bucket per request; an empty bucket answers 429 with `Retry-After`.
pub async fn limit_rest(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let Some(caller) = req.extensions().get::<Caller>() else {
        return next.run(req).await;
    };
    match state.limiter.check_rest(caller).await {
        Ok(()) => next.run(req).await,
        Err(limited) => {
            tracing::info!(caller = %caller.rate_limit_id(), %limited, "REST request rate-limited");
            Problem::from(limited).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Broken;
    impl Backend for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn take<'a>(
            &'a self,
            _bucket: &'a str,
            _limit: Limit,
        ) -> BoxFuture<'a, Result<Verdict, String>> {
            Box::pin(async { Err("connection refused".to_string()) })
        }
    }

    #[tokio::test]
    async fn a_failing_shared_backend_fails_open_to_local_buckets_and_is_counted() {
        let metrics = Metrics::new().expect("metrics");
        let settings = RateLimitSettings {
            per_key_per_minute: 60,
            burst: 2,
            ..RateLimitSettings::default()
        };
        let limiter = RateLimiter::with_backend(
            &settings,
            Box::new(Broken),
            Some(LocalBuckets::default()),
            &metrics,
        );
        let caller = Caller::local();
        assert!(limiter.check_tool(&caller, "get_job").await.is_ok());
        assert!(limiter.check_tool(&caller, "get_job").await.is_ok());
        let e = limiter
            .check_tool(&caller, "get_job")
            .await
            .expect_err("local fallback still limits");
        assert_eq!(e.retry_after_secs, 1);
        assert!(e.to_string().contains("calls of get_job"), "{e}");
        assert!(e.to_string().contains("retry after 1 s"), "{e}");
        // Asked once, then left alone for REDIS_RETRY_AFTER.
        assert_eq!(
            metrics
                .rate_limit_backend_errors
                .with_label_values(&["broken"])
                .get(),
            1
        );
        assert_eq!(
            metrics.rate_limited.with_label_values(&["get_job"]).get(),
            1
        );
    }

    #[tokio::test]
    async fn disabled_limits_allow_everything() {
        let metrics = Metrics::new().expect("metrics");
        let settings = RateLimitSettings {
            enabled: false,
            per_key_per_minute: 1,
            burst: 1,
            ..RateLimitSettings::default()
        };
        let limiter =
            RateLimiter::new(&settings, &RedisSettings::default(), &metrics).expect("limiter");
        for _ in 0..10 {
            assert!(limiter.check_rest(&Caller::local()).await.is_ok());
        }
    }
}
