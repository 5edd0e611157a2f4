//! Connections to upstream MCP servers: up to `pool_size` MCP sessions per server (a call takes
//! the least busy one), each opened on first need and opened again after it broke (a stdio child
//! that exited is started again; a remote server that went away is reconnected). Settings can
//! change at run time; a server whose settings changed gets new sessions.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use avb_config::{UpstreamServer, UpstreamTransport};
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, Implementation, Tool};
use rmcp::service::{NotificationContext, RunningService, ServiceError};
use rmcp::transport::common::client_side_sse::NeverRetry;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio::sync::{Mutex, Notify};

use crate::sse_transport::SseClientTransport;

/// How long opening a session (spawn or connect, then `initialize`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `tools/list` may take before the server counts as down.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream MCP server named {0:?} is configured")]
    UnknownServer(String),
    #[error("upstream {server} is disabled (mcp_servers.{server}.enabled)")]
    Disabled { server: String },
    /// Could not start or reach it, or it did not complete `initialize`.
    #[error("upstream {server} is unreachable: {message}")]
    Unreachable { server: String, message: String },
    /// The connection broke while a request was in flight: it may or may not have run.
    #[error("upstream {server} went away during {tool}: {message}")]
    ConnectionLost {
        server: String,
        tool: String,
        message: String,
    },
    #[error("upstream {server} did not answer {tool} within {secs} s")]
    Timeout {
        server: String,
        tool: String,
        secs: u64,
    },
    /// The upstream answered with a JSON-RPC error (unknown tool, invalid arguments, …).
    #[error("upstream {server} refused {tool}: {message}")]
    Refused {
        server: String,
        tool: String,
        message: String,
    },
}

impl UpstreamError {
    /// Whether trying again could succeed (the upstream's own refusal will not change).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::ConnectionLost { .. } | Self::Timeout { .. }
        )
    }

    /// Whether the call may have reached the upstream (and done its work).
    pub fn may_have_run(&self) -> bool {
        matches!(self, Self::ConnectionLost { .. } | Self::Timeout { .. })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownServer(_) => "UnknownServer",
            Self::Disabled { .. } => "ServerDisabled",
            Self::Unreachable { .. } => "UpstreamUnreachable",
            Self::ConnectionLost { .. } => "UpstreamConnectionLost",
            Self::Timeout { .. } => "UpstreamTimeout",
            Self::Refused { .. } => "UpstreamRefused",
        }
    }
}

/// Our side of an upstream session: tells the hub when the upstream's tools changed.
#[derive(Clone)]
struct UpstreamClient {
    tools_changed: Arc<Notify>,
}

impl ClientHandler for UpstreamClient {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            Default::default(),
            Implementation::new("AgentVoiceBox-aggregator", env!("CARGO_PKG_VERSION")),
        )
    }
}

struct Connection {
    service: RunningService<RoleClient, UpstreamClient>,
}

/// One place in a server's pool: its session, if open, and the calls on it.
#[derive(Default)]
struct Slot {
    connection: StdMutex<Option<Arc<Connection>>>,
    /// Calls on this slot, counted from the moment one picks it (before the session is open), so
    /// concurrent calls spread over the slots instead of queuing behind one that is opening.
    in_flight: AtomicUsize,
    /// Held while this slot's session is being opened (never during a call), so one caller
    /// opens it and the others on this slot wait for that; other slots and servers do not.
    opening: Mutex<()>,
    /// Set when the server's settings changed or it was dropped: a session that an opener
    /// finishes on a retired slot serves that call only.
    retired: AtomicBool,
}

impl Slot {
    fn open_connection(&self) -> Option<Arc<Connection>> {
        let connection = lock(&self.connection);
        connection
            .as_ref()
            .filter(|c| !c.service.is_transport_closed())
            .cloned()
    }

    /// Closes the session (if any) and keeps it from being used again.
    fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        if let Some(c) = lock(&self.connection).take() {
            close(&c);
        }
    }
}

/// A server's sessions, for the settings they were opened with.
struct ServerSlots {
    settings: UpstreamServer,
    slots: Vec<Arc<Slot>>,
}

