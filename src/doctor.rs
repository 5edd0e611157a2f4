//! `avb doctor`: checks every dependency this configuration names — Temporal (namespace, search
//! attributes, a worker polling each queue), the database and its migrations, Redis, the
//! artifact store, the TTS assets, the container engine, the MQTT broker, Home Assistant, each
//! upstream MCP server, the OIDC issuer — then runs one real `generate_speech` through the api.
//! One line per check (or `--json`); the exit status is non-zero when a check failed, and the
//! last line names them.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use avb_config::AvbConfig;
use avb_runtime::temporal;
use avb_workflows::{queues, search};
use serde::Serialize;
use serde_json::{Value, json};
use temporalio_client::Client;
use temporalio_common::protos::temporal::api::enums::v1::TaskQueueType;

/// How long one check may take before it fails.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
const ASSETS_CHECK_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the end-to-end speech check may take (a TTS worker may still be loading its model).
const SPEECH_TIMEOUT: Duration = Duration::from_secs(180);
/// The assets `deploy/fetch_assets.py` installs, with their sha256.
const ASSETS_MANIFEST: &str = include_str!("../deploy/assets.sha256");

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Print one JSON document instead of a line per check.
    #[arg(long)]
    json: bool,
    /// The api the speech check calls (default: AVB_PUBLIC_URL, else http://AVB_HTTP).
    #[arg(long)]
    url: Option<String>,
    /// Skip the end-to-end speech check (it runs one short, billed `generate_speech` job as
    /// the key in AVB_API_KEY, else the AGENT key of `$AVB_DATA_DIR/dev-keys.json`).
    #[arg(long)]
    no_speech: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Serialize)]
struct Check {
    name: String,
    status: Status,
    detail: String,
    millis: u64,
}

type Outcome = (Status, String);

fn ok(detail: impl Into<String>) -> Outcome {
    (Status::Ok, detail.into())
}
fn failed(detail: impl Into<String>) -> Outcome {
    (Status::Failed, detail.into())
}
fn skipped(detail: impl Into<String>) -> Outcome {
    (Status::Skipped, detail.into())
}

/// The checks run so far, printed as they finish unless the output is JSON.
struct Report {
    json: bool,
    checks: Vec<Check>,
}

impl Report {
    async fn run(&mut self, name: &str, check: impl std::future::Future<Output = Outcome>) {
        self.run_within(name, CHECK_TIMEOUT, check).await;
    }

    async fn run_within(
        &mut self,
        name: &str,
        limit: Duration,
        check: impl std::future::Future<Output = Outcome>,
    ) {
        let started = Instant::now();
        let (status, detail) = match tokio::time::timeout(limit, check).await {
            Ok(outcome) => outcome,
            Err(_) => failed(format!("no answer within {limit:?}")),
        };
        self.record(name, status, detail, started.elapsed());
    }

    fn record(&mut self, name: &str, status: Status, detail: String, took: Duration) {
        let check = Check {
            name: name.to_string(),
            status,
            detail,
            millis: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        };
        if !self.json {
            let label = match status {
                Status::Ok => "ok",
                Status::Failed => "FAILED",
                Status::Skipped => "skipped",
            };
            println!(
                "{label:<8} {:<28} {} ({} ms)",
                check.name, check.detail, check.millis
            );
        }
        self.checks.push(check);
    }

    fn failures(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Failed)
            .map(|c| c.name.as_str())
            .collect()
    }
}

