//! `avb worker --http`: a worker process answers liveness, readiness and Prometheus scrapes
//! with the Temporal SDK's worker metrics of the queues it serves; a taken probe port stops it
//! at once with the address named.

use std::time::{Duration, Instant};

use crate::support::TestSystem;
use crate::support::mcp::{call, session, text_of};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_serves_probes_and_its_sdk_metrics() {
    // The workflow queue is served only by the worker process under test.
    let system = TestSystem::start_custom(|_| {}, "avb-tts,avb-billing").await;
    let port = avb_testkit::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut worker = system.spawn_avb(
        &["worker", "--queues", "avb-workflows", "--http", &addr],
        &[],
    );
    let base = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await
            && r.status() == 200
        {
            break r.json::<serde_json::Value>().await.expect("json");
        }
        assert!(Instant::now() < deadline, "worker never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["queues"], json!(["avb-workflows"]));
    let live = reqwest::get(format!("{base}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(live.status(), 200);

    // A durable call runs its workflow on this worker; its metrics say so.
    let client = session(system.mcp_url()).await;
    let r = call(&client, "durable_echo", json!({"message": "scrape me"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("avb_worker_ready 1"), "{metrics}");
    let workflow_metric = metrics.lines().find(|l| {
        l.starts_with("temporal_workflow_completed") && l.contains("task_queue=\"avb-workflows\"")
    });
    assert!(
        workflow_metric.is_some(),
        "no completed-workflow counter for avb-workflows:\n{metrics}"
    );

    // A second worker asking for the same probe port stops at once, naming it.
    let taken = tokio::process::Command::new(avb_testkit::system::avb_bin())
        .args(["worker", "--queues", "avb-workflows", "--http", &addr])
        .envs(system.child_env())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), taken)
        .await
        .expect("exits within 10 s")
        .expect("output");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    worker.start_kill().expect("stop the worker");
}
