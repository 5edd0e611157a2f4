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
        // "not checked yet" is the state before the first check, not its verdict.
        if secure["error"].is_string() && secure["error"] != "not checked yet" {
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

/// `rediss://`: the rate limits' buckets live in a redis-server that speaks only TLS, with a
/// certificate of a CA the system trusts through `AVB_CA_FILE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_share_their_buckets_over_rediss() {
    let ca = TestCa::new();
    let redis = avb_testkit::redis::RedisServer::start_tls(&ca);
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let ca_file = ca.ca_file();
    let system = TestSystem::start_with(move |c| {
        c.redis.url = Some(url);
        c.tls.ca_file = Some(ca_file);
        c.rate_limits.tools.insert("get_server_status".into(), 2);
    })
    .await;
    let client = crate::upstream::session(&system, ()).await;
    for i in 0..2 {
        let r = call_tool(&client, "get_server_status", json!({})).await;
        assert_ne!(r.is_error, Some(true), "call {i}: {}", text_of(&r));
    }
    let r = call_tool(&client, "get_server_status", json!({})).await;
    assert!(text_of(&r).starts_with("RateLimited: "), "{}", text_of(&r));
    let keys = redis.cli(&["--scan", "--pattern", "avb:ratelimit:*"]);
    assert!(!keys.is_empty(), "the bucket is in redis, reached over TLS");
    client.cancel().await.ok();
    system.stop().await;
}
