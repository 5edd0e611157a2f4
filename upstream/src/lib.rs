//! Upstream MCP servers, aggregated: the hub keeps a session with every configured server
//! (`pool`), checks them on a timer and whenever one says its tools changed, and publishes the
//! catalog of mounted tools (`catalog`) to whoever watches it (the api sends
//! `notifications/tools/list_changed` on every change). A server that cannot be reached is shown
//! as down and its tools are withdrawn until it answers again. `[mcp_servers]` changes in the
//! config file are picked up at the next check, without a restart; a bad change is refused (the
//! running settings stay) and logged with the key it got wrong.

pub mod catalog;
pub mod pool;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use avb_common::upstream_settings::UpstreamServer;
use rmcp::model::{CallToolResult, Tool};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use catalog::{Catalog, MountedTool};
pub use pool::{UpstreamError, UpstreamPool};

/// Re-reads `[mcp_servers]` (e.g. from the config file); an error names the bad key.
pub type Reload = Box<dyn Fn() -> Result<BTreeMap<String, UpstreamServer>, String> + Send + Sync>;

/// One server as `get_server_status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct UpstreamStatus {
    pub name: String,
    /// `up`, `down` or `disabled`.
    pub status: String,
    pub transport: String,
    /// Tools mounted from it now.
    pub tools: usize,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct UpstreamHub {
    pub pool: UpstreamPool,
    settings: RwLock<BTreeMap<String, UpstreamServer>>,
    statuses: RwLock<BTreeMap<String, UpstreamStatus>>,
    catalog: watch::Sender<Arc<Catalog>>,
    is_own_tool: Box<dyn Fn(&str) -> bool + Send + Sync>,
    reload: Option<Reload>,
}

impl UpstreamHub {
    /// `is_own_tool`: names that belong to AgentVoiceBox itself (never shadowed).
    pub fn new(
        settings: BTreeMap<String, UpstreamServer>,
        log_dir: Option<std::path::PathBuf>,
        is_own_tool: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            pool: UpstreamPool::new(log_dir),
            settings: RwLock::new(settings),
            statuses: RwLock::default(),
            catalog: watch::Sender::new(Arc::default()),
            is_own_tool: Box::new(is_own_tool),
            reload: None,
        }
    }

    /// Settings changes are read with `reload` at every check.
    pub fn with_reload(mut self, reload: Reload) -> Self {
        self.reload = Some(reload);
        self
    }

    pub fn has_servers(&self) -> bool {
        !read(&self.settings).is_empty()
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.borrow().clone()
    }

    /// Changes whenever the set of mounted tools (or a definition) changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Catalog>> {
        self.catalog.subscribe()
    }

    pub fn statuses(&self) -> Vec<UpstreamStatus> {
        read(&self.statuses).values().cloned().collect()
    }

    pub fn settings_of(&self, server: &str) -> Option<UpstreamServer> {
        read(&self.settings).get(server).cloned()
    }

    /// Applies changed settings from `reload`, if any; a bad change keeps the old settings.
    fn reload_settings(&self) {
        let Some(reload) = &self.reload else { return };
        match reload() {
            Ok(new) => {
                let mut current = self.settings.write().unwrap_or_else(|e| e.into_inner());
                if *current != new {
                    tracing::info!(servers = ?new.keys().collect::<Vec<_>>(), "mcp_servers changed; applying");
                    *current = new;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "mcp_servers change refused; keeping the running settings")
            }
        }
    }

    /// Lists every enabled server's tools, updates statuses and, when it changed, the catalog.
    pub async fn check_all(&self) {
        self.reload_settings();
        let settings = read(&self.settings).clone();
        let listings =
            futures::future::join_all(settings.iter().filter(|(_, s)| s.enabled).map(
                |(name, s)| async move { (name.clone(), self.pool.list_tools(name, s).await) },
            ))
            .await;
        let mut listed: BTreeMap<String, Vec<Tool>> = BTreeMap::new();
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        for (name, outcome) in listings {
            match outcome {
                Ok(tools) => {
                    listed.insert(name, tools);
                }
                Err(e) => {
                    errors.insert(name, e.to_string());
                }
            }
        }
        // Servers no longer configured lose their sessions (a stdio child is stopped).
        let gone: Vec<String> = read(&self.statuses)
            .keys()
            .filter(|n| !settings.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            self.pool.drop_session(&name).await;
        }
        let catalog = catalog::mount(&settings, &listed, &*self.is_own_tool);
        let statuses = settings
            .iter()
            .map(|(name, s)| {
                let (status, error) = if !s.enabled {
                    ("disabled", None)
                } else if let Some(e) = errors.get(name) {
                    ("down", Some(e.clone()))
                } else {
                    ("up", None)
                };
                let transport = match s.transport() {
                    avb_common::upstream_settings::UpstreamTransport::Stdio => "stdio",
                    avb_common::upstream_settings::UpstreamTransport::StreamableHttp => {
                        "streamable_http"
                    }
                };
                let st = UpstreamStatus {
                    name: name.clone(),
                    status: status.into(),
                    transport: transport.into(),
                    tools: catalog.count_of(name),
                    error,
                };
                (name.clone(), st)
            })
            .collect::<BTreeMap<_, _>>();
        {
            let mut current = self.statuses.write().unwrap_or_else(|e| e.into_inner());
            for (name, st) in &statuses {
                if current.get(name).map(|c| &c.status) != Some(&st.status) {
                    match &st.error {
                        Some(e) => {
                            tracing::warn!(server = %name, error = %e, "upstream down; its tools are withdrawn")
                        }
                        None => {
                            tracing::info!(server = %name, status = %st.status, tools = st.tools, "upstream")
                        }
                    }
                }
            }
            *current = statuses;
        }
        self.catalog.send_if_modified(|current| {
            if **current == catalog {
                return false;
            }
            *current = Arc::new(catalog);
            true
        });
    }

    /// Checks every `every` and whenever an upstream reports changed tools, until `shutdown`;
    /// then closes every session.
    pub async fn run(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        loop {
            self.check_all().await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
                () = self.pool.tools_changed.notified() => {}
            }
        }
        self.pool.close_all().await;
    }

    /// Calls `tool` on `server` (reloading the settings once if the server is not known yet).
    pub async fn call(
        &self,
        server: &str,
        tool: &str,
        arguments: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<CallToolResult, UpstreamError> {
        let settings = match self.settings_of(server) {
            Some(s) => s,
            None => {
                self.reload_settings();
                self.settings_of(server)
                    .ok_or_else(|| UpstreamError::UnknownServer(server.into()))?
            }
        };
        self.pool
            .call_tool(server, &settings, tool, arguments)
            .await
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}