impl ServerSlots {
    /// Closes all of the server's sessions and keeps its slots from being used again.
    fn retire(&self) {
        self.slots.iter().for_each(|s| s.retire());
    }
}

/// A call's claim on a slot, counted in its `in_flight` until dropped.
struct Claim {
    index: usize,
    slot: Arc<Slot>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.slot.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A call's hold on an open session.
struct InFlight {
    claim: Claim,
    connection: Arc<Connection>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.claim.slot.retired.load(Ordering::Relaxed) {
            close(&self.connection);
        }
    }
}

/// The pool's maps are only held for a few instructions, never across an await.
fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sessions with the upstream servers: `pool_size` of them per server.
pub struct UpstreamPool {
    servers: StdMutex<HashMap<String, ServerSlots>>,
    /// Where stdio children's stderr goes (`<dir>/<server>.log`); none: discarded.
    log_dir: Option<PathBuf>,
    /// Notified when any upstream says its tools changed.
    pub tools_changed: Arc<Notify>,
}

impl UpstreamPool {
    pub fn new(log_dir: Option<PathBuf>) -> Self {
        Self {
            servers: StdMutex::default(),
            log_dir,
            tools_changed: Arc::default(),
        }
    }

    /// Picks slot `slot` of `name` (`None`: the least busy one) and counts the call on it. A
    /// server whose settings changed gets new slots (its sessions are closed).
    fn claim(&self, name: &str, settings: &UpstreamServer, slot: Option<usize>) -> Claim {
        let mut servers = lock(&self.servers);
        let current = servers
            .get(name)
            .is_some_and(|s| s.settings.same_connection(settings));
        if !current {
            if let Some(old) = servers.remove(name) {
                tracing::info!(
                    server = name,
                    "upstream settings changed; reopening its sessions"
                );
                old.retire();
            }
            let slots = (0..settings.pool_size.max(1))
                .map(|_| Arc::default())
                .collect();
            servers.insert(
                name.to_string(),
                ServerSlots {
                    settings: settings.clone(),
                    slots,
                },
            );
        }
        let slots = &servers[name].slots;
        // Ties go to the lowest slot: sessions beyond the first open only under load.
        let index = slot
            .unwrap_or_else(|| {
                (0..slots.len())
                    .min_by_key(|&i| slots[i].in_flight.load(Ordering::Relaxed))
                    .unwrap_or(0)
            })
            .min(slots.len() - 1);
        let slot = slots[index].clone();
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        Claim { index, slot }
    }

    /// A session on slot `slot` of `name` (`None`: the least busy one), opened now if it is not
    /// open or it broke. Opening holds only that slot: calls to other slots and servers go on.
    async fn session(
        &self,
        name: &str,
        settings: &UpstreamServer,
        slot: Option<usize>,
    ) -> Result<InFlight, UpstreamError> {
        if !settings.enabled {
            return Err(UpstreamError::Disabled {
                server: name.into(),
            });
        }
        loop {
            let claim = self.claim(name, settings, slot);
            if let Some(connection) = claim.slot.open_connection() {
                return Ok(InFlight { claim, connection });
            }
            let cell = claim.slot.clone();
            // A failed open is not remembered: the next caller waiting here tries again (each
            // attempt bounded by CONNECT_TIMEOUT), as a retried call would.
            let _opening = cell.opening.lock().await;
            if cell.retired.load(Ordering::Relaxed) {
                // The server's settings changed while we waited: take a slot of its new pool.
                continue;
            }
            // Another call on this slot may have opened it while we waited.
            if let Some(connection) = cell.open_connection() {
                return Ok(InFlight { claim, connection });
            }
            if let Some(old) = lock(&cell.connection).take() {
                tracing::info!(
                    server = name,
                    slot = claim.index,
                    "upstream session closed; reopening"
                );
                close(&old);
            }
            let service = tokio::time::timeout(CONNECT_TIMEOUT, self.open(name, settings))
                .await
                .map_err(|_| UpstreamError::Unreachable {
                    server: name.into(),
                    message: format!("no MCP initialize within {} s", CONNECT_TIMEOUT.as_secs()),
                })??;
            let connection = Arc::new(Connection { service });
            // Retired meanwhile: this call keeps the session to itself, closed when it ends.
            if !cell.retired.load(Ordering::Relaxed) {
                *lock(&cell.connection) = Some(connection.clone());
            }
            return Ok(InFlight { claim, connection });
        }
    }

