//! Connections to upstream MCP servers: up to `pool_size` MCP sessions per server (a call takes
//! the least busy one), each opened on first need and opened again after it broke (a stdio child
//! that exited is started again; a remote server that went away is reconnected). Settings can
//! change at run time; a server whose settings changed gets new sessions.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use avb_common::upstream_settings::{UpstreamServer, UpstreamTransport};
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
    settings: UpstreamServer,
    service: RunningService<RoleClient, UpstreamClient>,
    /// Calls in flight on this session: a new call goes to the least busy session.
    in_flight: AtomicUsize,
}

impl Connection {
    fn usable(&self, settings: &UpstreamServer) -> bool {
        self.settings.same_connection(settings) && !self.service.is_transport_closed()
    }
}

/// A call's hold on a session (counted in its `in_flight` until dropped).
struct InFlight {
    slot: usize,
    connection: Arc<Connection>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.connection.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sessions with the upstream servers: `pool_size` of them per server, by (name, slot).
pub struct UpstreamPool {
    connections: Mutex<HashMap<(String, usize), Arc<Connection>>>,
    /// Where stdio children's stderr goes (`<dir>/<server>.log`); none: discarded.
    log_dir: Option<PathBuf>,
    /// Notified when any upstream says its tools changed.
    pub tools_changed: Arc<Notify>,
}

impl UpstreamPool {
    pub fn new(log_dir: Option<PathBuf>) -> Self {
        Self {
            connections: Mutex::default(),
            log_dir,
            tools_changed: Arc::default(),
        }
    }

    /// Session `slot` of `name` (`None`: the least busy one), opened now if it is not open, it
    /// broke, or the server's settings changed (then all its sessions are closed).
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
        let mut connections = self.connections.lock().await;
        let changed = connections
            .iter()
            .any(|((n, _), c)| n == name && !c.settings.same_connection(settings));
        if changed {
            tracing::info!(
                server = name,
                "upstream settings changed; reopening its sessions"
            );
            close_all_of(&mut connections, name);
        }
        let usable = |slot: usize| {
            connections
                .get(&(name.to_string(), slot))
                .filter(|c| c.usable(settings))
        };
        // Ties go to the lowest slot: sessions beyond the first open only under load.
        let slot = slot.unwrap_or_else(|| {
            (0..settings.pool_size.max(1))
                .min_by_key(|&s| usable(s).map_or(0, |c| c.in_flight.load(Ordering::Relaxed)))
                .unwrap_or(0)
        });
        let connection = match usable(slot) {
            Some(c) => c.clone(),
            None => {
                if let Some(old) = connections.remove(&(name.to_string(), slot)) {
                    tracing::info!(server = name, slot, "upstream session closed; reopening");
                    close(&old);
                }
                let service = tokio::time::timeout(CONNECT_TIMEOUT, self.open(name, settings))
                    .await
                    .map_err(|_| UpstreamError::Unreachable {
                        server: name.into(),
                        message: format!(
                            "no MCP initialize within {} s",
                            CONNECT_TIMEOUT.as_secs()
                        ),
                    })??;
                let c = Arc::new(Connection {
                    settings: settings.clone(),
                    service,
                    in_flight: AtomicUsize::new(0),
                });
                connections.insert((name.to_string(), slot), c.clone());
                c
            }
        };
        connection.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(InFlight { slot, connection })
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
            Some(auth) => Some(auth.parse::<http::HeaderValue>().map_err(|_| {
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
                    .map_err(|e| unreachable(e.to_string()))?;
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
                    .as_deref()
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
                client
                    .serve(StreamableHttpClientTransport::from_config(config))
                    .await
                    .map_err(|e| unreachable(e.to_string()))
            }
        }
    }

    /// Starts a stdio server's program (its stderr goes to `<log_dir>/<name>.log`).
    fn spawn(&self, name: &str, s: &UpstreamServer) -> Result<TokioChildProcess, UpstreamError> {
        let command = s.command.as_deref().unwrap_or_default();
        let cmd = tokio::process::Command::new(command).configure(|c| {
            c.args(&s.args).envs(&s.env).kill_on_drop(true);
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
                self.drop_slot(name, &held).await;
                Err(UpstreamError::Unreachable {
                    server: name.into(),
                    message: format!("tools/list failed: {e}"),
                })
            }
            Err(_) => {
                self.drop_slot(name, &held).await;
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
                self.drop_slot(name, &held).await;
                Err(UpstreamError::ConnectionLost {
                    server: name.into(),
                    tool: tool.into(),
                    message: e.to_string(),
                })
            }
            Err(_) => {
                // A session that let a call hang is not trusted with the next one.
                self.drop_slot(name, &held).await;
                Err(UpstreamError::Timeout {
                    server: name.into(),
                    tool: tool.into(),
                    secs: settings.timeout,
                })
            }
        }
    }

    /// Forgets the session `held` is on, if it is still that slot's: the next use opens a new one.
    async fn drop_slot(&self, name: &str, held: &InFlight) {
        let mut connections = self.connections.lock().await;
        let key = (name.to_string(), held.slot);
        if connections
            .get(&key)
            .is_some_and(|c| Arc::ptr_eq(c, &held.connection))
            && let Some(c) = connections.remove(&key)
        {
            close(&c);
        }
    }

    /// Forgets all of `name`'s sessions (closing them): the next use opens new ones.
    pub async fn drop_session(&self, name: &str) {
        close_all_of(&mut *self.connections.lock().await, name);
    }

    /// Sessions open with `name` now.
    pub async fn open_sessions(&self, name: &str) -> usize {
        self.connections
            .lock()
            .await
            .iter()
            .filter(|((n, _), c)| n == name && !c.service.is_transport_closed())
            .count()
    }

    /// Closes every session (stdio children are stopped).
    pub async fn close_all(&self) {
        for (_, c) in self.connections.lock().await.drain() {
            close(&c);
        }
    }
}

/// Closes and forgets every session with `name`.
fn close_all_of(connections: &mut HashMap<(String, usize), Arc<Connection>>, name: &str) {
    connections.retain(|(n, _), c| {
        let keep = n != name;
        if !keep {
            close(c);
        }
        keep
    });
}

/// Ends a session in the background; a stdio child is killed when its transport drops.
fn close(c: &Connection) {
    c.service.cancellation_token().cancel();
}
