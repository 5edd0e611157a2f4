//! Billing benchmark (credit holds and settles, the saga's cost): run with
//! `cargo run --release -p avb-bench --bin billing -- [--workflows 50] [--seconds 10] [--rounds 2]
//! [--speech 15]`.
//!
//! (a) Holds+settles per second with `--workflows` concurrent callers, on SQLite and on
//!     PostgreSQL (a server the benchmark starts): each caller runs `BillingBench` workflows in a
//!     loop — the billing saga of a job without the work: `hold_credits` then `settle_credits` on
//!     the real `avb-billing` worker. Baseline, same run: the same number of callers doing the
//!     store's `hold` + `settle` directly (no Temporal). Rounds interleaved; ratios = saga / raw,
//!     PostgreSQL / SQLite.
//! (b) Overhead of billing on `generate_speech`: `--speech` pairs of short speech jobs, one with
//!     a price (hold → synthesize → settle) and one without, alternating, through the api's job
//!     functions (what the tool runs), on SQLite. p50 with / without.
//!
//! One process: its own Temporal dev server, the workers sharing one connection.

use std::time::{Duration, Instant};

use avb_api::speech;
use avb_bench::{mean, numeric_flags, rate, summary};
use avb_config::AvbConfig;
use avb_store::{Store, Usage};
use avb_workflows::billing::{BillingPlan, Saga};
use avb_workflows::speech::GenerateSpeechInput;
use futures::FutureExt;
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{Worker, WorkerOptions};
use temporalio_workflow::{WorkflowContext, WorkflowResult};
use tokio_util::sync::CancellationToken;

const BENCH_QUEUE: &str = "avb-bench-billing";
const TENANT: &str = "bench";

/// The billing saga of one job, without the job: hold, then settle.
#[workflow]
#[derive(Default)]
pub struct BillingBenchWorkflow;

#[workflow_methods]
impl BillingBenchWorkflow {
    #[run(name = "BillingBench")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, tenant: String) -> WorkflowResult<()> {
        let job_id = ctx.workflow_id().to_owned();
        let plan = BillingPlan::new("generate_speech", "character", 100, 10);
        let saga = Saga::hold(ctx, &tenant, &job_id, &plan).await?;
        saga.settle(ctx).await
    }
}

fn plan() -> BillingPlan {
    BillingPlan::new("generate_speech", "character", 100, 10)
}

async fn fresh_tenant(store: &Store) -> String {
    let t = match store.tenant_by_name(TENANT).await.expect("lookup") {
        Some(t) => t,
        None => store.create_tenant(TENANT).await.expect("tenant"),
    };
    store
        .grant(
            &t.id,
            1_000_000_000_000,
            &format!("bench-{}", uuid::Uuid::new_v4()),
            "benchmark",
        )
        .await
        .expect("grant");
    t.id
}

/// Store-level hold + settle per second (no Temporal).
async fn raw_sagas(store: &Store, tenant_id: &str, callers: usize, seconds: u64) -> f64 {
    let plan = plan();
    rate(callers, seconds, |_, deadline| {
        let (store, tenant_id, plan) = (store.clone(), tenant_id.to_owned(), plan.clone());
        async move {
            let mut n = 0;
            while Instant::now() < deadline {
                let job = format!("raw_{}", uuid::Uuid::new_v4().simple());
                let hold = format!("{job}/hold");
                store
                    .hold(&tenant_id, plan.credits, &hold, &job)
                    .await
                    .expect("hold");
                let usage = Usage {
                    tool: plan.tool.clone(),
                    unit: plan.unit.clone(),
                    quantity: plan.quantity,
                    price: plan.price,
                };
                store
                    .settle(&hold, plan.credits, &format!("{job}/settle"), &usage)
                    .await
                    .expect("settle");
                n += 1;
            }
            n
        }
    })
    .await
}

/// `BillingBench` workflows (hold + settle on the billing worker) per second.
async fn durable_sagas(client: &Client, callers: usize, seconds: u64) -> f64 {
    rate(callers, seconds, |_, deadline| {
        let client = client.clone();
        async move {
            let mut n = 0;
            while Instant::now() < deadline {
                let id = format!("job_{}", uuid::Uuid::new_v4().simple());
                let opts = WorkflowStartOptions::new(BENCH_QUEUE, id.clone()).build();
                client
                    .start_workflow(BillingBenchWorkflow::run, TENANT.to_string(), opts)
                    .await
                    .expect("start");
                client
                    .get_workflow_handle::<BillingBenchWorkflow>(id)
                    .get_result(WorkflowGetResultOptions::default())
                    .await
                    .expect("saga completes");
                n += 1;
            }
            n
        }
    })
    .await
}

/// Runs `body` while this process serves the billing queue (on `config`'s database) and, for
/// `extra_queues`, the avb workers; plus the bench workflow's worker.
async fn with_workers<F: Future<Output = T>, T>(
    client: &Client,
    config: &AvbConfig,
    extra_queues: &[&'static str],
    body: F,
) -> T {
    let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default()).expect("runtime");
    let shutdown = CancellationToken::new();
    let mut queues = vec![avb_workflows::queues::BILLING];
    queues.extend_from_slice(extra_queues);
    let stop = shutdown.clone();
    let workers = avb_workers::run_workers(&runtime, client.clone(), config, &queues, async move {
        stop.cancelled().await
    });
    let opts = WorkerOptions::new(BENCH_QUEUE)
        .register_workflow::<BillingBenchWorkflow>()
        .expect("register")
        .build();
    let mut bench_worker = Worker::new(&runtime, client.clone(), opts).expect("bench worker");
    let stop_bench = bench_worker.shutdown_handle();
    let body = async {
        let out = body.await;
        shutdown.cancel();
        stop_bench();
        out
    };
    let (w, b, out) = tokio::join!(workers, bench_worker.run().boxed_local(), body);
    w.expect("workers");
    b.expect("bench worker");
    out
}

