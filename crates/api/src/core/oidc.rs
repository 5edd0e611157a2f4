//! JWT bearer tokens from an OpenID Connect issuer (`[auth.oidc]`; Keycloak-compatible). A token
//! is accepted when its signature verifies against one of the issuer's JWKS keys (asymmetric
//! algorithms only: RS*, PS*, ES*, EdDSA), `iss` and `aud` match the settings, `exp` is in the
//! future and `nbf` (if any) in the past; its claims name the tenant and the role.
//!
//! Keys are fetched on first use (from `jwks_url`, else the issuer's discovery document, else
//! Keycloak's certs endpoint), kept for `jwks_cache_secs`, and fetched again when a token names
//! an unknown key id (key rotation) — at most once per `jwks_min_refetch_secs`, so a flood of
//! forged key ids cannot turn the api into a load generator against the issuer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use avb_config::OidcSettings;
use avb_store::Role;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::Value;

/// Roles in Keycloak's `realm_access.roles` (or in the role claim) that map to ours.
pub const KEYCLOAK_HUMAN_ROLE: &str = "avb-human";
pub const KEYCLOAK_AGENT_ROLE: &str = "avb-agent";
/// OAuth scopes that grant a role (in `scope`, space-separated, or `scp`): what an OAuth MCP
/// client asks the authorization server for. The operator scope wins when both are granted.
pub const AGENT_SCOPE: &str = "avb:agent";
pub const OPERATOR_SCOPE: &str = "avb:operator";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// The token is not acceptable; the message names the failing check.
    #[error("{0}")]
    Invalid(String),
    /// The issuer's keys cannot be had: not the token's fault.
    #[error("cannot fetch the OIDC issuer's signing keys: {0}")]
    Unavailable(String),
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `sub`, when present (rate limits count per subject).
    pub subject: Option<String>,
    pub tenant: String,
    pub role: Role,
}

#[derive(Default)]
struct KeyCache {
    keys: Option<Arc<Vec<Jwk>>>,
    fetched_at: Option<Instant>,
    /// Last fetch attempt (successful or not): refetches are rate-limited from it.
    attempted_at: Option<Instant>,
    last_error: Option<String>,
    /// The JWKS URL, once configured or discovered.
    jwks_url: Option<String>,
}

type HttpClient = reqwest::Client;

/// Longest wait for the issuer, and largest document accepted from it.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

pub struct OidcVerifier {
    settings: OidcSettings,
    /// Besides the configured audience, `aud` may name this server as a resource (RFC 8707):
    /// its public MCP URLs.
    resources: Vec<String>,
    http: HttpClient,
    /// Read by every verification without waiting on the network.
    cache: std::sync::RwLock<KeyCache>,
    /// One fetch from the issuer at a time; verifications with usable keys never wait for it.
    fetching: tokio::sync::Mutex<()>,
}

/// An HTTP(S) client for the issuer, with the process's trust store (the platform's roots and
/// `AVB_CA_FILE`, for an issuer behind a private CA).
fn http_client() -> anyhow::Result<HttpClient> {
    avb_tls::client_builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| anyhow::anyhow!("TLS for the OIDC issuer: {e}"))
}

impl OidcVerifier {
    /// `resources`: the URLs a token's `aud` may name instead of the configured audience.
    pub fn new(settings: OidcSettings, resources: Vec<String>) -> anyhow::Result<Self> {
        let http = http_client()?;
        let cache = KeyCache {
            jwks_url: settings.jwks_url.clone(),
            ..KeyCache::default()
        };
        Ok(Self {
            settings,
            resources,
            http,
            cache: std::sync::RwLock::new(cache),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Checks `token`; the error names the failing check.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, JwtError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| JwtError::Invalid(format!("malformed token: {e}")))?;
        let alg = header.alg;
        if alg.family() == AlgorithmFamily::Hmac {
            return Err(JwtError::Invalid(format!(
                "algorithm {alg:?} is not accepted (symmetric); the issuer must sign with a \
                 published key"
            )));
        }
        let jwk = self.key_for(header.kid.as_deref(), alg).await?;
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| JwtError::Invalid(format!("the issuer's key cannot be used: {e}")))?;
        let mut validation = Validation::new(alg);
        let issuer = self.settings.issuer.trim_end_matches('/');
        validation.set_issuer(&[issuer.to_string(), format!("{issuer}/")]);
        let mut audiences = vec![self.settings.audience.clone()];
        audiences.extend(self.resources.iter().cloned());
        validation.set_audience(&audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway_secs;
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| JwtError::Invalid(self.describe(e.kind())))?;
        self.claims(&data.claims)
    }

