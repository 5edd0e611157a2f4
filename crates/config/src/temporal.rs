//! `[temporal]`: where the Temporal frontend is, how to reach it, and how jobs start on it.

use std::path::PathBuf;

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
    /// Use TLS without an API key (`TEMPORAL_TLS` / `AVB_TEMPORAL_TLS=true`).
    pub tls: bool,
    /// mTLS: the client certificate and key, PEM files (`TEMPORAL_TLS_CLIENT_CERT_PATH`,
    /// `TEMPORAL_TLS_CLIENT_KEY_PATH`); set, TLS is on.
    pub tls_client_cert: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
    /// The CA of a self-hosted cluster's server certificate, PEM (`TEMPORAL_TLS_SERVER_CA_CERT_PATH`).
    pub tls_server_ca: Option<PathBuf>,
    /// The name the server's certificate must carry, when not the address's host
    /// (`TEMPORAL_TLS_SERVER_NAME`).
    pub tls_server_name: Option<String>,
    /// `avb dev` starts a dev server when none answers at `address`.
    pub dev_server_ui_port: u16,
    /// Ask for eager workflow start (effective when a worker shares the api's connection, as in
    /// `avb dev`; `AVB_TEMPORAL_EAGER_START`).
    pub eager_start: bool,
    /// `durable_echo` runs its activity as a local activity (`AVB_ECHO_LOCAL_ACTIVITY`).
    pub echo_local_activity: bool,
    /// Device commands and reads run their workflow on the devices queue, with planning,
    /// sending and reading as local activities there (`AVB_DEVICE_LOCAL_ACTIVITIES`); off,
    /// the workflow runs on `avb-workflows` and dispatches each step to `avb-devices`.
    pub device_local_activities: bool,
}

impl Default for TemporalConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:7233".into(),
            namespace: "default".into(),
            api_key: None,
            tls: false,
            tls_client_cert: None,
            tls_client_key: None,
            tls_server_ca: None,
            tls_server_name: None,
            dev_server_ui_port: 8233,
            eager_start: true,
            echo_local_activity: true,
            device_local_activities: true,
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
    // The Temporal SDKs' and CLI's own names: they win over the AVB_ aliases above.
    EnvVar::new(
        "TEMPORAL_ADDRESS",
        "host:port of the Temporal frontend (the standard name; wins over AVB_TEMPORAL_ADDRESS)",
        |t, v| {
            t.address = v.into();
            Ok(())
        },
    ),
    EnvVar::new(
        "TEMPORAL_NAMESPACE",
        "Temporal namespace (the standard name; wins over AVB_TEMPORAL_NAMESPACE)",
        |t, v| {
            t.namespace = v.into();
            Ok(())
        },
    ),
    EnvVar::new(
        "TEMPORAL_API_KEY",
        "Temporal Cloud API key (the standard name), turns TLS on; never printed",
        |t, v| {
            t.api_key = non_empty(v).map(Secret::new);
            Ok(())
        },
    ),
    EnvVar::new(
        "TEMPORAL_TLS",
        "TLS to Temporal (the standard name of AVB_TEMPORAL_TLS)",
        |t, v| {
            t.tls = parse_bool(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "TEMPORAL_TLS_CLIENT_CERT_PATH",
        "mTLS client certificate (PEM file) for Temporal; turns TLS on",
        |t, v| {
            t.tls_client_cert = non_empty(v).map(PathBuf::from);
            Ok(())
        },
    ),
    EnvVar::new(
        "TEMPORAL_TLS_CLIENT_KEY_PATH",
        "mTLS client key (PEM file) for Temporal",
        |t, v| {
            t.tls_client_key = non_empty(v).map(PathBuf::from);
            Ok(())
        },
    ),
    EnvVar::new(
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
        "CA of the Temporal server's certificate (PEM file), for a self-hosted cluster",
        |t, v| {
            t.tls_server_ca = non_empty(v).map(PathBuf::from);
            Ok(())
        },
    ),
    EnvVar::new(
        "TEMPORAL_TLS_SERVER_NAME",
        "name the Temporal server's certificate must carry (default: the address's host)",
        |t, v| {
            t.tls_server_name = non_empty(v);
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
    EnvVar::new(
        "AVB_DEVICE_LOCAL_ACTIVITIES",
        "device commands and reads run on the devices workers with local activities (default true)",
        |t, v| {
            t.device_local_activities = parse_bool(v)?;
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
        if self.tls_client_cert.is_some() != self.tls_client_key.is_some() {
            return Err((
                "temporal.tls_client_cert",
                "mTLS needs both TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether the connection to Temporal is TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls
            || self.api_key.is_some()
            || self.tls_client_cert.is_some()
            || self.tls_server_ca.is_some()
            || self.tls_server_name.is_some()
    }
}
