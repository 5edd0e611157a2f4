//! JWT bearer tokens from an OIDC issuer, against the real api (store, Temporal dev server,
//! workers). The issuer is a tiny axum server in this test, Keycloak-shaped (realm URL,
//! discovery document, certs endpoint), serving the public halves of key pairs made at test
//! time (Ed25519 and P-256; no private key is ever committed). Valid tokens act for their
//! tenant and role; each failing check is a 401 with `error="invalid_token"` naming it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::mcp::{call, text_of};
use crate::support::{TestSystem, get_json};
use avb_config::OidcSettings;
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair as _};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

const AUDIENCE: &str = "avb";

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key made now: the private half signs tokens, the public half is a JWK.
struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

impl TestKey {
    fn ed25519(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = sig::Ed25519KeyPair::generate_pkcs8(&rng).expect("Ed25519 key");
        let pair = sig::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse");
        Self {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
                "kid": kid, "x": b64url(pair.public_key().as_ref())}),
        }
    }

    fn p256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let alg = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = sig::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("P-256 key");
        let pair = sig::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("parse");
        // Uncompressed point: 0x04 ‖ x ‖ y.
        let point = pair.public_key().as_ref();
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": b64url(&point[1..33]), "y": b64url(&point[33..65])}),
        }
    }

    /// A token with `claims`, signed by this key under `kid` (normally its own).
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }
}

/// The issuer: discovery document and JWKS, counting JWKS fetches.
#[derive(Clone)]
struct Issuer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    jwks_fetches: Arc<AtomicUsize>,
}

impl Issuer {
    async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/realms/avb", listener.local_addr().expect("addr"));
        let issuer = Self {
            url,
            keys: Arc::new(Mutex::new(keys)),
            jwks_fetches: Arc::default(),
        };
        let app = axum::Router::new()
            .route(
                "/realms/avb/.well-known/openid-configuration",
                get(|State(i): State<Issuer>| async move {
                    Json(json!({
                        "issuer": i.url,
                        "jwks_uri": format!("{}/protocol/openid-connect/certs", i.url),
                    }))
                }),
            )
            .route(
                "/realms/avb/protocol/openid-connect/certs",
                get(|State(i): State<Issuer>| async move {
                    i.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                    let keys = i.keys.lock().expect("keys").clone();
                    Json(json!({ "keys": keys }))
                }),
            )
            .with_state(issuer.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("issuer serves");
        });
        issuer
    }

    fn fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Claims of a valid token for `tenant`, merged with `extra` (a `null` removes a claim).
