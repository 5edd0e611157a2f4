//! Connections to upstream MCP servers: one MCP session per server, opened on first use and
//! opened again after it broke (a stdio child that exited is started again; a remote server that
//! went away is reconnected). Settings can change at run time; a server whose settings changed
//! gets a new connection.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use avb_common::upstream_settings::UpstreamServer;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, Implementation, Tool};
use rmcp::service::{NotificationContext, RunningService, ServiceError};
use rmcp::transport::common::client_side_sse::NeverRetry;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio::sync::{Mutex, Notify};

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
}

/// Sessions with the upstream servers, by server name.
pub struct UpstreamPool {
    connections: Mutex<HashMap<String, Arc<Connection>>>,
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

    /// The open session with `name`, opened now if there is none, it broke, or its settings
    /// changed.
    async fn session(
        &self,
        name: &str,
        settings: &UpstreamServer,
    ) -> Result<Arc<Connection>, UpstreamError> {
        if !settings.enabled {
            return Err(UpstreamError::Disabled {
                server: name.into(),
            });
        }
        let mut connections = self.connections.lock().await;
        if let Some(c) = connections.get(name) {
            if &c.settings == settings && !c.service.is_transport_closed() {
                return Ok(c.clone());
            }
            tracing::info!(
                server = name,
                "upstream session closed or changed; reopening"
            );
            if let Some(old) = connections.remove(name) {
                close(old);
            }
        }
        let service = tokio::time::timeout(CONNECT_TIMEOUT, self.open(name, settings))
            .await
            .map_err(|_| UpstreamError::Unreachable {
                server: name.into(),
                message: format!("no MCP initialize within {} s", CONNECT_TIMEOUT.as_secs()),
            })??;
        let c = Arc::new(Connection {
            settings: settings.clone(),
            service,
        });
        connections.insert(name.to_string(), c.clone());
        Ok(c)
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
        if let Some(command) = &s.command {
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
                .map_err(|e| unreachable(format!("cannot start {command:?}: {e}")))?;
            return client
                .serve(transport)
                .await
                .map_err(|e| unreachable(e.to_string()));
        }
        let url = s.server_url.as_deref().unwrap_or_default();
        // Our own retries decide what happens after a break: the transport must report it, not
        // resume the stream or open a new session behind our back.
        let mut config =
            StreamableHttpClientTransportConfig::with_uri(url).reinit_on_expired_session(false);
        config.retry_config = Arc::new(NeverRetry::default());
        if let Some(auth) = &s.authorization {
            // rmcp adds the scheme itself; other schemes go as they are.
            config = match auth.strip_prefix("Bearer ") {
                Some(token) => config.auth_header(token),
                None => {
                    let value = auth.parse().map_err(|_| {
                        unreachable(format!(
                            "mcp_servers.{name}.authorization is not a valid header value"
                        ))
                    })?;
                    config
                        .custom_headers
                        .insert(http::header::AUTHORIZATION, value);
                    config
                }
            };
        }
        client
            .serve(StreamableHttpClientTransport::from_config(config))
            .await
            .map_err(|e| unreachable(e.to_string()))
    }

    /// The upstream's tools (all of them: filtering is the catalog's job).
    pub async fn list_tools(
        &self,
        name: &str,
        settings: &UpstreamServer,
    ) -> Result<Vec<Tool>, UpstreamError> {
        let c = self.session(name, settings).await?;
        // A health check: a server that cannot list its tools quickly counts as down.
        let timeout = Duration::from_secs(settings.timeout).min(LIST_TIMEOUT);
        match tokio::time::timeout(timeout, c.service.peer().list_all_tools()).await {
            Ok(Ok(tools)) => Ok(tools),
            Ok(Err(e)) => {
                self.drop_session(name).await;
                Err(UpstreamError::Unreachable {
                    server: name.into(),
                    message: format!("tools/list failed: {e}"),
                })
            }
            Err(_) => {
                self.drop_session(name).await;
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
        let c = self.session(name, settings).await?;
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
                self.drop_session(name).await;
                Err(UpstreamError::ConnectionLost {
                    server: name.into(),
                    tool: tool.into(),
                    message: e.to_string(),
                })
            }
            Err(_) => {
                // A session that let a call hang is not trusted with the next one.
                self.drop_session(name).await;
                Err(UpstreamError::Timeout {
                    server: name.into(),
                    tool: tool.into(),
                    secs: settings.timeout,
                })
            }
        }
    }

    /// Forgets `name`'s session (closing it): the next use opens a new one.
    pub async fn drop_session(&self, name: &str) {
        if let Some(c) = self.connections.lock().await.remove(name) {
            close(c);
        }
    }

    /// Closes every session (stdio children are stopped).
    pub async fn close_all(&self) {
        for (_, c) in self.connections.lock().await.drain() {
            close(c);
        }
    }
}

/// Ends a session in the background; a stdio child is killed when its transport drops.
fn close(c: Arc<Connection>) {
    let token = c.service.cancellation_token();
    token.cancel();
}
