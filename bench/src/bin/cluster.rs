//! Cluster benchmark: the mixed load of the cluster test (speech, durable echo, device commands
//! on the Zigbee2MQTT simulator, upstream calls; half 2025-11-25 sessions, half 2026-07-28
//! stateless) through a load balancer, on two topologies measured in the same run: one api and
//! one worker (the baseline), then two apis and two workers, each process with a data folder of
//! its own, sharing Temporal, PostgreSQL and Redis. Prints jobs/s, p50 and p99 per kind, and the
//! cluster/baseline ratios. Needs a release build of `avb`:
//!
//! ```sh
//! cargo build --release --bin avb
//! cargo run --release -p avb-bench --bin cluster -- [--jobs 200] [--lanes 6]
//! ```

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use avb_bench::numeric_flags;
use avb_testkit::cluster::{
    Cluster, JobKind, LoadReport, mixed_load_options, mixed_plan, run_load,
};
use avb_testkit::mosquitto::Mosquitto;

async fn measure(
    apis: usize,
    workers: usize,
    broker_url: &str,
    jobs: usize,
    lanes: usize,
) -> LoadReport {
    let config_dir = tempfile::tempdir().expect("tmp");
    let mut options = mixed_load_options(apis, workers, broker_url, config_dir.path());
    options.env.push(("AVB_LOG".into(), "warn".into()));
    let cluster = Cluster::start(options).await;
    // A short warm-up (model loads, upstream sessions, connection pools) outside the numbers.
    let _ = run_load(
        &cluster.url(),
        &cluster.token,
        mixed_plan(20),
        lanes,
        Arc::new(AtomicUsize::new(0)),
    )
    .await;
    let report = run_load(
        &cluster.url(),
        &cluster.token,
        mixed_plan(jobs),
        lanes,
        Arc::new(AtomicUsize::new(0)),
    )
    .await;
    let failures = report.failures();
    assert!(failures.is_empty(), "failed calls: {failures:#?}");
    report
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print(name: &str, r: &LoadReport) -> f64 {
    let rate = r.outcomes.len() as f64 / r.elapsed.as_secs_f64();
    let (p50, p99) = r.percentiles(None);
    println!(
        "{name}: {} jobs in {:.1} s = {rate:.1} jobs/s; all p50 {:.0} ms p99 {:.0} ms",
        r.outcomes.len(),
        r.elapsed.as_secs_f64(),
        ms(p50),
        ms(p99)
    );
    for kind in [
        JobKind::Echo,
        JobKind::Speech,
        JobKind::Device,
        JobKind::Upstream,
    ] {
        let (p50, p99) = r.percentiles(Some(kind));
        println!(
            "  {kind:?}: {} jobs, p50 {:.0} ms, p99 {:.0} ms",
            r.count_by_kind().get(&kind).copied().unwrap_or(0),
            ms(p50),
            ms(p99)
        );
    }
    rate
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let flags = numeric_flags(&[("jobs", 200), ("lanes", 6)]);
    let (jobs, lanes) = (flags["jobs"] as usize, flags["lanes"] as usize);
    let broker = Mosquitto::start();
    let _home = avb_devices::sim::run(&broker.url(), "zigbee2mqtt").expect("simulator");
    println!("avb: {}", avb_testkit::system::avb_bin().display());
    let baseline = measure(1, 1, &broker.url(), jobs, lanes).await;
    let cluster = measure(2, 2, &broker.url(), jobs, lanes).await;
    let base_rate = print("baseline (1 api, 1 worker)", &baseline);
    let cluster_rate = print("cluster (2 apis, 2 workers)", &cluster);
    let (b50, b99) = baseline.percentiles(None);
    let (c50, c99) = cluster.percentiles(None);
    println!(
        "ratio cluster/baseline: jobs/s {:.2}x, p50 {:.2}x, p99 {:.2}x",
        cluster_rate / base_rate,
        ms(c50) / ms(b50),
        ms(c99) / ms(b99)
    );
}
