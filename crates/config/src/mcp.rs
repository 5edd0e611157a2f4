//! `[mcp]`: who may reach `/mcp`, how long a tool call waits for its job, and how often the
//! upstream MCP servers are looked at.

use serde::Deserialize;

use super::Secret;
use super::env::{EnvVar, non_empty, parse_bool, parse_uint, split_list};

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpSettings {
    /// Host headers accepted on /mcp (DNS-rebinding protection). Loopback names by default.
    pub allowed_hosts: Vec<String>,
    /// Origins accepted from browsers besides pages on an allowed host (a request with any
    /// other `Origin` gets 403 on every MCP route).
    pub allowed_origins: Vec<String>,
    /// How long a tool call waits for its workflow before answering with a job handle.
    pub wait_budget_secs: u64,
    /// How long a call that could become a task waits for its job first: a job done by then
    /// answers with its result, as the direct call would, instead of a task the client must
    /// poll (`AVB_TASK_SHORTCUT_MS`; 0 = always a task).
    pub task_shortcut_ms: u64,
    /// Serve the MCP conformance suite's fixtures (tools, resources, prompts, logging,
    /// completions named `test_*` / `test://`; `AVB_MCP_CONFORMANCE_FIXTURES`). Test-only:
    /// needs an `avb-api` built with the `conformance-fixtures` cargo feature, else start fails.
    pub conformance_fixtures: bool,
    /// The HMAC key that seals `requestState` of multi round-trip calls (a client's approval):
    /// at least 32 bytes, the same on every api replica (`AVB_REQUEST_STATE_KEY`). Unset, each
    /// api process makes its own, so a retry must reach the process that asked.
    pub request_state_key: Option<Secret<String>>,
    /// How often upstream MCP servers are checked (tools listed, down ones withdrawn) and the
    /// config file re-read for `[mcp_servers]` changes (`AVB_UPSTREAM_CHECK_SECS`).
    pub upstream_check_secs: u64,
    /// Most MCP sessions open at once in one api process, Streamable HTTP and legacy SSE
    /// together (`AVB_MCP_MAX_SESSIONS`; default 1000).
    pub max_sessions: usize,
    /// Most MCP sessions one API key may have open (`AVB_MCP_MAX_SESSIONS_PER_KEY`; default 100).
    pub max_sessions_per_key: usize,
    /// A session with no request for this long is closed (`AVB_MCP_SESSION_IDLE_SECS`; default
    /// 1800). Clients of session protocols reconnect with a new session.
    pub session_idle_secs: u64,
    /// Audio up to this many bytes comes inline (base64) in a speech job's MCP result; longer
    /// audio comes as a link to its resource and download (`AVB_MAX_INLINE_AUDIO_BYTES`; default 1 MiB,
    /// about 21 s of speech): hosts choke on multi-megabyte results and may paste them into a
    /// model's context.
    pub max_inline_audio_bytes: u64,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            wait_budget_secs: 25,
            task_shortcut_ms: 200,
            conformance_fixtures: false,
            request_state_key: None,
            upstream_check_secs: 5,
            max_sessions: 1000,
            max_sessions_per_key: 100,
            session_idle_secs: 1800,
            max_inline_audio_bytes: 1024 * 1024,
        }
    }
}

