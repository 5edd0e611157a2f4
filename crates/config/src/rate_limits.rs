//! `[rate_limits]`: token buckets per API key and per tool (MCP), and per key (REST under
//! `/api/v2`). With `redis.url` set (module `redis`), every api process shares the buckets in
//! Redis; otherwise each process keeps its own.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::env::{EnvVar, parse_bool, parse_uint};

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Enforce the limits (`AVB_RATE_LIMITS_ENABLED`; default true).
    pub enabled: bool,
    /// Sustained rate per API key: REST requests per minute, and calls per minute of each tool
    /// not in `tools` (`AVB_RATE_LIMITS_PER_KEY_PER_MINUTE`; default 600, i.e. 10/s).
    pub per_key_per_minute: u32,
    /// Bucket size: how many requests may come at once before the sustained rate applies
    /// (`AVB_RATE_LIMITS_BURST`; default 100). Never more than one minute's allowance of the
    /// limit it belongs to.
    pub burst: u32,
    /// Calls per minute per key for single tools, overriding `per_key_per_minute`, e.g.
    /// `[rate_limits.tools] generate_speech = 60` (`AVB_RATE_LIMITS_TOOLS=generate_speech=60,…`).
    pub tools: BTreeMap<String, u32>,
    /// MCP sessions one key may open per minute, Streamable HTTP and legacy SSE together
    /// (`AVB_RATE_LIMITS_SESSIONS_PER_MINUTE`; default 60).
    pub sessions_per_minute: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_key_per_minute: 600,
            burst: 100,
            tools: BTreeMap::new(),
            sessions_per_minute: 60,
        }
    }
}

pub const ENV: &[EnvVar<RateLimitSettings>] = &[
    EnvVar::new(
        "AVB_RATE_LIMITS_SESSIONS_PER_MINUTE",
        "MCP sessions one key may open per minute (default 60)",
        |r, v| {
            r.sessions_per_minute = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_RATE_LIMITS_ENABLED",
        "enforce the rate limits (default true)",
        |r, v| {
            r.enabled = parse_bool(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_RATE_LIMITS_PER_KEY_PER_MINUTE",
        "REST requests, and calls of each tool, per minute per API key (default 600)",
        |r, v| {
            r.per_key_per_minute = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_RATE_LIMITS_BURST",
        "how many requests may come at once before the rate applies (default 100)",
        |r, v| {
            r.burst = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_RATE_LIMITS_TOOLS",
        "per-tool limits per minute per key, tool=n,… (e.g. generate_speech=60)",
        |r, v| {
            r.tools = RateLimitSettings::parse_tools(v)?;
            Ok(())
        },
    ),
];

/// One token bucket's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Sustained rate: tokens added per minute.
    pub per_minute: u32,
    /// Bucket capacity (at least 1, at most `per_minute`).
    pub burst: u32,
}

impl Limit {
    fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_minute,
            burst: burst.min(per_minute).max(1),
        }
    }

    /// Tokens added per second.
    pub fn rate_per_sec(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }
}

impl RateLimitSettings {
    /// The limit on calls of `tool` per key.
    pub fn tool_limit(&self, tool: &str) -> Limit {
        let per_minute = self
            .tools
            .get(tool)
            .copied()
            .unwrap_or(self.per_key_per_minute);
        Limit::new(per_minute, self.burst)
    }

    /// The limit on sessions opened per key.
    pub fn session_limit(&self) -> Limit {
        Limit::new(self.sessions_per_minute, self.burst)
    }

    /// The limit on REST requests per key.
    pub fn rest_limit(&self) -> Limit {
        Limit::new(self.per_key_per_minute, self.burst)
    }

    /// Parses `AVB_RATE_LIMITS_TOOLS`: `tool=per_minute` pairs separated by commas.
    pub fn parse_tools(value: &str) -> Result<BTreeMap<String, u32>, String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|pair| {
                let (tool, n) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("expected tool=per_minute, got {pair:?}"))?;
                let n = n
                    .trim()
                    .parse::<u32>()
                    .map_err(|e| format!("{}: {e}", tool.trim()))?;
                Ok((tool.trim().to_string(), n))
            })
            .collect()
    }

    /// Checks the limits; the error is (key, message).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.per_key_per_minute == 0 {
            return Err((
                "rate_limits.per_key_per_minute",
                "must be at least 1 (set rate_limits.enabled = false to turn limits off)".into(),
            ));
        }
        if self.burst == 0 {
            return Err(("rate_limits.burst", "must be at least 1".into()));
        }
        if self.sessions_per_minute == 0 {
            return Err((
                "rate_limits.sessions_per_minute",
                "must be at least 1".into(),
            ));
        }
        for (tool, n) in &self.tools {
            if tool.is_empty() {
                return Err(("rate_limits.tools", "a tool name is empty".into()));
            }
            if *n == 0 {
                return Err(("rate_limits.tools", format!("{tool}: must be at least 1")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_overrides_and_burst_caps() {
        let s = RateLimitSettings {
            tools: BTreeMap::from([("generate_speech".to_string(), 6)]),
            ..RateLimitSettings::default()
        };
        assert_eq!(
            s.tool_limit("generate_speech"),
            Limit {
                per_minute: 6,
                burst: 6
            },
            "burst never exceeds one minute's allowance"
        );
        assert_eq!(
            s.tool_limit("get_job"),
            Limit {
                per_minute: 600,
                burst: 100
            }
        );
        assert_eq!(s.rest_limit(), s.tool_limit("list_jobs"));
    }

    #[test]
    fn tools_from_env() {
        let t = RateLimitSettings::parse_tools(" generate_speech=60, get_job = 5 ,").expect("ok");
        assert_eq!(t.get("generate_speech"), Some(&60));
        assert_eq!(t.get("get_job"), Some(&5));
        assert!(RateLimitSettings::parse_tools("get_job").is_err());
        let e = RateLimitSettings::parse_tools("get_job=x").expect_err("not a number");
        assert!(e.contains("get_job"), "{e}");
    }
}
