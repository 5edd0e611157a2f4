//! Several machines on one: a Temporal dev server, PostgreSQL and Redis shared by `avb serve`
//! and `avb worker` processes that each have a data folder of their own (nothing shared through
//! files), a load balancer in front of the apis, and a bounded mixed load through it in both
//! protocol revisions. Used by the cluster test (kills and restarts members under load) and the
//! cluster benchmark.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use crate::redis::RedisServer;
use crate::system::{TestSystem, avb_bin, other_host_data_dir, wait_until_ok};

/// How long a member may take to start (a TTS worker loads its model).
const START_LIMIT: Duration = Duration::from_secs(120);

/// One `avb` process of the cluster, restartable on the same port and data folder.
struct Member {
    args: Vec<String>,
    port: u16,
    data: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

/// The options of the mixed load's cluster: every process reaches the Zigbee2MQTT simulator's
/// broker at `broker_url` (for every tenant) and has server-everything as a durable upstream of
/// every tenant, from a config file written into `config_dir`; an api is started once it lists
/// that upstream's tool.
pub fn mixed_load_options(
    apis: usize,
    workers: usize,
    broker_url: &str,
    config_dir: &std::path::Path,
) -> ClusterOptions {
    let config_file = config_dir.join("avb.toml");
    std::fs::write(
        &config_file,
        format!(
            "[mcp_servers.everything]\ncommand = \"node\"\nargs = [{:?}, \"stdio\"]\n\
             tenants = [\"*\"]\ndurable = true\n",
            crate::system::everything_js()
        ),
    )
    .expect("config file");
    ClusterOptions {
        apis,
        workers,
        env: vec![
            ("AVB_MQTT_URL".to_string(), broker_url.to_string()),
            ("AVB_Z2M_TENANTS".into(), "*".into()),
            ("AVB_CONFIG".into(), config_file.display().to_string()),
        ],
        ready_tools: vec!["everything_echo".into()],
    }
}

/// Fields drop in order: the processes go before the services they hold connections to.
pub struct Cluster {
    balancer: Balancer,
    apis: Vec<Member>,
    workers: Vec<Member>,
    pub system: TestSystem,
    pub redis: RedisServer,
    /// An AGENT key of the tenant the load runs as.
    pub token: String,
    pub tenant: String,
    env: Vec<(String, String)>,
    ready_tools: Vec<String>,
}

pub struct ClusterOptions {
    pub apis: usize,
    pub workers: usize,
    /// Variables for every process (AVB_MQTT_URL, AVB_CONFIG, …).
    pub env: Vec<(String, String)>,
    /// Tools an api must list before it counts as started (upstream tools are mounted after
    /// the api's first check of the upstream server).
    pub ready_tools: Vec<String>,
}

impl Drop for Member {
    fn drop(&mut self) {
        // Killed and reaped here, so the database sees its connections close before it stops.
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Cluster {
    pub async fn start(options: ClusterOptions) -> Self {
        let redis = RedisServer::start();
        // Temporal and PostgreSQL; the in-process api is not used and no worker runs in-process.
        let system = TestSystem::start_on_postgres(|c| c.auth.required = true, "none").await;
        let store = system.store.as_ref().expect("store");
        let tenant = "cluster".to_string();
        let t = store.create_tenant(&tenant).await.expect("tenant");
        store
            .grant(&t.id, 100_000_000, "cluster-load", "test")
            .await
            .expect("grant");
        let token = store
            .create_key(&t.id, avb_store::Role::Agent, "load")
            .await
            .expect("key")
            .token;
        let mut env = vec![
            ("REDIS_URL".to_string(), redis.url()),
            ("AVB_TTS_THREADS".into(), "1".into()),
            ("AVB_TTS_SESSIONS".into(), "1".into()),
        ];
        env.extend(options.env);
        let member = |args: Vec<String>| Member {
            args,
            port: crate::free_port(),
            data: other_host_data_dir(),
            child: None,
        };
        let apis: Vec<Member> = (0..options.apis)
            .map(|_| member(vec!["serve".into()]))
            .collect();
        let workers: Vec<Member> = (0..options.workers)
            .map(|_| member(vec!["worker".into(), "--queues".into(), "all".into()]))
            .collect();
        let balancer = Balancer::start(apis.iter().map(|a| a.port).collect()).await;
        let mut cluster = Self {
            system,
            redis,
            token,
            tenant,
            env,
            ready_tools: options.ready_tools,
            apis,
            workers,
            balancer,
        };
        for i in 0..cluster.workers.len() {
            cluster.start_worker(i).await;
        }
        for i in 0..cluster.apis.len() {
            cluster.start_api(i).await;
        }
        cluster
    }

    /// The load balancer's base URL (what clients use).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.balancer.port)
    }

    /// Replica `i`'s own base URL.
    pub fn api_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.apis[i].port)
    }