pub const ENV: &[EnvVar<McpSettings>] = &[
    EnvVar::new(
        "AVB_MAX_INLINE_AUDIO_BYTES",
        "longest audio sent inline in an MCP result; longer comes as a resource link and a download link (default 1 MiB)",
        |m, v| {
            m.max_inline_audio_bytes = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_MCP_MAX_SESSIONS",
        "most MCP sessions open at once per api process (default 1000)",
        |m, v| {
            m.max_sessions = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_MCP_MAX_SESSIONS_PER_KEY",
        "most MCP sessions one API key may have open (default 100)",
        |m, v| {
            m.max_sessions_per_key = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_MCP_SESSION_IDLE_SECS",
        "an MCP session with no request for this long is closed (default 1800)",
        |m, v| {
            m.session_idle_secs = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_MCP_ALLOWED_HOSTS",
        "Host headers accepted, comma-separated, or * for any (default the loopback names)",
        |m, v| {
            m.allowed_hosts = split_list(v);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_MCP_ALLOWED_ORIGINS",
        "browser Origins accepted besides pages on an allowed host, comma-separated (default none)",
        |m, v| {
            m.allowed_origins = split_list(v);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_REQUEST_STATE_KEY",
        "HMAC key sealing requestState of client approvals, >= 32 bytes, same on every replica",
        |m, v| {
            m.request_state_key = non_empty(v).map(Secret::from);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_WAIT_BUDGET_SECS",
        "how long a tool call waits for its job before answering with a handle (default 25)",
        |m, v| {
            m.wait_budget_secs = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_TASK_SHORTCUT_MS",
        "how long a task-capable call waits for its job before answering with a task; a job \
         done by then answers with its result (default 200, 0 = always a task)",
        |m, v| {
            m.task_shortcut_ms = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_MCP_CONFORMANCE_FIXTURES",
        "serve the MCP conformance suite's fixtures (test builds only; default false)",
        |m, v| {
            m.conformance_fixtures = parse_bool(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_UPSTREAM_CHECK_SECS",
        "how often upstream MCP servers are checked and [mcp_servers] re-read (default 5)",
        |m, v| {
            m.upstream_check_secs = parse_uint(v)?;
            Ok(())
        },
    ),
];

impl McpSettings {
    /// Checks the settings; the error is (key, message).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(key) = &self.request_state_key
            && key.expose().len() < 32
        {
            return Err((
                "mcp.request_state_key",
                format!(
                    "is {} bytes; use at least 32 random bytes (e.g. openssl rand -hex 32)",
                    key.expose().len()
                ),
            ));
        }
        if self.task_shortcut_ms > 10_000 {
            return Err((
                "mcp.task_shortcut_ms",
                format!(
                    "{} is more than 10000: a task exists so that long jobs need not hold the \
                     request; use wait_budget_secs for direct calls",
                    self.task_shortcut_ms
                ),
            ));
        }
        if self.upstream_check_secs == 0 {
            return Err(("mcp.upstream_check_secs", "must be at least 1".into()));
        }
        if self.allowed_hosts.is_empty() {
            return Err((
                "mcp.allowed_hosts",
                "is empty: list the host names clients reach this server by (e.g. \
                 mcp.example.com), or \"*\" to accept any Host behind a proxy that checks it"
                    .into(),
            ));
        }
        if self.max_sessions == 0 {
            return Err(("mcp.max_sessions", "must be at least 1".into()));
        }
        if self.max_sessions_per_key == 0 {
            return Err(("mcp.max_sessions_per_key", "must be at least 1".into()));
        }
        if self.session_idle_secs < 10 {
            return Err((
                "mcp.session_idle_secs",
                "must be at least 10: clients need time between requests".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any Host is accepted only when said with "*": an empty list (which once turned the check
    /// off) refuses the start, and so do session limits that would refuse every session.
    #[test]
    fn an_empty_host_list_and_zero_session_limits_are_refused() {
        assert!(McpSettings::default().validate().is_ok());
        let empty = McpSettings {
            allowed_hosts: Vec::new(),
            ..McpSettings::default()
        };
        let (key, message) = empty.validate().expect_err("empty host list");
        assert_eq!(key, "mcp.allowed_hosts");
        assert!(message.contains("\"*\""), "{message}");
        let any = McpSettings {
            allowed_hosts: vec!["*".into()],
            ..McpSettings::default()
        };
        assert!(any.validate().is_ok());
        for (bad, key) in [
            (
                McpSettings {
                    max_sessions_per_key: 0,
                    ..McpSettings::default()
                },
                "mcp.max_sessions_per_key",
            ),
            (
                McpSettings {
                    session_idle_secs: 1,
                    ..McpSettings::default()
                },
                "mcp.session_idle_secs",
            ),
        ] {
            assert_eq!(bad.validate().map_err(|e| e.0), Err(key));
        }
    }
}