    async fn open(
        &self,
        name: &str,
        s: &UpstreamServer,
    ) -> Result<RunningService<RoleClient, UpstreamClient>, UpstreamError> {
        let unreachable = |message: String| UpstreamError::Unreachable {
            server: name.into(),
            message,
        };
        let client = UpstreamClient {
            tools_changed: self.tools_changed.clone(),
        };
        let url = s.server_url.as_deref().unwrap_or_default();
        let authorization = match &s.authorization {
            Some(auth) => Some(auth.expose().parse::<http::HeaderValue>().map_err(|_| {
                unreachable(format!(
                    "mcp_servers.{name}.authorization is not a valid header value"
                ))
            })?),
            None => None,
        };
        match s.transport() {
            UpstreamTransport::Stdio => {
                let transport = self.spawn(name, s)?;
                client
                    .serve(transport)
                    .await
                    .map_err(|e| unreachable(e.to_string()))
            }
            UpstreamTransport::Sse => {
                let transport = SseClientTransport::connect(url, authorization)
                    .await
                    .map_err(|e| unreachable(avb_tls::with_causes(&e)))?;
                client
                    .serve(transport)
                    .await
                    .map_err(|e| unreachable(e.to_string()))
            }
            UpstreamTransport::StreamableHttp => {
                // Our own retries decide what happens after a break: the transport must report
                // it, not resume the stream or open a new session behind our back.
                let mut config = StreamableHttpClientTransportConfig::with_uri(url)
                    .reinit_on_expired_session(false);
                config.retry_config = Arc::new(NeverRetry::default());
                // rmcp adds the Bearer scheme itself; other schemes go as they are.
                match s
                    .authorization
                    .as_ref()
                    .map(|a| a.expose().as_str())
                    .map(|a| (a.strip_prefix("Bearer "), a))
                {
                    Some((Some(token), _)) => config = config.auth_header(token),
                    Some((None, _)) => {
                        if let Some(value) = authorization {
                            config
                                .custom_headers
                                .insert(http::header::AUTHORIZATION, value);
                        }
                    }
                    None => {}
                }
                // https with the process's trust store (platform roots + AVB_CA_FILE).
                let http = avb_tls::client_builder()
                    .build()
                    .map_err(|e| unreachable(e.to_string()))?;
                let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
                match client.serve(transport).await {
                    Ok(running) => Ok(running),
                    // rmcp's error says only that the request failed: ask the connection itself
                    // why (refused, unknown certificate issuer, wrong name, …).
                    Err(e) => Err(unreachable(match http.get(url).send().await {
                        Err(probe) => {
                            format!("cannot connect to {url}: {}", avb_tls::with_causes(&probe))
                        }
                        Ok(_) => avb_tls::with_causes(&e),
                    })),
                }
            }
        }
    }

