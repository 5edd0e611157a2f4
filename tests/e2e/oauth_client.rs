//! An OAuth MCP client end to end, with no API key: the official Python SDK's OAuth client
//! (`mcp.client.auth`, tests/python/oauth_client.py) against the real api, signing in at a real
//! authorization server (npm oidc-provider, tests/oauth/authorization_server.mjs, started by
//! deploy/oauth_server.sh). 401 → Protected Resource Metadata → the server's metadata → dynamic
//! registration → authorization code + PKCE for the MCP URL as resource → a JWT access token →
//! tools work (`durable_echo`, `generate_speech`) for the token's tenant and scope. The same
//! server's tokens for another resource, expired, or short of the operator scope are refused;
//! after the issuer rotates its signing key, sign-in still works.

use std::process::Stdio;
use std::time::{Duration, Instant};

use avb_config::OidcSettings;
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

use crate::python_sdk_client::python;
use crate::support::{TestSystem, repo_root};

/// The authorization server for `resource`, on `port`; killed when dropped.
async fn authorization_server(port: u16, resource: &str) -> tokio::process::Child {
    let mut child = tokio::process::Command::new(repo_root().join("deploy/oauth_server.sh"))
        .env("PORT", port.to_string())
        .env("RESOURCE", resource)
        .env("TENANT", "acme")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start deploy/oauth_server.sh");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .expect("the authorization server started within 60 s")
            .expect("read")
            .expect("the authorization server exited");
        if line.starts_with("listening ") {
            break;
        }
    }
    // Keep reading what it prints: a closed pipe would end it at its next line.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

async fn oauth_client(url: &str, issuer: &str) -> Value {
    let out = tokio::process::Command::new(python())
        .arg(repo_root().join("tests/python/oauth_client.py"))
        .args(["--url", url, "--issuer", issuer])
        .output()
        .await
        .expect("run the OAuth client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "OAuth client failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_client_signs_in_at_the_issuer_and_calls_tools_for_its_tenant_and_scope() {
    let as_port = avb_testkit::free_port();
    let issuer = format!("http://127.0.0.1:{as_port}");
    let issuer_url = issuer.clone();
    let system = TestSystem::start_with(move |c| {
        c.auth.required = true;
        // Credits are another test's subject: speech is free here.
        c.billing.enabled = false;
        c.auth.oidc = Some(OidcSettings {
            issuer: issuer_url,
            // Tokens name this server as their resource (RFC 8707) rather than a client id.
            audience: "agentvoicebox".into(),
            jwks_min_refetch_secs: 1,
            // Expiry is checked to the second here (the token under test lives 1 s).
            leeway_secs: 0,
            ..OidcSettings::default()
        });
    })
    .await;
    let store = system.store.as_ref().expect("store");
    store.create_tenant("acme").await.expect("tenant acme");
    let mcp = system.mcp_url();
    let server = authorization_server(as_port, &mcp).await;

    // The 401 asks for the agent scope: tools work, an operator's action is refused.
    let agent = oauth_client(&mcp, &issuer).await;
    assert_eq!(agent["echo_is_error"], false, "{agent}");
    assert!(
        agent["echo"].to_string().contains("hello over OAuth"),
        "{agent}"
    );
    assert_eq!(agent["speech_is_error"], false, "{agent}");
    assert_eq!(agent["speech_audio"][0], "audio/wav", "{agent}");
    assert_eq!(agent["grant_is_error"], true, "{agent}");
    assert!(agent["grant"].to_string().contains("HUMAN"), "{agent}");
    let claims = &agent["claims"];
    assert_eq!(claims["iss"], issuer.as_str(), "{claims}");
    assert_eq!(
        claims["aud"],
        mcp.as_str(),
        "the token is for this server: {claims}"
    );
    assert_eq!(claims["tenant"], "acme", "{claims}");
    assert_eq!(agent["authorize"]["resource"], mcp.as_str(), "{agent}");
    assert_eq!(
        agent["authorize"]["code_challenge_method"], "S256",
        "{agent}"
    );

    let scope = claims["scope"].as_str().unwrap_or_default();
    assert!(scope.split(' ').any(|s| s == "avb:agent"), "{claims}");
    assert!(
        !scope.contains("avb:operator"),
        "only what the 401 asked for: {claims}"
    );

    // Tokens of the same server that must be refused: another resource's, an expired one,
    // and an agent's on an operator's action.
    assert_eq!(
        agent["machine_ok"], 200,
        "a machine token for this server: {agent}"
    );
    let (status, challenge) = (&agent["other_audience"][0], &agent["other_audience"][1]);
    assert_eq!(status, 401, "{agent}");
    assert!(challenge.to_string().contains("wrong audience"), "{agent}");
    assert_eq!(agent["expired"][0], 401, "{agent}");
    assert!(
        agent["expired"][1].to_string().contains("expired"),
        "{agent}"
    );
    assert_eq!(agent["operator_action"][0], 403, "{agent}");
    assert!(
        agent["operator_action"][1]
            .to_string()
            .contains("insufficient_scope"),
        "{agent}"
    );

    // Key rotation: the issuer restarts with a new signing key; the next client's token names
    // a key we have not seen, and we fetch the issuer's keys again.
    drop(server);
    let _server = authorization_server(as_port, &mcp).await;
    let after = oauth_client(&mcp, &issuer).await;
    assert_eq!(after["echo_is_error"], false, "after key rotation: {after}");
    system.stop().await;
}