    pub fn api_count(&self) -> usize {
        self.apis.len()
    }

    fn spawn(&self, m: &Member, http_flag: bool) -> tokio::process::Child {
        let addr = format!("127.0.0.1:{}", m.port);
        let mut cmd = tokio::process::Command::new(avb_bin());
        cmd.args(&m.args).args(["--http", &addr]).kill_on_drop(true);
        cmd.envs(self.system.child_env());
        cmd.env("AVB_DATA_DIR", m.data.path());
        if http_flag {
            // Links in results point at the balancer, like a public URL would.
            cmd.env("AVB_PUBLIC_URL", self.url());
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.stdout(std::process::Stdio::null());
        cmd.spawn().expect("spawn avb")
    }

    pub async fn start_api(&mut self, i: usize) {
        let child = self.spawn(&self.apis[i], true);
        self.apis[i].child = Some(child);
        wait_until_ok(&format!("{}/readyz", self.api_url(i)), "api", START_LIMIT).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lane = Lane::new(&self.api_url(i), &self.token, Protocol::Stateless);
        loop {
            let listed = lane.tool_names().await;
            if self.ready_tools.iter().all(|t| listed.contains(t)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "api {i} does not list {:?}: {listed:?}",
                self.ready_tools
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn start_worker(&mut self, i: usize) {
        let child = self.spawn(&self.workers[i], false);
        self.workers[i].child = Some(child);
        let url = format!("http://127.0.0.1:{}/readyz", self.workers[i].port);
        wait_until_ok(&url, "worker", START_LIMIT).await;
    }

    /// SIGKILL, as a machine that dies.
    pub async fn kill_api(&mut self, i: usize) {
        kill(&mut self.apis[i].child).await;
    }

    pub async fn kill_worker(&mut self, i: usize) {
        kill(&mut self.workers[i].child).await;
    }
}

async fn kill(child: &mut Option<tokio::process::Child>) {
    if let Some(mut c) = child.take() {
        c.start_kill().expect("kill -9");
        c.wait().await.expect("reaped");
    }
}

/// A TCP load balancer: each connection goes to the next api that accepts it (a dead one is
/// skipped), as an L4 balancer with health checks would.
struct Balancer {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    async fn start(backends: Vec<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (backends, next) = (backends.clone(), next.clone());
                tokio::spawn(async move {
                    let first = next.fetch_add(1, Ordering::Relaxed);
                    for k in 0..backends.len() {
                        let port = backends[(first + k) % backends.len()];
                        if let Ok(mut backend) = TcpStream::connect(("127.0.0.1", port)).await {
                            let _ = backend.set_nodelay(true);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
                            return;
                        }
                    }
                });
            }
        });
        Self { port, task }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one job of the load calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum JobKind {
    Echo,
    Speech,
    Device,
    Upstream,
}

/// The protocol revision a lane speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// A 2025-11-25 Streamable HTTP session (moves between replicas through Redis).
    Session,
    /// 2026-07-28 stateless requests.
    Stateless,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: JobKind,
    pub protocol: Protocol,
    /// The answer's `job_id` (durable tools).
    pub job_id: Option<String>,
    pub latency: Duration,
    /// Requests repeated after the connection to a replica broke.
    pub retries: u32,
    /// The result (or why there was none).
    pub result: Result<Value, String>,
}

/// The calls of a bounded mixed load: `n` jobs, mostly echoes, with speech, device commands and
/// upstream calls spread through it.
pub fn mixed_plan(n: usize) -> Vec<JobKind> {
    (0..n)
        .map(|i| match i % 10 {
            0 => JobKind::Speech,
            3 | 7 => JobKind::Device,
            5 => JobKind::Upstream,
            _ => JobKind::Echo,
        })
        .collect()
}

fn call_for(kind: JobKind, i: usize) -> (&'static str, Value) {
    match kind {
        JobKind::Echo => ("durable_echo", json!({"message": format!("job {i}")})),
        JobKind::Speech => (
            "generate_speech",
            json!({"text": format!("Cluster job {i}."), "voice_id": "af_heart"}),
        ),
        JobKind::Device => (
            "smart_home_control",
            json!({"action": "set_lights", "room": "living_room", "brightness": (i % 90) + 10}),
        ),
        JobKind::Upstream => (
            "everything_echo",
            json!({"message": format!("upstream {i}")}),
        ),
    }
}

/// One lane's client: a 2025-11-25 session (opened again only if the server lost it) or
/// stateless requests.
struct Lane {
    base: String,
    token: String,
    protocol: Protocol,
    session: Option<String>,
    http: reqwest::Client,
    next_id: u64,
    /// Sessions the server did not know any more (must stay 0 with shared sessions).
    pub sessions_lost: usize,
}

const SESSION_PROTOCOL: &str = "2025-11-25";
const STATELESS_PROTOCOL: &str = "2026-07-28";

impl Lane {
    fn new(base: &str, token: &str, protocol: Protocol) -> Self {
        Self {
            base: base.to_string(),
            token: token.to_string(),
            protocol,
            session: None,
            // No connection reuse across a replica's death matters: a broken connection is an
            // error the lane retries on a new one.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client"),
            next_id: 1,
            sessions_lost: 0,
        }
    }

    async fn post(
        &self,
        body: &Value,
        method: &str,
        name: Option<&str>,
    ) -> reqwest::Result<reqwest::Response> {
        let revision = match self.protocol {
            Protocol::Session => SESSION_PROTOCOL,
            Protocol::Stateless => STATELESS_PROTOCOL,
        };
        let mut request = self
            .http
            .post(format!("{}/mcp", self.base))
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", revision)
            .timeout(Duration::from_secs(300))
            .json(body);
        if self.protocol == Protocol::Stateless {
            request = request.header("mcp-method", method);
            if let Some(name) = name {
                request = request.header("mcp-name", name);
            }
        }
        if let Some(id) = &self.session {
            request = request.header("mcp-session-id", id);
        }
        request.send().await
    }

    async fn open_session(&mut self) -> Result<(), String> {
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": SESSION_PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "cluster-load", "version": "1"}}});
        self.session = None;
        let r = self
            .post(&body, "initialize", None)
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("initialize: {}", r.status()));
        }
        let id = r
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or("no session id")?
            .to_string();
        let _ = r.text().await;
        self.session = Some(id);
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = self
            .post(&note, "notifications/initialized", None)
            .await
            .map_err(|e| e.to_string())?;
        if r.status().as_u16() != 202 {
            return Err(format!("initialized: {}", r.status()));
        }
        Ok(())
    }

