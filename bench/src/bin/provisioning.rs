//! Provisioning benchmark (MCP servers in containers, created by durable workflows):
//! `cargo run --release -p avb-bench --bin provisioning -- [--rounds 5] [--concurrent 10]
//! [--batches 2]`. Needs root (it starts a private dockerd, as the tests do).
//!
//! (a) Create-to-healthy: `POST /api/v2/mcp-servers` (one replica of the demo template) until it
//!     answers `running` — validation, the `ProvisionMcpServer` workflow with its billing hold,
//!     container create + start, MCP `initialize` confirmed, record + events, settle — against
//!     a plain `docker run -d -p 127.0.0.1::8000` of the same image until its MCP endpoint first
//!     answers `initialize` (the same probe). Interleaved rounds; ratio = avb / docker run.
//! (b) Creates per minute with `--concurrent` requests at once (each one replica), against the
//!     same number of concurrent plain `docker run`s to first answer.
//!
//! Everything runs in this process except dockerd and the Temporal dev server it starts.

use std::time::{Duration, Instant};

use avb_api::ApiState;
use avb_bench::{mean, numeric_flags, summary};
use avb_config::provisioning::DEMO_IMAGE;
use avb_provisioning::wait_until_mcp_ready;
use avb_testkit::dockerd::TestDockerd;
use futures::future::join_all;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// `docker ARGS…` against the private daemon; stdout, trimmed.
fn docker(host: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(args)
        .output()
        .expect("the docker CLI runs (Debian docker.io)");
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker run` of the demo image to its first MCP answer; the container is removed after.
async fn plain_run(host: String) -> f64 {
    let started = Instant::now();
    let id = {
        let host = host.clone();
        tokio::task::spawn_blocking(move || {
            docker(
                &host,
                &[
                    "run",
                    "-d",
                    "-p",
                    "127.0.0.1::8000",
                    DEMO_IMAGE,
                    "--port",
                    "8000",
                ],
            )
        })
        .await
        .expect("docker run")
    };
    let port = {
        let (host, id) = (host.clone(), id.clone());
        tokio::task::spawn_blocking(move || docker(&host, &["port", &id, "8000/tcp"]))
            .await
            .expect("docker port")
    };
    let port = port
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .expect("published port")
        .to_string();
    wait_until_mcp_ready(
        &format!("http://127.0.0.1:{port}/mcp"),
        Duration::from_secs(60),
    )
    .await
    .expect("the container answers MCP");
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tokio::task::spawn_blocking(move || docker(&host, &["rm", "-f", &id]))
        .await
        .expect("docker rm");
    ms
}

/// `POST /api/v2/mcp-servers` until it answers running; returns (ms, server id).
async fn avb_create(base: &str, name: &str) -> (f64, String) {
    let started = Instant::now();
    let r: Value = reqwest::Client::new()
        .post(format!("{base}/api/v2/mcp-servers"))
        .json(&json!({"service_name": name, "template": "demo"}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(r["status"], "running", "{r}");
    (ms, r["server_id"].as_str().expect("id").to_string())
}

async fn avb_delete(base: &str, id: &str) {
    let r: Value = reqwest::Client::new()
        .delete(format!("{base}/api/v2/mcp-servers/{id}"))
        .send()
        .await
        .expect("DELETE")
        .json()
        .await
        .expect("json");
    assert_eq!(r["status"], "deleted", "{r}");
}

#[tokio::main]
async fn main() {
    let f = numeric_flags(&[("rounds", 5), ("concurrent", 10), ("batches", 2)]);
    let daemon = tokio::task::spawn_blocking(TestDockerd::start)
        .await
        .expect("dockerd");
    let host = daemon.host();
    let data = tempfile::tempdir().expect("tmp");
    let (server, mut config, client) =
        avb_bench::dev_setup(data.path(), "bench-provisioning").await;
    config.provisioning.backend = "docker".into();
    config.provisioning.docker_host = Some(host.clone());
    config.provisioning.quota_per_tenant = 1000;
    config.rate_limits.enabled = false;
    config.auth.required = false;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    config.http = listener.local_addr().expect("addr");
    let base = format!("http://{}", config.http);
    let store = avb_store::Store::connect(&config.database_url())
        .await
        .expect("database");
    let local = store.create_tenant("local").await.expect("tenant");
    store
        .grant(&local.id, 1_000_000_000, "bench", "benchmark")
        .await
        .expect("grant");

    let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default()).expect("runtime");
    let shutdown = CancellationToken::new();
    let state = ApiState::new(client.clone(), config.clone())
        .expect("state")
        .with_store(store.clone());
    let api = tokio::spawn(avb_api::run(listener, state, shutdown.clone()));
    let stop = shutdown.clone();
    let queues = [
        avb_workflows::queues::WORKFLOWS,
        avb_workflows::queues::BILLING,
        avb_workflows::queues::PROVISIONING,
    ];
    let workers = avb_workers::run_workers(&runtime, client.clone(), &config, &queues, async {
        stop.cancelled().await
    });
    let bench = async {
        // Warm-up: the first create builds the demo image from `avb-demo-mcp`.
        let (ms, id) = avb_create(&base, "warmup").await;
        println!("warm-up create (builds the image): {ms:.0} ms");
        avb_delete(&base, &id).await;
        plain_run(host.clone()).await;

        println!(
            "(a) create-to-healthy, one replica, {} interleaved rounds:",
            f["rounds"]
        );
        let (mut ours, mut plain) = (Vec::new(), Vec::new());
        for round in 1..=f["rounds"] {
            let (a, id) = avb_create(&base, &format!("single-{round}")).await;
            avb_delete(&base, &id).await;
            let p = plain_run(host.clone()).await;
            println!("  round {round}: avb {a:6.0} ms | docker run {p:6.0} ms");
            ours.push(a);
            plain.push(p);
        }
        let (a50, _) = summary(ours);
        let (p50, _) = summary(plain);
        println!(
            "  p50: avb {a50:.0} ms vs docker run {p50:.0} ms = {:.2}x",
            a50 / p50
        );

        let n = usize::try_from(f["concurrent"]).expect("concurrent");
        println!(
            "(b) {n} concurrent creates to healthy, {} batches each:",
            f["batches"]
        );
        let (mut ours, mut plain) = (Vec::new(), Vec::new());
        for batch in 1..=f["batches"] {
            let t = Instant::now();
            let created = join_all((0..n).map(|i| {
                let base = base.clone();
                async move { avb_create(&base, &format!("batch{batch}-{i}")).await }
            }))
            .await;
            let a = n as f64 * 60.0 / t.elapsed().as_secs_f64();
            join_all(created.iter().map(|(_, id)| avb_delete(&base, id))).await;
            let t = Instant::now();
            join_all((0..n).map(|_| plain_run(host.clone()))).await;
            let p = n as f64 * 60.0 / t.elapsed().as_secs_f64();
            println!("  batch {batch}: avb {a:6.1} creates/min | docker run {p:6.1} runs/min");
            ours.push(a);
            plain.push(p);
        }
        println!(
            "  mean: avb {:.1}/min vs docker run {:.1}/min = {:.2}x",
            mean(&ours),
            mean(&plain),
            mean(&ours) / mean(&plain)
        );
        shutdown.cancel();
    };
    let (w, ()) = tokio::join!(workers, bench);
    w.expect("workers");
    api.await.expect("api").expect("api serves");
    store.close().await;
    server.stop().await;
    tokio::task::spawn_blocking(move || drop(daemon))
        .await
        .expect("stop dockerd");
}