async fn sagas_per_second(
    name: &str,
    client: &Client,
    config: &AvbConfig,
    f: &std::collections::BTreeMap<String, u64>,
) -> (f64, f64) {
    let store = Store::connect(&config.database_url())
        .await
        .expect("database");
    let tenant_id = fresh_tenant(&store).await;
    let callers = usize::try_from(f["workflows"]).expect("workflows");
    let (raw, durable) = with_workers(client, config, &[], async {
        let (mut raw, mut durable) = (Vec::new(), Vec::new());
        for round in 1..=f["rounds"] {
            let r = raw_sagas(&store, &tenant_id, callers, f["seconds"]).await;
            let d = durable_sagas(client, callers, f["seconds"]).await;
            println!(
                "  {name} round {round}: store hold+settle {r:7.1}/s | saga workflows {d:7.1}/s"
            );
            raw.push(r);
            durable.push(d);
        }
        (mean(&raw), mean(&durable))
    })
    .await;
    let b = store.balance(&tenant_id).await.expect("balance");
    assert_eq!(b.held, 0, "every hold settled");
    store.close().await;
    (raw, durable)
}

async fn speech_overhead(client: &Client, config: &AvbConfig, pairs: u64) -> (f64, f64) {
    let store = Store::connect(&config.database_url())
        .await
        .expect("database");
    let local = match store.tenant_by_name("local").await.expect("lookup") {
        Some(t) => t,
        None => store.create_tenant("local").await.expect("tenant"),
    };
    store
        .grant(&local.id, 1_000_000_000, "bench-speech", "benchmark")
        .await
        .expect("grant");
    let queues = [avb_workflows::queues::WORKFLOWS, avb_workflows::queues::TTS];
    let out = with_workers(client, config, &queues, async {
        let (mut with, mut without) = (Vec::new(), Vec::new());
        let request = GenerateSpeechInput {
            text: "Billing should cost next to nothing.".into(),
            voice_id: "af_heart".into(),
            speed: 1.0,
            format: None,
            language: None,
        };
        // One unmeasured job of each kind warms the model and the connections.
        for i in 0..=(pairs * 2) {
            let billed = i % 2 == 0;
            let billing = billed
                .then(|| speech::speech_billing(&config.billing, &request))
                .flatten();
            let t = Instant::now();
            let (_, handle) = speech::start_speech(
                client,
                &avb_api::auth::Caller::local(),
                request.clone(),
                billing,
            )
            .await
            .expect("start");
            speech::wait_speech(&handle, Duration::from_secs(120))
                .await
                .expect("speech")
                .expect("in time");
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if i >= 2 {
                if billed {
                    with.push(ms);
                } else {
                    without.push(ms);
                }
            }
        }
        (summary(with).0, summary(without).0)
    })
    .await;
    store.close().await;
    out
}

#[tokio::main]
async fn main() {
    let f = numeric_flags(&[
        ("workflows", 50),
        ("seconds", 10),
        ("rounds", 2),
        ("speech", 15),
    ]);
    let data = tempfile::tempdir().expect("tmp");
    let (server, config, client) = avb_bench::dev_setup(data.path(), "bench-billing").await;
    let postgres = avb_testkit::pg::PgServer::start().await;
    let mut pg_config = config.clone();
    pg_config.database.url = Some(postgres.url.clone().into());

    println!(
        "(a) billing sagas (hold + settle), {} concurrent callers, {} rounds of {} s:",
        f["workflows"], f["rounds"], f["seconds"]
    );
    let (sqlite_raw, sqlite_saga) = sagas_per_second("SQLite    ", &client, &config, &f).await;
    let (pg_raw, pg_saga) = sagas_per_second("PostgreSQL", &client, &pg_config, &f).await;
    println!(
        "  SQLite:     saga workflows {sqlite_saga:.1}/s vs store {sqlite_raw:.1}/s = {:.2}x",
        sqlite_saga / sqlite_raw
    );
    println!(
        "  PostgreSQL: saga workflows {pg_saga:.1}/s vs store {pg_raw:.1}/s = {:.2}x",
        pg_saga / pg_raw
    );
    println!(
        "  PostgreSQL / SQLite: sagas {:.2}x, store {:.2}x",
        pg_saga / sqlite_saga,
        pg_raw / sqlite_raw
    );

    println!(
        "(b) generate_speech p50, {} jobs with billing and {} without, alternating:",
        f["speech"], f["speech"]
    );
    let (with, without) = speech_overhead(&client, &config, f["speech"]).await;
    println!(
        "  with billing {with:.0} ms, without {without:.0} ms: {:.2}x (+{:.0} ms)",
        with / without,
        with - without
    );
    tokio::task::spawn_blocking(move || drop(postgres))
        .await
        .expect("stop PostgreSQL");
    server.stop().await;
}