    /// Starts a stdio server's program (its stderr goes to `<log_dir>/<name>.log`).
    fn spawn(&self, name: &str, s: &UpstreamServer) -> Result<TokioChildProcess, UpstreamError> {
        let command = s.command.as_deref().unwrap_or_default();
        // A cleared environment: the upstream gets what it needs to run (PATH, HOME, the
        // locale) and its configured `env`, never our secrets (database URL, tokens, keys),
        // which any tenant could otherwise read through the upstream's tools.
        let inherited = INHERITED_ENV
            .iter()
            .filter_map(|k| std::env::var_os(k).map(|v| (*k, v)));
        let cmd = tokio::process::Command::new(command).configure(|c| {
            c.env_clear()
                .envs(inherited)
                .args(&s.args)
                .envs(s.env.iter().map(|(k, v)| (k, v.expose())))
                .kill_on_drop(true);
        });
        let stderr = match &self.log_dir {
            Some(dir) => std::fs::create_dir_all(dir)
                .and_then(|()| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join(format!("{name}.log")))
                })
                .map(std::process::Stdio::from)
                .unwrap_or_else(|_| std::process::Stdio::null()),
            None => std::process::Stdio::null(),
        };
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(stderr)
            .spawn()
            .map_err(|e| UpstreamError::Unreachable {
                server: name.into(),
                message: format!("cannot start {command:?}: {e}"),
            })?;
        Ok(transport)
    }

    /// The upstream's tools (all of them: filtering is the catalog's job).
    pub async fn list_tools(
        &self,
        name: &str,
        settings: &UpstreamServer,
    ) -> Result<Vec<Tool>, UpstreamError> {
        let held = self.session(name, settings, Some(0)).await?;
        let c = &held.connection;
        // A health check: a server that cannot list its tools quickly counts as down.
        let timeout = Duration::from_secs(settings.timeout).min(LIST_TIMEOUT);
        match tokio::time::timeout(timeout, c.service.peer().list_all_tools()).await {
            Ok(Ok(tools)) => Ok(tools),
            Ok(Err(e)) => {
                self.drop_slot(&held);
                Err(UpstreamError::Unreachable {
                    server: name.into(),
                    message: format!("tools/list failed: {e}"),
                })
            }
            Err(_) => {
                self.drop_slot(&held);
                Err(UpstreamError::Unreachable {
                    server: name.into(),
                    message: format!("tools/list took over {} s", timeout.as_secs()),
                })
            }
        }
    }

    /// Calls `tool` (the upstream's own name) and returns its result as the upstream sent it.
    pub async fn call_tool(
        &self,
        name: &str,
        settings: &UpstreamServer,
        tool: &str,
        arguments: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<CallToolResult, UpstreamError> {
        let held = self.session(name, settings, None).await?;
        let c = &held.connection;
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = arguments;
        let timeout = Duration::from_secs(settings.timeout);
        let outcome = tokio::time::timeout(timeout, c.service.peer().call_tool(params)).await;
        match outcome {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(ServiceError::McpError(e))) => Err(UpstreamError::Refused {
                server: name.into(),
                tool: tool.into(),
                message: e.message.to_string(),
            }),
            Ok(Err(e)) => {
                self.drop_slot(&held);
                Err(UpstreamError::ConnectionLost {
                    server: name.into(),
                    tool: tool.into(),
                    message: e.to_string(),
                })
            }
            Err(_) => {
                // A session that let a call hang is not trusted with the next one.
                self.drop_slot(&held);
                Err(UpstreamError::Timeout {
                    server: name.into(),
                    tool: tool.into(),
                    secs: settings.timeout,
                })
            }
        }
    }

    /// Forgets the session `held` is on, if it is still its slot's: the next use opens a new one.
    fn drop_slot(&self, held: &InFlight) {
        let mut connection = lock(&held.claim.slot.connection);
        if connection
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &held.connection))
        {
            close(&held.connection);
            *connection = None;
        }
    }

    /// Forgets all of `name`'s sessions (closing them): the next use opens new ones.
    pub fn drop_session(&self, name: &str) {
        if let Some(server) = lock(&self.servers).remove(name) {
            server.retire();
        }
    }

    /// Sessions open with `name` now.
    pub fn open_sessions(&self, name: &str) -> usize {
        lock(&self.servers).get(name).map_or(0, |server| {
            let open = server
                .slots
                .iter()
                .filter(|s| s.open_connection().is_some());
            open.count()
        })
    }

    /// Closes every session (stdio children are stopped).
    pub fn close_all(&self) {
        for (_, server) in lock(&self.servers).drain() {
            server.retire();
        }
    }
}

/// Ends a session in the background; a stdio child is killed when its transport drops.
fn close(c: &Connection) {
    c.service.cancellation_token().cancel();
}

/// What a stdio upstream inherits from our environment; everything else it gets from its
/// `env` setting.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];
