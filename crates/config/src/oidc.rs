//! `[auth.oidc]`: JWT bearer tokens from an OpenID Connect issuer (Keycloak or any other),
//! accepted next to API keys. The token's signature is checked against the issuer's JWKS, and
//! its claims name the tenant and the role.

use serde::Deserialize;

use super::env::{EnvVar, non_empty, parse_uint};

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OidcSettings {
    /// The `iss` tokens must carry, e.g. `https://sso.example.com/realms/avb`
    /// (`AVB_OIDC_ISSUER`).
    pub issuer: String,
    /// The `aud` tokens must contain (`AVB_OIDC_AUDIENCE`), e.g. the client id.
    pub audience: String,
    /// Where the signing keys are (`AVB_OIDC_JWKS_URL`). Default: the `jwks_uri` of
    /// `<issuer>/.well-known/openid-configuration` (a failed discovery is an error, not a
    /// guess).
    pub jwks_url: Option<String>,
    /// Claim naming the tenant (an existing one) (`AVB_OIDC_TENANT_CLAIM`; default `tenant`).
    pub tenant_claim: String,
    /// Claim with the role, HUMAN or AGENT (`AVB_OIDC_ROLE_CLAIM`; default `role`). Keycloak's
    /// `realm_access.roles` containing `avb-human` or `avb-agent` works too.
    pub role_claim: String,
    /// Keys are fetched again after this long (`AVB_OIDC_JWKS_CACHE_SECS`; default 3600).
    pub jwks_cache_secs: u64,
    /// A token signed with an unknown key id refetches the keys, at most this often
    /// (`AVB_OIDC_JWKS_MIN_REFETCH_SECS`; default 10).
    pub jwks_min_refetch_secs: u64,
    /// Clock skew allowed on `exp` and `nbf` (`AVB_OIDC_LEEWAY_SECS`; default 30).
    pub leeway_secs: u64,
}

impl Default for OidcSettings {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audience: String::new(),
            jwks_url: None,
            tenant_claim: "tenant".into(),
            role_claim: "role".into(),
            jwks_cache_secs: 3600,
            jwks_min_refetch_secs: 10,
            leeway_secs: 30,
        }
    }
}

/// Applied to `[auth.oidc]`, which the first of these variables creates.
pub const ENV: &[EnvVar<OidcSettings>] = &[
    EnvVar::new(
        "AVB_OIDC_ISSUER",
        "the iss JWTs must carry, an http(s) URL; turns JWT bearer tokens on",
        |o, v| {
            o.issuer = v.trim_end_matches('/').into();
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_OIDC_AUDIENCE",
        "the aud JWTs must contain, e.g. the client id",
        |o, v| {
            o.audience = v.into();
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_OIDC_JWKS_URL",
        "where the signing keys are (default from the issuer's discovery document)",
        |o, v| {
            o.jwks_url = non_empty(v);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_OIDC_TENANT_CLAIM",
        "claim naming the tenant (default tenant)",
        |o, v| {
            o.tenant_claim = v.into();
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_OIDC_ROLE_CLAIM",
        "claim with the role, HUMAN or AGENT (default role)",
        |o, v| {
            o.role_claim = v.into();
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_OIDC_JWKS_CACHE_SECS",
        "keys are fetched again after this long (default 3600)",
        |o, v| {
            o.jwks_cache_secs = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_OIDC_JWKS_MIN_REFETCH_SECS",
        "an unknown key id refetches the keys at most this often (default 10)",
        |o, v| {
            o.jwks_min_refetch_secs = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_OIDC_LEEWAY_SECS",
        "clock skew allowed on exp and nbf (default 30)",
        |o, v| {
            o.leeway_secs = parse_uint(v)?;
            Ok(())
        },
    ),
];

fn is_http_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://")) && s.len() > "https://".len()
}

/// Whether an http(s) URL may be used for the issuer: https always; plain http only to a
/// loopback host (a test issuer on this machine), as tokens and keys travel over it.
fn is_safe_issuer_url(s: &str) -> bool {
    if s.starts_with("https://") {
        return true;
    }
    let Some(rest) = s.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

impl OidcSettings {
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }

    /// Checks the settings; the error is (key, message).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !is_http_url(&self.issuer) {
            return Err((
                "auth.oidc.issuer",
                format!("must be an http(s) URL, got {:?}", self.issuer),
            ));
        }
        if !is_safe_issuer_url(&self.issuer) {
            return Err((
                "auth.oidc.issuer",
                format!(
                    "must be https:// ({:?}): plain http is accepted only for a loopback issuer",
                    self.issuer
                ),
            ));
        }
        if self.audience.trim().is_empty() {
            return Err((
                "auth.oidc.audience",
                "must be set (the client id tokens are issued for)".into(),
            ));
        }
        if let Some(u) = &self.jwks_url
            && !(is_http_url(u) && is_safe_issuer_url(u))
        {
            return Err((
                "auth.oidc.jwks_url",
                format!("must be an https:// URL (plain http only on loopback), got {u:?}"),
            ));
        }
        if self.tenant_claim.trim().is_empty() {
            return Err(("auth.oidc.tenant_claim", "must not be empty".into()));
        }
        if self.role_claim.trim().is_empty() {
            return Err(("auth.oidc.role_claim", "must not be empty".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_validation() {
        let s = OidcSettings {
            issuer: "https://sso.example.com/realms/avb/".into(),
            audience: "avb".into(),
            ..OidcSettings::default()
        };
        assert!(s.validate().is_ok());
        for (issuer, ok) in [
            ("http://sso.example.com/realms/avb", false),
            ("http://127.0.0.1:8080/realms/avb", true),
            ("http://localhost/realms/avb", true),
            ("http://[::1]:9/x", true),
            ("http://localhost.evil.example/x", false),
        ] {
            let t = OidcSettings {
                issuer: issuer.into(),
                ..s.clone()
            };
            assert_eq!(t.validate().is_ok(), ok, "{issuer}");
        }
        assert_eq!(
            s.discovery_url(),
            "https://sso.example.com/realms/avb/.well-known/openid-configuration"
        );
        let no_aud = OidcSettings {
            audience: String::new(),
            ..s.clone()
        };
        assert_eq!(
            no_aud.validate().map_err(|e| e.0),
            Err("auth.oidc.audience")
        );
        let bad_issuer = OidcSettings {
            issuer: "sso.example.com".into(),
            ..s.clone()
        };
        assert_eq!(
            bad_issuer.validate().map_err(|e| e.0),
            Err("auth.oidc.issuer")
        );
        let bad_jwks = OidcSettings {
            jwks_url: Some("file:///etc/passwd".into()),
            ..s
        };
        assert_eq!(
            bad_jwks.validate().map_err(|e| e.0),
            Err("auth.oidc.jwks_url")
        );
    }
}