    /// The tools a stateless `tools/list` names (empty when the call fails).
    async fn tool_names(&mut self) -> Vec<String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": STATELESS_PROTOCOL,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "cluster-load", "version": "1"},
        }}});
        let Ok(r) = self.post(&body, "tools/list", None).await else {
            return Vec::new();
        };
        let Ok(text) = r.text().await else {
            return Vec::new();
        };
        parse_answer(&text, 1)
            .ok()
            .and_then(|result| {
                result["tools"].as_array().map(|tools| {
                    tools
                        .iter()
                        .filter_map(|t| t["name"].as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// One tool call, repeated on a new connection while replicas are down (up to a minute).
    async fn call(&mut self, tool: &str, arguments: Value) -> (Result<Value, String>, u32) {
        let mut retries = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.protocol == Protocol::Session
                && self.session.is_none()
                && let Err(e) = self.open_session().await
            {
                if Instant::now() > deadline {
                    return (Err(format!("no session: {e}")), retries);
                }
                retries += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            self.next_id += 1;
            let id = self.next_id;
            let mut params = json!({"name": tool, "arguments": arguments});
            if self.protocol == Protocol::Stateless {
                params["_meta"] = json!({
                    "io.modelcontextprotocol/protocolVersion": STATELESS_PROTOCOL,
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": "cluster-load", "version": "1"},
                });
            }
            let body =
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
            let outcome = match self.post(&body, "tools/call", Some(tool)).await {
                Ok(r) if r.status().as_u16() == 404 && self.session.is_some() => {
                    // The session is gone: with sessions shared through Redis this must not
                    // happen; counted, and a new one opened.
                    self.sessions_lost += 1;
                    self.session = None;
                    Err(format!("session not found: {}", r.status()))
                }
                Ok(r) if r.status().is_server_error() => Err(format!("HTTP {}", r.status())),
                Ok(r) => match r.text().await {
                    Ok(body) => return (parse_answer(&body, id), retries),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            if Instant::now() > deadline {
                return (outcome, retries);
            }
            retries += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The JSON-RPC result with `id` in a JSON body or an event stream.
fn parse_answer(body: &str, id: u64) -> Result<Value, String> {
    let message = serde_json::from_str::<Value>(body).ok().or_else(|| {
        body.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m["id"] == id)
    });
    let Some(message) = message else {
        return Err(format!("no answer: {body}"));
    };
    let result = &message["result"];
    if result.is_null() {
        return Err(format!("error: {}", message["error"]));
    }
    if result["isError"] == true {
        return Err(format!("tool error: {}", result["content"][0]["text"]));
    }
    Ok(result.clone())
}

/// The outcome of a load.
pub struct LoadReport {
    pub outcomes: Vec<Outcome>,
    pub elapsed: Duration,
    pub sessions_lost: usize,
}

impl LoadReport {
    pub fn failures(&self) -> Vec<String> {
        self.outcomes
            .iter()
            .filter_map(|o| {
                o.result
                    .as_ref()
                    .err()
                    .map(|e| format!("{:?}/{:?}: {e}", o.kind, o.protocol))
            })
            .collect()
    }

    /// p50 and p99 latency of the jobs of `kind` (all kinds when None).
    pub fn percentiles(&self, kind: Option<JobKind>) -> (Duration, Duration) {
        let mut l: Vec<Duration> = self
            .outcomes
            .iter()
            .filter(|o| kind.is_none_or(|k| o.kind == k))
            .map(|o| o.latency)
            .collect();
        l.sort();
        if l.is_empty() {
            return (Duration::ZERO, Duration::ZERO);
        }
        let at = |q: f64| l[((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1];
        (at(0.5), at(0.99))
    }

    pub fn count_by_kind(&self) -> BTreeMap<JobKind, usize> {
        let mut m = BTreeMap::new();
        for o in &self.outcomes {
            *m.entry(o.kind).or_insert(0) += 1;
        }
        m
    }
}

/// Runs `plan` through `base` on `lanes` concurrent clients (half 2025-11-25 sessions, half
/// 2026-07-28 stateless); each lane takes the next job when its call is answered. `done`
/// counts the answered jobs as they come (so a test can act in the middle of the load).
pub async fn run_load(
    base: &str,
    token: &str,
    plan: Vec<JobKind>,
    lanes: usize,
    done: Arc<AtomicUsize>,
) -> LoadReport {
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for l in 0..lanes {
        let protocol = if l % 2 == 0 {
            Protocol::Session
        } else {
            Protocol::Stateless
        };
        let mut lane = Lane::new(base, token, protocol);
        let (plan, next, done) = (plan.clone(), next.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(kind) = plan.get(i).copied() else {
                    break;
                };
                let (tool, arguments) = call_for(kind, i);
                let t = Instant::now();
                let (result, retries) = lane.call(tool, arguments).await;
                let job_id = result
                    .as_ref()
                    .ok()
                    .and_then(|r| r["structuredContent"]["job_id"].as_str())
                    .map(str::to_string);
                outcomes.push(Outcome {
                    kind,
                    protocol,
                    job_id,
                    latency: t.elapsed(),
                    retries,
                    result,
                });
                done.fetch_add(1, Ordering::Relaxed);
            }
            (outcomes, lane.sessions_lost)
        }));
    }
    let mut outcomes = Vec::new();
    let mut sessions_lost = 0;
    for t in tasks {
        let (o, lost) = t.await.expect("lane");
        outcomes.extend(o);
        sessions_lost += lost;
    }
    LoadReport {
        outcomes,
        elapsed: started.elapsed(),
        sessions_lost,
    }
}
