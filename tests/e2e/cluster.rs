//! The whole system as several machines: Temporal, PostgreSQL and Redis shared by two `avb
//! serve` and two `avb worker` processes, each with a data folder of its own, behind a load
//! balancer. A bounded mixed load (speech, durable echo, device commands on a Zigbee2MQTT
//! simulator — not hardware — and calls to an upstream MCP server) runs through both protocol
//! revisions while one api and one worker are SIGKILLed and started again. Then: every call was
//! answered, no 2025-11-25 session was lost, no job is left running or failed, every hold was
//! closed once and no job was charged twice, and every audio is readable from both replicas.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::mosquitto::Mosquitto;
use avb_testkit::cluster::{Cluster, JobKind, Protocol, mixed_load_options, mixed_plan, run_load};
use futures::StreamExt as _;

const JOBS: usize = 200;
const LANES: usize = 6;

async fn workflows(cluster: &Cluster, query: &str) -> usize {
    let mut s = cluster
        .system
        .client
        .list_workflows(query, Default::default());
    let mut n = 0;
    while let Some(w) = s.next().await {
        w.expect("list workflows");
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_under_load_loses_nothing_when_an_api_and_a_worker_die() {
    let broker = Mosquitto::start();
    let _home = avb_devices::sim::run(&broker.url(), "zigbee2mqtt").expect("simulator");
    let config_dir = tempfile::tempdir().expect("tmp");
    let mut cluster =
        Cluster::start(mixed_load_options(2, 2, &broker.url(), config_dir.path())).await;

    let done = Arc::new(AtomicUsize::new(0));
    let load = {
        let (url, token, done) = (cluster.url(), cluster.token.clone(), done.clone());
        tokio::spawn(async move { run_load(&url, &token, mixed_plan(JOBS), LANES, done).await })
    };
    // A quarter in, one api and one worker die; they come back a few seconds later.
    while done.load(Ordering::Relaxed) < JOBS / 4 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.kill_api(0).await;
    cluster.kill_worker(0).await;
    let killed_at = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_worker(0).await;
    cluster.start_api(0).await;
    let report = load.await.expect("load");

    let failures = report.failures();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    assert_eq!(report.outcomes.len(), JOBS);
    assert!(
        killed_at < JOBS,
        "the members died after the load ended: the test tested nothing"
    );
    assert_eq!(report.sessions_lost, 0, "a 2025-11-25 session was lost");
    let continued = report
        .outcomes
        .iter()
        .filter(|o| o.protocol == Protocol::Session && o.retries > 0)
        .count();
    eprintln!(
        "{JOBS} jobs in {:?}; {continued} session calls continued on the other replica; by kind {:?}",
        report.elapsed,
        report.count_by_kind()
    );

    // Nothing is left running (jobs whose caller's connection died finish on their own), and
    // nothing failed.
    let deadline = Instant::now() + Duration::from_secs(120);
    while workflows(&cluster, "ExecutionStatus = 'Running'").await > 0 {
        assert!(Instant::now() < deadline, "jobs still running after 2 min");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for status in ["Failed", "TimedOut", "Terminated", "Canceled"] {
        assert_eq!(
            workflows(&cluster, &format!("ExecutionStatus = '{status}'")).await,
            0,
            "{status} workflows"
        );
    }

    // The ledger: every hold closed exactly once, no job charged twice, every answered speech
    // job charged.
    let store = cluster.system.store.as_ref().expect("store");
    let tenant = store
        .tenant_by_name(&cluster.tenant)
        .await
        .expect("lookup")
        .expect("tenant");
    assert_eq!(store.balance(&tenant.id).await.expect("balance").held, 0);
    let entries = store.entries(&tenant.id, 100_000).await.expect("entries");
    let mut closes: BTreeMap<String, usize> = BTreeMap::new();
    let mut settles: BTreeMap<String, usize> = BTreeMap::new();
    let mut holds = 0;
    for e in &entries {
        let key = e.hold_key.clone().unwrap_or_default();
        match e.kind {
            avb_store::EntryKind::Hold => holds += 1,
            avb_store::EntryKind::Settle => {
                *closes.entry(key).or_default() += 1;
                *settles
                    .entry(e.job_id.clone().unwrap_or_default())
                    .or_default() += 1;
            }
            avb_store::EntryKind::Release => *closes.entry(key).or_default() += 1,
            _ => {}
        }
    }
    assert_eq!(closes.len(), holds, "every hold closed");
    assert!(
        closes.values().all(|n| *n == 1),
        "a hold closed twice: {closes:?}"
    );
    assert!(
        settles.values().all(|n| *n == 1),
        "a job charged twice: {settles:?}"
    );
    let speech_jobs: Vec<&str> = report
        .outcomes
        .iter()
        .filter(|o| o.kind == JobKind::Speech)
        .map(|o| o.job_id.as_deref().expect("speech job id"))
        .collect();
    for job in &speech_jobs {
        assert_eq!(settles.get(*job), Some(&1), "{job} charged once");
    }

    // Every audio from both replicas.
    let http = reqwest::Client::new();
    for job in &speech_jobs {
        for i in 0..cluster.api_count() {
            let r = http
                .get(format!("{}/api/v2/audio/{job}", cluster.api_url(i)))
                .bearer_auth(&cluster.token)
                .send()
                .await
                .expect("download");
            assert_eq!(r.status(), 200, "{job} on replica {i}");
            let wav = r.bytes().await.expect("audio");
            assert_eq!(&wav[..4], b"RIFF", "{job} on replica {i}");
        }
    }
}
