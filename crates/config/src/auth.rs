//! `[auth]`: whether callers need credentials; `[auth.oidc]` (module `oidc`) adds JWTs.

use serde::Deserialize;

use super::OidcSettings;
use super::env::{EnvVar, parse_bool};

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Every MCP and `/api/v2` request needs an API key (`AVB_AUTH_REQUIRED`; default true).
    /// Off, every caller is the operator of the `local` tenant.
    pub required: bool,
    /// JWT bearer tokens from an OIDC issuer, next to API keys (`[auth.oidc]`, `AVB_OIDC_*`).
    pub oidc: Option<OidcSettings>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            required: true,
            oidc: None,
        }
    }
}

pub const ENV: &[EnvVar<AuthSettings>] = &[EnvVar::new(
    "AVB_AUTH_REQUIRED",
    "every MCP and /api/v2 request needs an API key (default true)",
    |a, v| {
        a.required = parse_bool(v)?;
        Ok(())
    },
)];

impl AuthSettings {
    /// Checks the settings; the error is (key, message).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.oidc.as_ref().map_or(Ok(()), OidcSettings::validate)
    }
}
