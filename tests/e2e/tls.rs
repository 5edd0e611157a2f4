//! https upstreams: server-everything (Streamable HTTP) behind a TLS front whose certificate a
//! CA made at test time signed. Trusted through `tls.ca_file` (`AVB_CA_FILE`), its tools mount
//! and answer over TLS; not trusted, it is down with an error that names the certificate
//! problem, within a check or two (no hang). One test per process: the trust store is
//! process-wide.

use std::time::{Duration, Instant};

use avb_config::UpstreamServer;
use avb_testkit::tls::{TestCa, TlsFront};
use serde_json::json;

use crate::support::TestSystem;
use crate::support::mcp::text_of;
use crate::support::upstreams::EverythingHttp;
use crate::upstream::{QUEUES, call_tool, session, upstream_status, wait_for_tools};

async fn system_with_https_upstream(
    ca_file: Option<std::path::PathBuf>,
    url: String,
) -> TestSystem {
    TestSystem::start_custom(
        |c| {
            c.mcp.upstream_check_secs = 1;
            c.tls.ca_file = ca_file;
            c.mcp_servers.insert(
                "secure".into(),
                UpstreamServer {
                    server_url: Some(url),
                    ..UpstreamServer::default()
                },
            );
        },
        QUEUES,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_signed_by_a_trusted_ca_mounts_and_answers() {
    let ca = TestCa::new();
    let everything = EverythingHttp::start();
    let front = TlsFront::start(&ca, everything.port).await;
    let url = format!("https://localhost:{}/mcp", front.port);
    let system = system_with_https_upstream(Some(ca.ca_file()), url).await;
    let client = session(&system, ()).await;
    wait_for_tools(&client, "the https upstream mounted", |n| {
        n.contains("secure_echo")
    })
    .await;
    let r = call_tool(&client, "secure_echo", json!({"message": "over TLS"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert!(text_of(&r).contains("over TLS"), "{}", text_of(&r));
    client.cancel().await.ok();
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_of_an_unknown_ca_is_down_with_the_reason() {
    let ca = TestCa::new();
    let everything = EverythingHttp::start();
    let front = TlsFront::start(&ca, everything.port).await;
    let url = format!("https://localhost:{}/mcp", front.port);
    let system = system_with_https_upstream(None, url).await;
    let client = session(&system, ()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let secure = loop {
        let status = call_tool(&client, "get_server_status", json!({})).await;
        let secure = upstream_status(&status, "secure");
        if secure["error"].is_string() {
            break secure;
        }
        assert!(
            Instant::now() < deadline,
            "no verdict on the upstream: {secure}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(secure["status"], "down", "{secure}");
    let error = secure["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        error.contains("certificate") || error.contains("issuer"),
        "{secure}"
    );
    client.cancel().await.ok();
    system.stop().await;
}