pub fn run(args: DoctorArgs) -> ExitCode {
    let outcome = crate::run::block_on_value(doctor(args));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs every check; true when none failed.
async fn doctor(args: DoctorArgs) -> anyhow::Result<bool> {
    let mut config = AvbConfig::load().context("loading the configuration")?;
    temporal::apply_profile(&mut config.temporal)?;
    let mut report = Report {
        json: args.json,
        checks: Vec::new(),
    };

    report
        .run("tls", async {
            match avb_tls::init(config.tls.ca_file.as_deref()) {
                Ok(()) => match &config.tls.ca_file {
                    Some(f) => ok(format!("platform roots and {}", f.display())),
                    None => ok("platform roots"),
                },
                Err(e) => failed(e),
            }
        })
        .await;

    // Temporal first: the worker and speech checks need it.
    let started = Instant::now();
    let client = tokio::time::timeout(
        CHECK_TIMEOUT,
        temporal::connect(&config.temporal, "avb-doctor"),
    )
    .await;
    let client = match client {
        Ok(Ok(client)) => {
            let version = server_version(&client).await;
            match version {
                Ok(v) => report.record(
                    "temporal",
                    Status::Ok,
                    format!("{} (server {v})", config.temporal.address),
                    started.elapsed(),
                ),
                Err(e) => report.record(
                    "temporal",
                    Status::Failed,
                    format!("{}: {e}", config.temporal.address),
                    started.elapsed(),
                ),
            }
            Some(client)
        }
        Ok(Err(e)) => {
            report.record(
                "temporal",
                Status::Failed,
                format!("{e} (AVB_TEMPORAL_ADDRESS)"),
                started.elapsed(),
            );
            None
        }
        Err(_) => {
            report.record(
                "temporal",
                Status::Failed,
                format!(
                    "{}: no answer within {CHECK_TIMEOUT:?} (AVB_TEMPORAL_ADDRESS)",
                    config.temporal.address
                ),
                started.elapsed(),
            );
            None
        }
    };
    match &client {
        Some(client) => temporal_checks(&mut report, client, &config).await,
        None => {
            for name in [
                "temporal.namespace",
                "temporal.search_attributes",
                "workers",
            ] {
                report.record(
                    name,
                    Status::Skipped,
                    "Temporal does not answer".into(),
                    Duration::ZERO,
                );
            }
        }
    }

    let store = database_check(&mut report, &config).await;
    report.run("redis", redis_check(&config)).await;
    report
        .run("artifacts", artifacts_check(&config, store.as_ref()))
        .await;
    let assets = config.assets_dir();
    // Reading and checksumming every asset (about 400 MB with the Japanese dictionary) is
    // disk-bound work, not a dependency that might hang: it gets longer than a probe.
    report
        .run_within("tts.assets", ASSETS_CHECK_TIMEOUT, assets_check(&assets))
        .await;
    report
        .run("tts.espeak", espeak_check(&config, &assets))
        .await;
    report
        .run("provisioning.engine", engine_check(&config))
        .await;
    report.run("devices.mqtt", mqtt_check(&config)).await;
    report
        .run("devices.home_assistant", home_assistant_check(&config))
        .await;
    upstream_checks(&mut report, &config).await;
    report.run("auth.oidc", oidc_check(&config)).await;

    if args.no_speech {
        report.record(
            "speech",
            Status::Skipped,
            "--no-speech".into(),
            Duration::ZERO,
        );
    } else if client.is_none() {
        report.record(
            "speech",
            Status::Skipped,
            "Temporal does not answer".into(),
            Duration::ZERO,
        );
    } else {
        let base = args.url.clone().unwrap_or_else(|| config.public_url());
        let started = Instant::now();
        let (status, detail) = match tokio::time::timeout(
            SPEECH_TIMEOUT,
            speech_check(&config, base.trim_end_matches('/')),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => failed(format!(
                "no result within {SPEECH_TIMEOUT:?} from {base} (are TTS workers running?)"
            )),
        };
        report.record("speech", status, detail, started.elapsed());
    }
    if let Some(store) = store {
        store.close().await;
    }

    let failures = report.failures();
    if args.json {
        let doc = json!({
            "ok": failures.is_empty(),
            "failed": failures,
            "checks": report.checks,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let count = |s| report.checks.iter().filter(|c| c.status == s).count();
        println!(
            "{} checks: {} ok, {} failed, {} skipped",
            report.checks.len(),
            count(Status::Ok),
            count(Status::Failed),
            count(Status::Skipped)
        );
        if !failures.is_empty() {
            println!("failed: {}", failures.join(", "));
        }
    }
    Ok(failures.is_empty())
}

async fn server_version(client: &Client) -> Result<String, String> {
    use temporalio_client::grpc::WorkflowService;
    use temporalio_common::protos::temporal::api::workflowservice::v1::GetSystemInfoRequest;
    let mut raw = client.clone();
    WorkflowService::get_system_info(&mut raw, tonic::Request::new(GetSystemInfoRequest {}))
        .await
        .map(|r| r.into_inner().server_version)
        .map_err(|e| e.message().to_string())
}

async fn temporal_checks(report: &mut Report, client: &Client, config: &AvbConfig) {
    let namespace = config.temporal.namespace.clone();
    report
        .run("temporal.namespace", async {
            use temporalio_client::grpc::WorkflowService;
            use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeNamespaceRequest;
            let mut raw = client.clone();
            let request = DescribeNamespaceRequest {
                namespace: namespace.clone(),
                ..Default::default()
            };
            match WorkflowService::describe_namespace(&mut raw, tonic::Request::new(request)).await
            {
                Ok(_) => ok(namespace.clone()),
                Err(e) => failed(format!(
                    "{namespace}: {} (AVB_TEMPORAL_NAMESPACE)",
                    e.message()
                )),
            }
        })
        .await;
    report
        .run("temporal.search_attributes", async {
            match temporal::missing_search_attributes(client, &namespace, search::ALL_KEYWORDS)
                .await
            {
                Ok(missing) if missing.is_empty() => ok(search::ALL_KEYWORDS.join(", ")),
                Ok(missing) => failed(format!(
                    "not registered: {} (avb serve and avb worker register them at start)",
                    missing.join(", ")
                )),
                Err(e) => failed(e.to_string()),
            }
        })
        .await;
    let devices = config.devices.mqtt_url.is_some() || config.devices.home_assistant.url.is_some();
    for queue in queues::ALL {
        let (kind, needed, why) = match *queue {
            queues::WORKFLOWS => (TaskQueueType::Workflow, true, ""),
            queues::TTS => (TaskQueueType::Activity, true, ""),
            queues::BILLING => (
                TaskQueueType::Activity,
                config.billing.enabled,
                "billing is off",
            ),
            queues::PROVISIONING => (TaskQueueType::Activity, true, ""),
            // Device workflows run on the devices workers too (with local activities).
            queues::DEVICES if config.temporal.device_local_activities => {
                (TaskQueueType::Workflow, devices, "no devices configured")
            }
            queues::DEVICES => (TaskQueueType::Activity, devices, "no devices configured"),
            _ => (
                TaskQueueType::Activity,
                !config.mcp_servers.is_empty(),
                "no upstream MCP servers configured",
            ),
        };
        report
            .run(&format!("workers:{queue}"), async {
                match avb_api::health::queue_pollers(client, &namespace, queue, kind).await {
                    Ok(n) if n > 0 => ok(format!("{n} pollers")),
                    Ok(_) if needed => failed(format!(
                        "no worker polls it: start `avb worker --queues {queue}` (or `all`)"
                    )),
                    Ok(_) => skipped(format!("no worker; none needed ({why})")),
                    Err(e) => failed(e),
                }
            })
            .await;
    }
}

/// The database as it is (no migration applied): reachable, and its migrations current.
async fn database_check(report: &mut Report, config: &AvbConfig) -> Option<avb_store::Store> {
    let started = Instant::now();
    let url = config.database_url();
    let default_file = config.data_dir.join("avb.db");
    if config.database.url.is_none() && !default_file.exists() {
        // Opening would create an empty one.
        report.record(
            "database",
            Status::Failed,
            format!(
                "no database at {} (AVB_DATA_DIR, DATABASE_URL): `avb dev` or `avb admin migrate` \
                 creates it",
                default_file.display()
            ),
            started.elapsed(),
        );
        return None;
    }
    let opened = tokio::time::timeout(CHECK_TIMEOUT, avb_store::Store::connect_as_is(&url)).await;
    let store = match opened {
        Ok(Ok(store)) => store,
        Ok(Err(e)) => {
            report.record(
                "database",
                Status::Failed,
                format!("{e} (DATABASE_URL)"),
                started.elapsed(),
            );
            return None;
        }
        Err(_) => {
            report.record(
                "database",
                Status::Failed,
                format!("no answer within {CHECK_TIMEOUT:?} (DATABASE_URL)"),
                started.elapsed(),
            );
            return None;
        }
    };
    let (status, detail) = match store.migration_report().await {
        Ok(m) if !m.pending.is_empty() => failed(format!(
            "{}: {} of this release's {} migrations not applied ({:?}); `avb admin migrate` or \
             any `avb serve`/`avb worker` start applies them",
            store.backend_name(),
            m.pending.len(),
            m.known,
            m.pending
        )),
        Ok(m) if !m.newer.is_empty() => ok(format!(
            "{}, migrations current; {} newer ones from a later release (compatible: \
             migrations are expand/contract)",
            store.backend_name(),
            m.newer.len()
        )),
        Ok(m) => ok(format!(
            "{}, {} migrations current",
            store.backend_name(),
            m.applied
        )),
        Err(e) => failed(e.to_string()),
    };
    report.record("database", status, detail, started.elapsed());
    Some(store)
}

async fn redis_check(config: &AvbConfig) -> Outcome {
    let Some(url) = &config.redis.url else {
        return skipped("REDIS_URL unset: rate limits and MCP sessions are kept per api process");
    };
    let scheme = url.split(':').next().unwrap_or("redis");
    match avb_api::core::shared_redis::SharedRedis::new(url) {
        Ok(redis) => match redis.ping().await {
            Ok(()) => ok(format!("{scheme}:// answers")),
            Err(e) => failed(format!("{scheme}://…: {e} (REDIS_URL)")),
        },
        Err(e) => failed(format!("{scheme}://…: {e} (REDIS_URL)")),
    }
}

/// Writes, reads back and deletes an object of its own in the configured store.
async fn artifacts_check(config: &AvbConfig, store: Option<&avb_store::Store>) -> Outcome {
    let artifacts = match avb_artifacts::ArtifactStore::configured(config, store) {
        Ok(a) => a,
        Err(e) => return failed(format!("{e} (AVB_ARTIFACTS_URL)")),
    };
    let content = bytes::Bytes::from(format!("avb doctor {}", uuid::Uuid::new_v4()));
    let written = match artifacts
        .put("doctor", "txt", "text/plain", content.clone())
        .await
    {
        Ok(w) => w,
        Err(e) => return failed(format!("{}: write: {e}", artifacts.description())),
    };
    match artifacts.get(&written).await {
        Ok(read) if read == content => {}
        Ok(_) => {
            return failed(format!(
                "{}: read back other bytes",
                artifacts.description()
            ));
        }
        Err(e) => return failed(format!("{}: read: {e}", artifacts.description())),
    }
    match artifacts.delete(&written).await {
        Ok(_) => ok(format!("{} (write, read, delete)", artifacts.description())),
        Err(e) => failed(format!("{}: delete: {e}", artifacts.description())),
    }
}

/// The model, vocabulary, runtime library and voices, each with its expected sha256.
async fn assets_check(dir: &Path) -> Outcome {
    if !dir.exists() {
        return skipped(format!(
            "none at {} (only hosts running TTS workers need them: python3 \
             deploy/fetch_assets.py)",
            dir.display()
        ));
    }
    let dir = dir.to_path_buf();
    let checked = tokio::task::spawn_blocking(move || {
        let mut bad = Vec::new();
        let mut count = 0;
        for line in ASSETS_MANIFEST.lines().filter(|l| !l.trim().is_empty()) {
            let Some((digest, name)) = line.split_once(' ') else {
                continue;
            };
            count += 1;
            let path = dir.join(name.trim());
            match sha256_file(&path) {
                Ok(actual) if actual == digest => {}
                Ok(_) => bad.push(format!("{name} (corrupt)")),
                Err(_) => bad.push(format!("{name} (missing)")),
            }
        }
        (count, bad)
    })
    .await;
    match checked {
        Ok((count, bad)) if bad.is_empty() => ok(format!("{count} files, checksums match")),
        Ok((_, bad)) => failed(format!(
            "{} (python3 deploy/fetch_assets.py)",
            bad.join(", ")
        )),
        Err(e) => failed(e.to_string()),
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

async fn espeak_check(config: &AvbConfig, assets: &Path) -> Outcome {
    if !assets.exists() {
        return skipped("no TTS assets on this host");
    }
    let program = &config.tts.espeak_program;
    match tokio::process::Command::new(program)
        .arg("--version")
        .output()
        .await
    {
        Ok(out) if out.status.success() => ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or(program)
            .trim()
            .to_string()),
        Ok(out) => failed(format!("{program} --version exited {}", out.status)),
        Err(e) => failed(format!(
            "{program}: {e} (Debian package espeak-ng; AVB_ESPEAK_PROGRAM)"
        )),
    }
}

async fn engine_check(config: &AvbConfig) -> Outcome {
    let backend = avb_activities::provisioning_activity::backend_for(
        &config.provisioning,
        &config.data_dir.join("logs/provisioned"),
        &config.installation_id(),
    )
    .await;
    match backend.ping().await {
        Ok(()) => ok(format!(
            "{} (provisioning.backend = {})",
            backend.kind(),
            config.provisioning.backend
        )),
        Err(e) => failed(format!("{}: {e}", backend.kind())),
    }
}

async fn mqtt_check(config: &AvbConfig) -> Outcome {
    let Some(url) = &config.devices.mqtt_url else {
        return skipped("AVB_MQTT_URL unset");
    };
    match avb_devices::mqtt::check_broker(url, Duration::from_secs(5)).await {
        Ok(()) => ok(format!("{url} answers")),
        Err(e) => failed(format!("{e} (AVB_MQTT_URL)")),
    }
}

async fn home_assistant_check(config: &AvbConfig) -> Outcome {
    let ha = &config.devices.home_assistant;
    let (Some(url), Some(token)) = (&ha.url, &ha.token) else {
        return skipped("AVB_HA_URL unset");
    };
    let client =
        match avb_devices::ha::HomeAssistant::new(url, token.expose(), Duration::from_secs(5)) {
            Ok(c) => c,
            Err(e) => return failed(e.to_string()),
        };
    match client.states().await {
        Ok(states) => ok(format!("{url}: {} entities", states.len())),
        Err(e) => failed(format!("{url}: {e} (AVB_HA_URL, AVB_HA_TOKEN)")),
    }
}

async fn upstream_checks(report: &mut Report, config: &AvbConfig) {
    if config.mcp_servers.is_empty() {
        report.record(
            "upstreams",
            Status::Skipped,
            "no [mcp_servers] configured".into(),
            Duration::ZERO,
        );
        return;
    }
    let started = Instant::now();
    let hub = avb_upstream::UpstreamHub::new(config.mcp_servers.clone(), None, |_| false);
    let _ = tokio::time::timeout(CHECK_TIMEOUT, hub.check_all()).await;
    let took = started.elapsed();
    for (name, outcome) in hub.checked_servers() {
        let (status, detail) = match outcome {
            Ok(tools) => ok(format!("{tools} tools")),
            Err(e) if e == "disabled" => skipped(e),
            Err(e) => failed(e),
        };
        report.record(&format!("upstream:{name}"), status, detail, took);
    }
}

async fn oidc_check(config: &AvbConfig) -> Outcome {
    let Some(oidc) = &config.auth.oidc else {
        return skipped("[auth.oidc] not configured");
    };
    let url = format!("{}/.well-known/openid-configuration", oidc.issuer);
    let client = match avb_tls::client_builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => return failed(e.to_string()),
    };
    let response = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) => return failed(format!("{url}: {}", avb_tls::with_causes(&e))),
    };
    if !response.status().is_success() {
        return failed(format!("{url}: {}", response.status()));
    }
    match response.json::<Value>().await {
        Ok(doc) if doc["issuer"].as_str() == Some(oidc.issuer.as_str()) => ok(format!(
            "{} (discovery, jwks_uri {})",
            oidc.issuer, doc["jwks_uri"]
        )),
        Ok(doc) => failed(format!(
            "{url} names issuer {} instead of {} (AVB_OIDC_ISSUER)",
            doc["issuer"], oidc.issuer
        )),
        Err(e) => failed(format!("{url}: not a discovery document: {e}")),
    }
}

/// The key the speech check calls with: AVB_API_KEY, else the local AGENT key `avb dev` wrote.
fn api_key(config: &AvbConfig) -> Option<String> {
    if let Ok(key) = std::env::var("AVB_API_KEY")
        && !key.trim().is_empty()
    {
        return Some(key.trim().to_string());
    }
    let text = std::fs::read_to_string(config.data_dir.join("dev-keys.json")).ok()?;
    let keys: Value = serde_json::from_str(&text).ok()?;
    keys["agent"].as_str().map(str::to_string)
}

/// One `generate_speech` through the api's MCP endpoint (a 2025-11-25 session), its audio read
/// inline or from its download link and checked to be a WAV.
async fn speech_check(config: &AvbConfig, base: &str) -> Outcome {
    use base64::Engine as _;
    let key = api_key(config);
    let http = match avb_tls::client_builder().build() {
        Ok(c) => c,
        Err(e) => return failed(e.to_string()),
    };
    let mcp = format!("{base}/mcp");
    let post = |session: Option<String>, body: Value| {
        let mut request = http
            .post(&mcp)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        if let Some(key) = &key {
            request = request.bearer_auth(key);
        }
        if let Some(id) = session {
            request = request.header("mcp-session-id", id);
        }
        request.send()
    };
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "avb-doctor", "version": env!("CARGO_PKG_VERSION")}}});
    let response = match post(None, init).await {
        Ok(r) => r,
        Err(e) => {
            return failed(format!(
                "{mcp}: {} (is `avb serve` running? --url or AVB_PUBLIC_URL)",
                avb_tls::with_causes(&e)
            ));
        }
    };
    if response.status() == 401 {
        return failed(format!(
            "{mcp}: 401: set AVB_API_KEY to an AGENT key (avb admin create-key)"
        ));
    }
    if !response.status().is_success() {
        return failed(format!("{mcp}: initialize answered {}", response.status()));
    }
    let Some(session) = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return failed(format!("{mcp}: no session id in the initialize answer"));
    };
    let _ = post(
        Some(session.clone()),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "generate_speech",
        "arguments": {"text": "AgentVoiceBox is working.", "voice_id": "af_heart"}}});
    let answer = match post(Some(session.clone()), call).await {
        Ok(r) => rpc_message(r, 2).await,
        Err(e) => Err(avb_tls::with_causes(&e)),
    };
    // The session is done either way.
    let mut close = http
        .delete(&mcp)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(key) = &key {
        close = close.bearer_auth(key);
    }
    let _ = close.send().await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return failed(format!("generate_speech: {e}")),
    };
    let result = &answer["result"];
    if result.is_null() || result["isError"] == true {
        let why = result["content"][0]["text"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| answer.to_string());
        return failed(format!("generate_speech: {why}"));
    }
    let job = result["structuredContent"]["job_id"]
        .as_str()
        .unwrap_or("?");
    let duration = result["structuredContent"]["duration_secs"]
        .as_f64()
        .unwrap_or(0.0);
    let content = result["content"].as_array().cloned().unwrap_or_default();
    let wav = if let Some(audio) = content.iter().find(|c| c["type"] == "audio") {
        base64::engine::general_purpose::STANDARD
            .decode(audio["data"].as_str().unwrap_or(""))
            .unwrap_or_default()
    } else if content.iter().any(|c| c["type"] == "resource_link") {
        // The link names the audio resource; the download URL is in the structured result.
        let uri = result["structuredContent"]["audio_url"]
            .as_str()
            .unwrap_or("");
        let mut get = http.get(uri);
        if let Some(key) = &key {
            get = get.bearer_auth(key);
        }
        match get.send().await {
            Ok(r) if r.status().is_success() => {
                r.bytes().await.map(|b| b.to_vec()).unwrap_or_default()
            }
            Ok(r) => return failed(format!("audio download {uri}: {}", r.status())),
            Err(e) => {
                return failed(format!(
                    "audio download {uri}: {}",
                    avb_tls::with_causes(&e)
                ));
            }
        }
    } else {
        return failed("generate_speech answered without audio or a link to it".to_string());
    };
    if wav.len() < 44 || &wav[..4] != b"RIFF" {
        return failed(format!("job {job}: the audio is not a WAV file"));
    }
    ok(format!(
        "{duration:.2} s of audio, {} bytes (job {job}, via {mcp})",
        wav.len()
    ))
}

/// The JSON-RPC answer with `id` in an MCP POST's response (a JSON body or an event stream).
async fn rpc_message(response: reqwest::Response, id: u64) -> Result<Value, String> {
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {body}"));
    }
    if let Ok(v) = serde_json::from_str::<Value>(&body) {
        return Ok(v);
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m["id"] == id)
        .ok_or_else(|| format!("no answer in the stream: {body}"))
}