fn claims(issuer: &Issuer, tenant: &str, extra: Value) -> Value {
    let mut c = json!({
        "iss": issuer.url, "aud": AUDIENCE, "sub": "user-1", "tenant": tenant, "role": "AGENT",
        "iat": now(), "exp": now() + 300,
    });
    if let (Some(map), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            if v.is_null() {
                map.remove(k);
            } else {
                map.insert(k.clone(), v.clone());
            }
        }
    }
    c
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn list_jobs(base: &str, token: &str) -> reqwest::Response {
    http()
        .get(format!("{base}/api/v2/jobs"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /api/v2/jobs")
}

/// `POST /api/v2/billing/grants` (HUMAN only) with `token`: the status.
async fn grant(base: &str, token: &str) -> u16 {
    http()
        .post(format!("{base}/api/v2/billing/grants"))
        .bearer_auth(token)
        .json(&json!({"credits": 5}))
        .send()
        .await
        .expect("POST grants")
        .status()
        .as_u16()
}

/// Expects a 401 whose challenge and body both name `check`.
async fn assert_rejected(base: &str, token: &str, check: &str) {
    let r = list_jobs(base, token).await;
    assert_eq!(r.status().as_u16(), 401, "{check}");
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        challenge.starts_with(r#"Bearer realm="agentvoicebox", resource_metadata=""#)
            && challenge.contains(r#"error="invalid_token""#),
        "{check}: {challenge}"
    );
    assert!(
        challenge.contains("error_description=") && challenge.contains(check),
        "{check}: {challenge}"
    );
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(check), "{check}: {message}");
}

async fn session(system: &TestSystem, token: &str) -> RunningService<RoleClient, ()> {
    let config = StreamableHttpClientTransportConfig::with_uri(system.mcp_url()).auth_header(token);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("an MCP session with a JWT")
}

#[tokio::test]
async fn oidc_tokens_act_for_their_tenant_and_every_failed_check_is_named() {
    let ed = TestKey::ed25519("ed-1");
    let ec = TestKey::p256("ec-1");
    let issuer = Issuer::start(vec![ed.jwk.clone(), ec.jwk.clone()]).await;
    let issuer_url = issuer.url.clone();
    let system = TestSystem::start_with(move |c| {
        c.auth.required = true;
        // No jwks_url: found through the issuer's discovery document.
        c.auth.oidc = Some(OidcSettings {
            issuer: issuer_url,
            audience: AUDIENCE.into(),
            jwks_min_refetch_secs: 1,
            ..OidcSettings::default()
        });
    })
    .await;
    let base = system.base_url.clone();
    // An OAuth client refused on /mcp finds this issuer in the endpoint's resource metadata.
    let metadata = get_json(&format!("{base}/.well-known/oauth-protected-resource/mcp")).await;
    assert_eq!(metadata["resource"], json!(system.mcp_url()), "{metadata}");
    assert_eq!(
        metadata["authorization_servers"],
        json!([issuer.url]),
        "{metadata}"
    );
    let store = system.store.as_ref().expect("store");
    store.create_tenant("acme").await.expect("tenant acme");
    let other = store.create_tenant("other").await.expect("tenant other");
    let other_key = store
        .create_key(&other.id, avb_store::Role::Agent, "test")
        .await
        .expect("key")
        .token;

    // A valid AGENT token of acme calls a tool over MCP and lists acme's jobs over REST.
    let agent = ed.sign(&claims(&issuer, "acme", json!({})));
    let mcp = session(&system, &agent).await;
    let r = call(&mcp, "durable_echo", json!({"message": "from a JWT"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let r = list_jobs(&base, &agent).await;
    assert_eq!(r.status().as_u16(), 200);
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(1), "{page}");
    // Tenants stay apart: another tenant's API key (keys still work next to JWTs) sees nothing.
    let page: Value = list_jobs(&base, &other_key)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["jobs"], json!([]), "{page}");
    // ES256 works as well as EdDSA.
    let r = list_jobs(&base, &ec.sign(&claims(&issuer, "acme", json!({})))).await;
    assert_eq!(r.status().as_u16(), 200, "ES256 token");

    // Roles: AGENT cannot grant credits; HUMAN can, also as Keycloak's realm role.
    assert_eq!(grant(&base, &agent).await, 403, "AGENT token");
    let human = ed.sign(&claims(&issuer, "acme", json!({"role": "HUMAN"})));
    assert_eq!(grant(&base, &human).await, 200, "HUMAN token");
    let keycloak_human = ed.sign(&claims(
        &issuer,
        "acme",
        json!({"role": null, "realm_access": {"roles": ["offline_access", "avb-human"]}}),
    ));
    assert_eq!(
        grant(&base, &keycloak_human).await,
        200,
        "Keycloak realm role"
    );
    // OAuth: the scopes an OAuth client was granted give the role, and the audience may be
    // this server's MCP URL (RFC 8707 resource indicator) instead of the client id.
    let scoped = |scope: &str| {
        ed.sign(&claims(
            &issuer,
            "acme",
            json!({"role": null, "scope": scope, "aud": system.mcp_url()}),
        ))
    };
    assert_eq!(
        grant(&base, &scoped("openid avb:agent")).await,
        403,
        "agent scope"
    );
    assert_eq!(
        grant(&base, &scoped("openid avb:operator")).await,
        200,
        "operator scope"
    );
    let r = list_jobs(&base, &scoped("avb:agent")).await;
    assert_eq!(r.status().as_u16(), 200, "audience = the MCP URL");

    // Every failed check is a 401 that names it.
    let attacker = TestKey::ed25519("ed-1");
    let cases = [
        (
            ed.sign(&claims(&issuer, "acme", json!({"aud": "someone-else"}))),
            "wrong audience",
        ),
        (
            ed.sign(&claims(
                &issuer,
                "acme",
                json!({"iss": "http://evil/realms/avb"}),
            )),
            "wrong issuer",
        ),
        (
            ed.sign(&claims(&issuer, "acme", json!({"exp": now() - 3600}))),
            "token expired",
        ),
        (
            ed.sign(&claims(&issuer, "acme", json!({"nbf": now() + 3600}))),
            "not yet valid",
        ),
        (
            ed.sign(&claims(&issuer, "acme", json!({"exp": null}))),
            "missing claim exp",
        ),
        (
            attacker.sign(&claims(&issuer, "acme", json!({}))),
            "bad signature",
        ),
        (
            ed.sign(&claims(&issuer, "nobody", json!({}))),
            "unknown tenant",
        ),
        (
            ed.sign(&claims(&issuer, "acme", json!({"tenant": null}))),
            "missing tenant claim",
        ),
        (
            ed.sign(&claims(&issuer, "acme", json!({"role": null}))),
            "missing role",
        ),
        (
            ed.sign(&claims(&issuer, "acme", json!({"role": "ADMIN"}))),
            "missing role",
        ),
        (
            // The ES256 key's id on an EdDSA signature.
            ed.sign_as("ec-1", &claims(&issuer, "acme", json!({}))),
            "algorithm mismatch",
        ),
        (
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims(&issuer, "acme", json!({})),
                &EncodingKey::from_secret(b"guessable"),
            )
            .expect("HS256"),
            "not accepted",
        ),
        ("not-a-jwt".to_string(), "malformed token"),
    ];
    for (token, check) in &cases {
        assert_rejected(&base, token, check).await;
    }
    // Over MCP too.
    let r = http()
        .post(system.mcp_url())
        .bearer_auth(&cases[2].0)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "expired", "version": "1"}}}),
        )
        .send()
        .await
        .expect("POST /mcp");
    assert_eq!(r.status().as_u16(), 401, "MCP with an expired token");
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains("token expired")
    );

    // The keys were fetched once for all of the above.
    assert_eq!(issuer.fetches(), 1, "JWKS cached");

    // An unknown key id refetches the keys, at most once per jwks_min_refetch_secs.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rotated = TestKey::ed25519("ed-2");
    let unknown = rotated.sign(&claims(&issuer, "acme", json!({})));
    assert_rejected(&base, &unknown, "unknown signing key").await;
    assert_eq!(issuer.fetches(), 2, "refetched for an unknown kid");
    assert_rejected(&base, &unknown, "unknown signing key").await;
    assert_eq!(issuer.fetches(), 2, "not again within the minimum interval");
    // The issuer rotates: the new key is picked up on the next refetch.
    issuer.keys.lock().expect("keys").push(rotated.jwk.clone());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = list_jobs(&base, &unknown).await;
    assert_eq!(r.status().as_u16(), 200, "rotated key accepted");
    assert_eq!(issuer.fetches(), 3);

    mcp.cancel().await.ok();
    system.stop().await;
}

