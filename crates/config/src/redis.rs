//! `[redis]`: shared state across api processes (the rate limits' buckets, MCP sessions), when
//! a URL is set.

use serde::Deserialize;

use super::env::{EnvVar, non_empty};

#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `REDIS_URL` (or `AVB_REDIS_URL`): `redis://[:password@]host:port[/db]`. Unset, rate
    /// limits and MCP sessions are kept in each process. May hold a password: never printed.
    pub url: Option<String>,
}

// Written out rather than a `Secret` field: the api matches on `url` as an `Option<String>`.
impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self
            .url
            .as_deref()
            .map(|u| u.split(':').next().unwrap_or(""));
        f.debug_struct("RedisSettings")
            .field("url", &scheme.map(|s| format!("{s}://<redacted>")))
            .finish()
    }
}

pub const ENV: &[EnvVar<RedisSettings>] = &[
    EnvVar::new(
        "REDIS_URL",
        "redis://[:password@]host:port[/db]: buckets shared by all api processes; never printed",
        |r, v| {
            r.url = non_empty(v);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_REDIS_URL",
        "the same under our prefix; REDIS_URL wins when both are set",
        |r, v| {
            // The conventional name wins over ours when both are set, in either order.
            if r.url.is_none() {
                r.url = non_empty(v);
            }
            Ok(())
        },
    ),
];

/// URL schemes the `redis` crate connects with.
const REDIS_SCHEMES: &[&str] = &["redis://", "rediss://", "redis+unix://", "unix://"];

impl RedisSettings {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match self.url.as_deref() {
            Some(u) if !REDIS_SCHEMES.iter().any(|s| u.starts_with(s)) => Err((
                "redis.url",
                format!("must start with one of {}", REDIS_SCHEMES.join(", ")),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_url_is_redacted_and_checked() {
        let r = RedisSettings {
            url: Some("redis://:hunter2@cache:6379/0".into()),
        };
        assert!(!format!("{r:?}").contains("hunter2"));
        assert!(r.validate().is_ok());
        let bad = RedisSettings {
            url: Some("http://cache".into()),
        };
        assert_eq!(bad.validate().map_err(|e| e.0), Err("redis.url"));
    }
}
