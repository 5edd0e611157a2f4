//! What every family and protocol shares: the state hub, callers and their authentication
//! (API keys, OIDC), rate limits, health, metrics, and the one error type.

pub mod auth;
pub mod health;
pub mod metrics;
pub mod oidc;
pub mod origin;
pub mod problem;
pub mod ratelimit;
pub mod resource_metadata;
pub mod shared_redis;
pub mod state;
