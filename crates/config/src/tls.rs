//! `[tls]`: whom outbound https calls trust (upstream MCP servers, Home Assistant, provisioned
//! servers): the platform's roots, plus the PEM bundle of a private or corporate CA.

use std::path::PathBuf;

use serde::Deserialize;

use super::env::{EnvVar, non_empty};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// A PEM bundle of extra CA certificates (`AVB_CA_FILE`); the start fails when it cannot
    /// be read or holds no certificate.
    pub ca_file: Option<PathBuf>,
}

pub const ENV: &[EnvVar<TlsSettings>] = &[EnvVar::new(
    "AVB_CA_FILE",
    "PEM bundle of extra CA certificates trusted by outbound https (default: platform roots only)",
    |t, v| {
        t.ca_file = non_empty(v).map(PathBuf::from);
        Ok(())
    },
)];
