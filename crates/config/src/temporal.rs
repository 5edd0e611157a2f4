//! `[temporal]`: where the Temporal frontend is, how to reach it, and how jobs start on it.

use serde::Deserialize;

use super::Secret;
use super::env::{EnvVar, non_empty, parse_bool, parse_uint};

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemporalConfig {
    /// `host:port` of the Temporal frontend (`AVB_TEMPORAL_ADDRESS`).
    pub address: String,
    pub namespace: String,
    /// Temporal Cloud API key (`AVB_TEMPORAL_API_KEY`); enables TLS.
    pub api_key: Option<Secret<String>>,
    /// Use TLS without an API key (`AVB_TEMPORAL_TLS=true`).
    pub tls: bool,
    /// `avb dev` starts a dev server when none answers at `address`.
    pub dev_server_ui_port: u16,
    /// Ask for eager workflow start (effective when a worker shares the api's connection, as in
    /// `avb dev`; `AVB_TEMPORAL_EAGER_START`).
    pub eager_start: bool,
    /// `durable_echo` runs its activity as a local activity (`AVB_ECHO_LOCAL_ACTIVITY`).
    pub echo_local_activity: bool,
}

impl Default for TemporalConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:7233".into(),
            namespace: "default".into(),
            api_key: None,
            tls: false,
            dev_server_ui_port: 8233,
            eager_start: true,
            echo_local_activity: true,
        }
    }
}

pub const ENV: &[EnvVar<TemporalConfig>] = &[
    EnvVar::new(
        "AVB_TEMPORAL_ADDRESS",
        "host:port of the Temporal frontend (default 127.0.0.1:7233)",
        |t, v| {
            t.address = v.into();
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_TEMPORAL_NAMESPACE",
        "Temporal namespace (default `default`)",
        |t, v| {
            t.namespace = v.into();
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_TEMPORAL_API_KEY",
        "Temporal Cloud API key, turns TLS on; never printed",
        |t, v| {
            t.api_key = non_empty(v).map(Secret::new);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_TEMPORAL_TLS",
        "TLS to Temporal without an API key (default false)",
        |t, v| {
            t.tls = parse_bool(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_TEMPORAL_UI_PORT",
        "web UI port of the dev server `avb dev` starts (default 8233)",
        |t, v| {
            t.dev_server_ui_port = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_TEMPORAL_EAGER_START",
        "ask Temporal for eager workflow start (default true)",
        |t, v| {
            t.eager_start = parse_bool(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_ECHO_LOCAL_ACTIVITY",
        "durable_echo runs its activity as a local activity (default true)",
        |t, v| {
            t.echo_local_activity = parse_bool(v)?;
            Ok(())
        },
    ),
];

impl TemporalConfig {
    /// Checks the settings; the error is (key, message).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.address.trim().is_empty() {
            return Err(("temporal.address", "must not be empty".into()));
        }
        if self.namespace.trim().is_empty() {
            return Err(("temporal.namespace", "must not be empty".into()));
        }
        Ok(())
    }
}
