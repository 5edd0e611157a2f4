//! The Temporal connection over TLS to a self-hosted cluster: a real dev server behind a TLS
//! front that demands a client certificate (mTLS), both certificates from a CA made at test
//! time. With the CA and the client certificate configured (`TEMPORAL_TLS_*`), calls work;
//! without the client certificate, or without the CA, the connection is refused with an error,
//! not a hang.

use std::time::Duration;

use avb_config::TemporalConfig;
use avb_runtime::devserver::{DevServer, DevServerOptions, free_port};
use avb_runtime::temporal::{connect, ensure_search_attributes};
use avb_testkit::tls::{TestCa, TlsFront};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_with_a_private_ca_reaches_a_self_hosted_temporal() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port().expect("port");
    let _server = DevServer::start(DevServerOptions::ephemeral(
        port,
        dir.path().join("temporal.log"),
        &[],
    ))
    .await
    .expect("dev server (deploy/install-deps.sh installs temporal)");
    let ca = TestCa::new();
    let front = TlsFront::start_mtls(&ca, port).await;
    let config = TemporalConfig {
        address: format!("localhost:{}", front.port),
        tls_server_ca: Some(ca.ca_file()),
        tls_client_cert: Some(ca.client_cert_file()),
        tls_client_key: Some(ca.client_key_file()),
        ..TemporalConfig::default()
    };
    let client = connect(&config, "tls-test").await.expect("mTLS connection");
    ensure_search_attributes(&client, "default", &["AvbTlsProbe"])
        .await
        .expect("a call over mTLS");

    let refused = [
        (
            "no client certificate",
            TemporalConfig {
                tls_client_cert: None,
                tls_client_key: None,
                ..config.clone()
            },
        ),
        (
            "the CA not trusted",
            TemporalConfig {
                tls_server_ca: None,
                ..config.clone()
            },
        ),
    ];
    for (case, cfg) in refused {
        let attempt = tokio::time::timeout(Duration::from_secs(30), async {
            let client = connect(&cfg, "tls-test").await?;
            ensure_search_attributes(&client, "default", &["AvbTlsProbe2"]).await
        })
        .await
        .unwrap_or_else(|_| panic!("{case}: no answer within 30 s"));
        assert!(attempt.is_err(), "{case}: connected anyway");
    }
}