    fn describe(&self, kind: &ErrorKind) -> String {
        match kind {
            ErrorKind::InvalidSignature => "bad signature".into(),
            ErrorKind::ExpiredSignature => "token expired (exp)".into(),
            ErrorKind::ImmatureSignature => "token not yet valid (nbf)".into(),
            ErrorKind::InvalidIssuer => {
                format!("wrong issuer (iss): expected {}", self.settings.issuer)
            }
            ErrorKind::InvalidAudience => {
                let mut expected = vec![self.settings.audience.as_str()];
                expected.extend(self.resources.iter().map(String::as_str));
                format!("wrong audience (aud): expected {}", expected.join(" or "))
            }
            ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c}"),
            ErrorKind::InvalidClaimFormat(c) => format!("claim {c} has the wrong type"),
            ErrorKind::InvalidAlgorithm => "algorithm does not match the issuer's key (alg)".into(),
            other => format!("invalid token: {other:?}"),
        }
    }

    /// Tenant and role from the claims.
    fn claims(&self, claims: &Value) -> Result<VerifiedToken, JwtError> {
        let s = &self.settings;
        let tenant = claims
            .get(&s.tenant_claim)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                JwtError::Invalid(format!("missing tenant claim {:?}", s.tenant_claim))
            })?;
        let role = role_of(claims, &s.role_claim).ok_or_else(|| {
            JwtError::Invalid(format!(
                "missing role: claim {:?} must be HUMAN or AGENT (or realm_access.roles must \
                 contain {KEYCLOAK_HUMAN_ROLE} or {KEYCLOAK_AGENT_ROLE}, or scope must grant \
                 {OPERATOR_SCOPE} or {AGENT_SCOPE})",
                s.role_claim
            ))
        })?;
        Ok(VerifiedToken {
            subject: claims.get("sub").and_then(Value::as_str).map(String::from),
            tenant: tenant.to_string(),
            role,
        })
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, KeyCache> {
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The key that signed a token with `kid` and `alg`, fetching the JWKS when needed. The
    /// cache is never locked across a fetch: while one request refreshes the keys, the others
    /// verify with the keys at hand (or wait for that one fetch when there are none yet).
    async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Jwk, JwtError> {
        let ttl = Duration::from_secs(self.settings.jwks_cache_secs);
        let (keys, stale) = {
            let cache = self.read_cache();
            let stale = cache.fetched_at.is_none_or(|t| t.elapsed() >= ttl);
            (cache.keys.clone(), stale)
        };
        let keys = match keys {
            Some(keys) => {
                if stale {
                    self.refresh_unless_busy(false).await;
                }
                self.read_cache().keys.clone().unwrap_or(keys)
            }
            None => {
                // Nothing to verify with: wait for the fetch under way, or make one.
                self.refresh_unless_busy(true).await;
                let cache = self.read_cache();
                match cache.keys.clone() {
                    Some(keys) => keys,
                    None => {
                        return Err(JwtError::Unavailable(
                            cache
                                .last_error
                                .clone()
                                .unwrap_or_else(|| "not fetched".into()),
                        ));
                    }
                }
            }
        };
        if let Some(found) = find_key(&keys, kid, alg)? {
            return Ok(found);
        }
        // An unknown key id: the issuer may have rotated its keys.
        if self.refresh_unless_busy(true).await
            && let Some(keys) = self.read_cache().keys.clone()
            && let Some(found) = find_key(&keys, kid, alg)?
        {
            return Ok(found);
        }
        Err(JwtError::Invalid(match kid {
            Some(k) => format!("unknown signing key (kid {k:?}) at the issuer"),
            None => format!("no kid in the token and no single {alg:?} key at the issuer"),
        }))
    }

    fn may_fetch(&self, cache: &KeyCache) -> bool {
        let min = Duration::from_secs(self.settings.jwks_min_refetch_secs);
        cache.attempted_at.is_none_or(|t| t.elapsed() >= min)
    }

    /// Fetches the JWKS unless one was attempted within `jwks_min_refetch_secs`. When another
    /// request is fetching, `wait` waits for it, else returns at once. True when a fetch ran
    /// (here or in the request waited for).
    async fn refresh_unless_busy(&self, wait: bool) -> bool {
        let _gate = match self.fetching.try_lock() {
            Ok(g) => g,
            Err(_) if wait => {
                let _ = self.fetching.lock().await;
                return true;
            }
            Err(_) => return false,
        };
        let jwks_url = {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            if !self.may_fetch(&cache) {
                return false;
            }
            cache.attempted_at = Some(Instant::now());
            cache.jwks_url.clone()
        };
        let fetched = self.fetch(jwks_url).await;
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        match fetched {
            Ok((keys, url)) => {
                tracing::info!(keys = keys.len(), "fetched the OIDC issuer's signing keys");
                cache.keys = Some(Arc::new(keys));
                cache.fetched_at = Some(Instant::now());
                cache.last_error = None;
                // A discovered URL is kept only while it works: after a failure the next
                // fetch discovers again (the issuer may have moved its keys).
                cache.jwks_url = Some(url);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch the OIDC issuer's signing keys");
                cache.last_error = Some(e);
                if self.settings.jwks_url.is_none() {
                    cache.jwks_url = None;
                }
            }
        }
        true
    }

    /// The issuer's signing keys, from `jwks_url` (configured or discovered before) or from a
    /// fresh discovery; with the URL they came from.
    async fn fetch(&self, jwks_url: Option<String>) -> Result<(Vec<Jwk>, String), String> {
        let url = match jwks_url {
            Some(u) => u,
            None => self.discover().await?,
        };
        let body: Value = self.get_json(&url).await?;
        let keys = body
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{url}: no \"keys\" array"))?;
        // Keys this build cannot parse, and encryption keys, are skipped, not fatal.
        let keys = keys
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .filter(|k| !matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption)))
            .collect();
        Ok((keys, url))
    }

    /// `jwks_uri` from the issuer's discovery document. A failed discovery is an error that
    /// names the document, never a silent guess at another endpoint (set `jwks_url` to skip
    /// discovery).
    async fn discover(&self) -> Result<String, String> {
        let url = self.settings.discovery_url();
        let doc = self.get_json(&url).await.map_err(|e| {
            format!("OIDC discovery failed ({e}); set auth.oidc.jwks_url to skip it")
        })?;
        doc.get("jwks_uri")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| format!("{url}: no jwks_uri in the discovery document"))
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let fail = |e: &dyn std::fmt::Display| format!("GET {url}: {e}");
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fail(&avb_tls::with_causes(&e)))?;
        if !response.status().is_success() {
            return Err(fail(&response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(&e))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(fail(&format!("larger than {MAX_DOCUMENT_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| fail(&e))
    }
}

/// The key for `kid` (or, without one, the only key that fits `alg`). A key that declares
/// another algorithm than the token's is an error, never a fallback.
fn find_key(keys: &[Jwk], kid: Option<&str>, alg: Algorithm) -> Result<Option<Jwk>, JwtError> {
    let fits = |k: &&Jwk| key_family(k) == Some(alg.family());
    let found = match kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid)),
        None => {
            let mut candidates = keys.iter().filter(fits);
            match (candidates.next(), candidates.next()) {
                (Some(k), None) => Some(k),
                _ => None,
            }
        }
    };
    let Some(key) = found else { return Ok(None) };
    if let Some(declared) = key.common.key_algorithm
        && declared != KeyAlgorithm::from(alg)
    {
        return Err(JwtError::Invalid(format!(
            "algorithm mismatch: the token says {alg:?}, its key is for {declared}"
        )));
    }
    if !fits(&key) {
        return Err(JwtError::Invalid(format!(
            "algorithm mismatch: the token says {alg:?}, its key is of another type"
        )));
    }
    Ok(Some(key.clone()))
}