/// A caller's bearer token stays with us: a mounted upstream tool called with a JWT reaches
/// the upstream with the server's own configured credentials, never the caller's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_token_never_reaches_an_upstream_server() {
    use crate::support::upstreams::{EverythingHttp, RecordingProxy};
    let ed = TestKey::ed25519("ed-1");
    let issuer = Issuer::start(vec![ed.jwk.clone()]).await;
    let everything = EverythingHttp::start();
    let proxy = RecordingProxy::start(everything.port).await;
    let (issuer_url, upstream_url) = (
        issuer.url.clone(),
        format!("http://127.0.0.1:{}/mcp", proxy.port),
    );
    let system = TestSystem::start_with(move |c| {
        c.auth.required = true;
        c.mcp.upstream_check_secs = 1;
        c.auth.oidc = Some(OidcSettings {
            issuer: issuer_url,
            audience: AUDIENCE.into(),
            ..OidcSettings::default()
        });
        c.mcp_servers.insert(
            "everything".into(),
            avb_config::UpstreamServer {
                server_url: Some(upstream_url),
                authorization: Some("Bearer the-upstreams-own-credential".to_string().into()),
                tenants: avb_config::ServedTenants::new(["acme"]),
                ..avb_config::UpstreamServer::default()
            },
        );
    })
    .await;
    let store = system.store.as_ref().expect("store");
    store.create_tenant("acme").await.expect("tenant acme");
    let token = ed.sign(&claims(&issuer, "acme", json!({})));
    let mcp = session(&system, &token).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let tools = mcp.list_all_tools().await.expect("tools");
        if tools.iter().any(|t| t.name == "everything_echo") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream never mounted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = call(&mcp, "everything_echo", json!({"message": "who am I"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let received = proxy.received();
    assert!(
        received.contains("the-upstreams-own-credential") && received.contains("who am I"),
        "the call went through the proxy with the upstream's credential"
    );
    let signature = token.rsplit('.').next().unwrap_or(&token);
    assert!(
        !received.contains(signature),
        "the caller's JWT reached the upstream"
    );
    system.stop().await;
}
