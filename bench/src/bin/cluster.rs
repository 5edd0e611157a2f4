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
use avb_testkit::cluster::{Cluster, ClusterOptions, JobKind, LoadReport, mixed_plan, run_load};
use avb_testkit::mosquitto::Mosquitto;

/// `node_modules` with server-everything (what the upstream calls reach), installed by
/// `deploy/upstream_servers.sh`.
fn everything_js() -> String {
    let root = avb_testkit::system::repo_root();
    let out = std::process::Command::new(root.join("deploy/upstream_servers.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run deploy/upstream_servers.sh");
    assert!(out.status.success(), "deploy/upstream_servers.sh failed");
    std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        .join("@modelcontextprotocol/server-everything/dist/index.js")
        .display()
        .to_string()
}

async fn measure(
    apis: usize,
    workers: usize,
    env: &[(String, String)],
    jobs: usize,
    lanes: usize,
) -> LoadReport {
    let cluster = Cluster::start(ClusterOptions {
        apis,
        workers,
        env: env.to_vec(),
        ready_tools: vec!["everything_echo".into()],
    })
    .await;
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
    let config_dir = tempfile::tempdir().expect("tmp");
    let config_file = config_dir.path().join("avb.toml");
    std::fs::write(
        &config_file,
        format!(
            "[mcp_servers.everything]\ncommand = \"node\"\nargs = [{:?}, \"stdio\"]\n\
             tenants = [\"*\"]\ndurable = true\n",
            everything_js()
        ),
    )
    .expect("config");
    let env = vec![
        ("AVB_MQTT_URL".to_string(), broker.url()),
        ("AVB_Z2M_TENANTS".into(), "*".into()),
        ("AVB_CONFIG".into(), config_file.display().to_string()),
        ("AVB_LOG".into(), "warn".into()),
    ];
    println!("avb: {}", avb_testkit::system::avb_bin().display());
    let baseline = measure(1, 1, &env, jobs, lanes).await;
    let cluster = measure(2, 2, &env, jobs, lanes).await;
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