fn key_family(k: &Jwk) -> Option<AlgorithmFamily> {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    match &k.algorithm {
        P::RSA(_) => Some(AlgorithmFamily::Rsa),
        P::EllipticCurve(_) => Some(AlgorithmFamily::Ec),
        P::OctetKeyPair(_) => Some(AlgorithmFamily::Ed),
        _ => None,
    }
}

/// The role: `role_claim` as HUMAN/AGENT (a string or a list), else Keycloak's
/// `realm_access.roles` with `avb-human`/`avb-agent`. HUMAN wins when both are there (operators
/// can do everything agents can).
pub fn role_of(claims: &Value, role_claim: &str) -> Option<Role> {
    let strings = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut names = strings(claims.get(role_claim));
    names.extend(strings(
        claims.get("realm_access").and_then(|r| r.get("roles")),
    ));
    // OAuth scopes: `scope` is one space-separated string (RFC 8693), `scp` a list or string.
    let mut scopes: Vec<String> = strings(claims.get("scope"))
        .iter()
        .flat_map(|s| s.split_whitespace().map(String::from).collect::<Vec<_>>())
        .collect();
    scopes.extend(strings(claims.get("scp")));
    let is = |ours: &str, keycloak: &str, scope: &str| {
        names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(ours) || n == keycloak)
            || scopes.iter().any(|s| s == scope)
    };
    if is("HUMAN", KEYCLOAK_HUMAN_ROLE, OPERATOR_SCOPE) {
        Some(Role::Human)
    } else if is("AGENT", KEYCLOAK_AGENT_ROLE, AGENT_SCOPE) {
        Some(Role::Agent)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An issuer whose discovery document cannot be had: the token is refused as unavailable,
    /// naming discovery and the setting that skips it, not checked against a guessed endpoint.
    #[tokio::test]
    async fn a_failed_discovery_is_named_not_guessed_around() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let verifier = OidcVerifier::new(
            OidcSettings {
                issuer: format!("http://127.0.0.1:{closed}/realms/avb"),
                audience: "avb".into(),
                ..OidcSettings::default()
            },
            Vec::new(),
        )
        .expect("verifier");
        // {"alg":"RS256","kid":"k"} . {} . signature
        let token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.e30.c2ln";
        let e = verifier.verify(token).await.expect_err("no keys");
        let text = e.to_string();
        assert!(matches!(e, JwtError::Unavailable(_)), "{text}");
        assert!(
            text.contains("discovery")
                && text.contains("jwks_url")
                && text.contains("openid-configuration"),
            "{text}"
        );
        assert!(!text.contains("protocol/openid-connect/certs"), "{text}");
    }

    #[test]
    fn roles_from_oauth_scopes() {
        assert_eq!(
            role_of(&json!({"scope": "openid avb:agent"}), "role"),
            Some(Role::Agent)
        );
        assert_eq!(
            role_of(&json!({"scope": "avb:agent avb:operator"}), "role"),
            Some(Role::Human)
        );
        assert_eq!(
            role_of(&json!({"scp": ["avb:operator"]}), "role"),
            Some(Role::Human)
        );
        assert_eq!(
            role_of(&json!({"scope": "openid avb:agentx"}), "role"),
            None
        );
    }

    #[test]
    fn roles_from_our_claim_or_keycloak_realm_roles() {
        assert_eq!(
            role_of(&json!({"role": "AGENT"}), "role"),
            Some(Role::Agent)
        );
        assert_eq!(
            role_of(&json!({"role": "human"}), "role"),
            Some(Role::Human)
        );
        assert_eq!(
            role_of(&json!({"roles": ["x", "AGENT"]}), "roles"),
            Some(Role::Agent)
        );
        assert_eq!(
            role_of(
                &json!({"realm_access": {"roles": ["offline_access", "avb-agent"]}}),
                "role"
            ),
            Some(Role::Agent)
        );
        assert_eq!(
            role_of(
                &json!({"realm_access": {"roles": ["avb-agent", "avb-human"]}}),
                "role"
            ),
            Some(Role::Human)
        );
        assert_eq!(role_of(&json!({"role": "admin"}), "role"), None);
        assert_eq!(role_of(&json!({}), "role"), None);
    }

    fn ed_jwk(kid: Option<&str>, alg: Option<&str>) -> Jwk {
        let mut v = json!({"kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        if let Some(k) = kid {
            v["kid"] = json!(k);
        }
        if let Some(a) = alg {
            v["alg"] = json!(a);
        }
        serde_json::from_value(v).expect("jwk")
    }

    #[test]
    fn keys_are_found_by_kid_and_must_fit_the_algorithm() {
        let keys = vec![ed_jwk(Some("a"), Some("EdDSA")), ed_jwk(Some("b"), None)];
        assert!(matches!(
            find_key(&keys, Some("a"), Algorithm::EdDSA),
            Ok(Some(_))
        ));
        assert!(matches!(
            find_key(&keys, Some("zz"), Algorithm::EdDSA),
            Ok(None)
        ));
        let e = find_key(&keys, Some("a"), Algorithm::RS256).expect_err("alg mismatch");
        assert!(e.to_string().contains("algorithm mismatch"), "{e}");
        let e = find_key(&keys, Some("b"), Algorithm::ES256).expect_err("wrong key type");
        assert!(e.to_string().contains("algorithm mismatch"), "{e}");
        // Without a kid, only a single fitting key is used.
        assert!(matches!(find_key(&keys, None, Algorithm::EdDSA), Ok(None)));
        assert!(matches!(
            find_key(&keys[..1], None, Algorithm::EdDSA),
            Ok(Some(_))
        ));
    }

    /// While one request refetches the issuer's keys (slowly), the others verify with the keys
    /// at hand instead of queueing behind it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_refetch_does_not_hold_up_other_verifications() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let delay = Arc::new(AtomicU64::new(0));
        let served = delay.clone();
        let jwks = json!({"keys": [serde_json::to_value(ed_jwk(Some("k1"), Some("EdDSA"))).expect("jwk")]});
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (served, jwks) = (served.clone(), jwks.clone());
                async move {
                    let ms = served.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    axum::Json(jwks)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let verifier = Arc::new(
            OidcVerifier::new(
                OidcSettings {
                    issuer: format!("http://{addr}"),
                    audience: "avb".into(),
                    jwks_url: Some(format!("http://{addr}/jwks")),
                    // Always stale, always allowed to refetch: every call wants a refresh.
                    jwks_cache_secs: 0,
                    jwks_min_refetch_secs: 0,
                    ..OidcSettings::default()
                },
                Vec::new(),
            )
            .expect("verifier"),
        );
        verifier
            .key_for(Some("k1"), Algorithm::EdDSA)
            .await
            .expect("first fetch");
        delay.store(2_000, Ordering::SeqCst);
        let slow = {
            let v = verifier.clone();
            tokio::spawn(async move { v.key_for(Some("k1"), Algorithm::EdDSA).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        verifier
            .key_for(Some("k1"), Algorithm::EdDSA)
            .await
            .expect("the key at hand");
        assert!(
            started.elapsed() < Duration::from_millis(1_000),
            "waited {:?} behind the refetch",
            started.elapsed()
        );
        slow.await.expect("task").expect("refetched");
    }
}
