//! Upstream MCP servers, aggregated: the hub keeps a session with every configured server
//! (`pool`), checks them on a timer and whenever one says its tools changed, and publishes the
//! catalog of mounted tools (`catalog`) to whoever watches it (the api sends
//! `notifications/tools/list_changed` on every change). A server that cannot be reached is shown
//! as down and its tools are withdrawn until it answers again. `[mcp_servers]` changes in the
//! config file are picked up at the next check, without a restart; a bad change is refused (the
//! running settings stay) and logged with the key it got wrong.

pub mod catalog;
pub mod pool;
pub mod sse_transport;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use avb_config::{UpstreamServer, UpstreamTransport};
use rmcp::model::{CallToolResult, Tool};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use catalog::{Catalog, MountedTool};
pub use pool::{UpstreamError, UpstreamPool};

/// Re-reads `[mcp_servers]` (e.g. from the config file); an error names the bad key.
pub type Reload = Box<dyn Fn() -> Result<BTreeMap<String, UpstreamServer>, String> + Send + Sync>;

/// A server provisioned by `create_mcp_server` that is running: mounted for its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// `srv_…`: its name in the hub (service names repeat across tenants).
    pub id: String,
    pub tenant: String,
    /// The namespace of its tools.
    pub service_name: String,
    /// The first replica's MCP endpoint.
    pub url: String,
}

impl Provisioned {
    fn settings(&self) -> UpstreamServer {
        UpstreamServer {
            server_url: Some(self.url.clone()),
            namespace: Some(self.service_name.clone()),
            description: Some(format!("provisioned server {}", self.service_name)),
            tenants: avb_config::ServedTenants::new([self.tenant.clone()]),
            ..UpstreamServer::default()
        }
    }
}

/// Lists the running provisioned servers of every tenant.
pub type ProvisionedSource = Box<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Vec<Provisioned>, String>> + Send>>
        + Send
        + Sync,
>;

/// One server as `get_server_status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct UpstreamStatus {
    /// The server's name in `[mcp_servers]`, or a provisioned server's service name.
    pub name: String,
    /// `up`, `down` or `disabled`.
    pub status: String,
    pub transport: String,
    /// Sessions it may have open at once (`pool_size`).
    pub pool_size: usize,
    /// Sessions open with it now in this process (they open on first need and under load).
    pub open_sessions: usize,
    /// Tools it offers here (after `allowed_tools`; shadowed ones not counted).
    pub tools: usize,
    /// For a provisioned server: its id (`srv_…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the last check found.
#[derive(Default, PartialEq)]
struct Checked {
    /// Tool lists of the servers that answered.
    listed: BTreeMap<String, Vec<Tool>>,
    /// Why the others did not.
    errors: BTreeMap<String, String>,
}

pub struct UpstreamHub {
    /// Shared by the api's hub and the upstream worker's when both run in one process.
    pub pool: Arc<UpstreamPool>,
    settings: RwLock<BTreeMap<String, UpstreamServer>>,
    provisioned: RwLock<BTreeMap<String, Provisioned>>,
    checked: RwLock<Checked>,
    /// Bumped whenever what any tenant sees may have changed.
    version: watch::Sender<u64>,
    /// True once the first check has finished: before it no upstream tool is mounted.
    checked_once: watch::Sender<bool>,
    is_own_tool: Box<dyn Fn(&str) -> bool + Send + Sync>,
    reload: Option<Reload>,
    provisioned_source: std::sync::OnceLock<ProvisionedSource>,
}

impl UpstreamHub {
    /// `is_own_tool`: names that belong to AgentVoiceBox itself (never shadowed).
    pub fn new(
        settings: BTreeMap<String, UpstreamServer>,
        log_dir: Option<std::path::PathBuf>,
        is_own_tool: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            pool: Arc::new(UpstreamPool::new(log_dir)),
            settings: RwLock::new(settings),
            provisioned: RwLock::default(),
            checked: RwLock::default(),
            version: watch::Sender::new(0),
            checked_once: watch::Sender::new(false),
            is_own_tool: Box::new(is_own_tool),
            reload: None,
            provisioned_source: std::sync::OnceLock::new(),
        }
    }

    /// Settings changes are read with `reload` at every check.
    pub fn with_reload(mut self, reload: Reload) -> Self {
        self.reload = Some(reload);
        self
    }

    /// Uses `pool`'s sessions (another hub's in this process) instead of its own.
    pub fn with_pool(mut self, pool: Arc<UpstreamPool>) -> Self {
        self.pool = pool;
        self
    }

    /// Provisioned servers are looked up with `source` at every check (set once).
    pub fn set_provisioned_source(&self, source: ProvisionedSource) {
        let _ = self.provisioned_source.set(source);
    }

    pub fn has_servers(&self) -> bool {
        !read(&self.settings).is_empty() || self.provisioned_source.get().is_some()
    }

    /// The servers `tenant` sees: the configured ones that serve it, and its own provisioned
    /// ones.
    fn servers_for(&self, tenant: &str) -> BTreeMap<String, UpstreamServer> {
        let mut servers: BTreeMap<String, UpstreamServer> = read(&self.settings)
            .iter()
            .filter(|(_, s)| s.tenants.serves(tenant))
            .map(|(name, s)| (name.clone(), s.clone()))
            .collect();
        for (id, p) in read(&self.provisioned).iter() {
            if p.tenant == tenant {
                servers.insert(id.clone(), p.settings());
            }
        }
        servers
    }

    /// Waits, at most `limit`, for the first check to finish. Before it no upstream tool is
    /// mounted, so a call that arrives just after start (a load balancer sends traffic as soon
    /// as the port accepts) would find an existing tool "not found".
    pub async fn first_check(&self, limit: Duration) {
        if !self.has_servers() {
            return;
        }
        let mut done = self.checked_once.subscribe();
        let _ = tokio::time::timeout(limit, done.wait_for(|d| *d)).await;
    }

    /// Whether the first check has finished (or there is nothing to check).
    pub fn checked_once(&self) -> bool {
        !self.has_servers() || *self.checked_once.borrow()
    }

    /// The tools `tenant` sees mounted.
    pub fn catalog_for(&self, tenant: &str) -> Catalog {
        let servers = self.servers_for(tenant);
        let checked = read(&self.checked);
        catalog::mount(&servers, &checked.listed, &*self.is_own_tool)
    }

    /// Tells every listener that the tool list may have changed, without a check (clients
    /// then list the tools again).
    pub fn announce_tools_changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Changes whenever the mounted tools (of any tenant) may have changed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// The servers `tenant` sees, and how they are.
    pub fn statuses_for(&self, tenant: &str) -> Vec<UpstreamStatus> {
        let servers = self.servers_for(tenant);
        let catalog = catalog::mount(&servers, &read(&self.checked).listed, &*self.is_own_tool);
        let checked = read(&self.checked);
        let provisioned = read(&self.provisioned);
        servers
            .iter()
            .map(|(name, s)| {
                let (status, error) = if !s.enabled {
                    ("disabled", None)
                } else if let Some(e) = checked.errors.get(name) {
                    ("down", Some(e.clone()))
                } else if checked.listed.contains_key(name) {
                    ("up", None)
                } else {
                    ("down", Some("not checked yet".to_string()))
                };
                let transport = match s.transport() {
                    UpstreamTransport::Stdio => "stdio",
                    UpstreamTransport::StreamableHttp => "streamable_http",
                    UpstreamTransport::Sse => "sse",
                };
                let p = provisioned.get(name);
                UpstreamStatus {
                    name: p.map_or(name.clone(), |p| p.service_name.clone()),
                    status: status.into(),
                    transport: transport.into(),
                    pool_size: s.pool_size.max(1),
                    open_sessions: self.pool.open_sessions(name),
                    tools: catalog.count_of(name),
                    server_id: p.map(|p| p.id.clone()),
                    error,
                }
            })
            .collect()
    }

    /// Every configured server's last check: how many tools it lists, or why it is down.
    pub fn checked_servers(&self) -> Vec<(String, Result<usize, String>)> {
        let checked = read(&self.checked);
        read(&self.settings)
            .iter()
            .map(|(name, s)| {
                let outcome = if !s.enabled {
                    Err("disabled".to_string())
                } else if let Some(e) = checked.errors.get(name) {
                    Err(e.clone())
                } else if let Some(tools) = checked.listed.get(name) {
                    Ok(tools.len())
                } else {
                    Err("not checked yet".to_string())
                };
                (name.clone(), outcome)
            })
            .collect()
    }

    /// A configured server's settings.
    pub fn settings_of(&self, server: &str) -> Option<UpstreamServer> {
        read(&self.settings).get(server).cloned().or_else(|| {
            read(&self.provisioned)
                .get(server)
                .map(Provisioned::settings)
        })
    }

    /// A provisioned server's endpoint (calls carry it to workers that never listed it).
    pub fn endpoint_of(&self, server: &str) -> Option<String> {
        read(&self.provisioned).get(server).map(|p| p.url.clone())
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

    async fn refresh_provisioned(&self) {
        let Some(source) = self.provisioned_source.get() else {
            return;
        };
        match source().await {
            Ok(list) => {
                let new: BTreeMap<String, Provisioned> =
                    list.into_iter().map(|p| (p.id.clone(), p)).collect();
                *self.provisioned.write().unwrap_or_else(|e| e.into_inner()) = new;
            }
            // Keep the last known servers: a store hiccup must not unmount them.
            Err(e) => tracing::warn!(error = %e, "cannot list provisioned MCP servers"),
        }
    }

    /// Lists every enabled server's tools, and tells watchers when anything changed.
    pub async fn check_all(&self) {
        self.reload_settings();
        self.refresh_provisioned().await;
        let mut all = read(&self.settings).clone();
        for (id, p) in read(&self.provisioned).iter() {
            all.insert(id.clone(), p.settings());
        }
        let listings =
            futures::future::join_all(all.iter().filter(|(_, s)| s.enabled).map(
                |(name, s)| async move { (name.clone(), self.pool.list_tools(name, s).await) },
            ))
            .await;
        let mut checked = Checked::default();
        for (name, outcome) in listings {
            match outcome {
                Ok(tools) => {
                    checked.listed.insert(name, tools);
                }
                Err(e) => {
                    checked.errors.insert(name, e.to_string());
                }
            }
        }
        // Servers no longer configured (or deleted) lose their sessions.
        let gone: Vec<String> = {
            let old = read(&self.checked);
            old.listed
                .keys()
                .chain(old.errors.keys())
                .filter(|n| !all.contains_key(*n))
                .cloned()
                .collect()
        };
        for name in gone {
            self.pool.drop_session(&name);
        }
        let changed = {
            let mut current = self.checked.write().unwrap_or_else(|e| e.into_inner());
            for (name, e) in &checked.errors {
                if !current.errors.contains_key(name) {
                    tracing::warn!(server = %name, error = %e, "upstream down; its tools are withdrawn");
                }
            }
            for (name, tools) in &checked.listed {
                if !current.listed.contains_key(name) {
                    tracing::info!(server = %name, tools = tools.len(), "upstream up");
                }
            }
            let changed = *current != checked;
            *current = checked;
            changed
        };
        // Settings changes show up here too: a changed server is listed again above.
        if changed {
            self.version.send_modify(|v| *v += 1);
        }
        self.checked_once
            .send_if_modified(|done| !std::mem::replace(done, true));
    }

    /// Checks every `every` and whenever an upstream reports changed tools, until `shutdown`;
    /// then closes every session.
    pub async fn run(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        let mut last_settings = None;
        loop {
            self.check_all().await;
            // A settings change that lists the same tools (a new filter, a new priority) still
            // changes what agents see.
            let now = (
                read(&self.settings).clone(),
                read(&self.provisioned).clone(),
            );
            if last_settings.as_ref().is_some_and(|l| *l != now) {
                self.version.send_modify(|v| *v += 1);
            }
            last_settings = Some(now);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
                () = self.pool.tools_changed.notified() => {}
            }
        }
        self.pool.close_all();
    }

    /// Calls `tool` on `server`. A worker that does not know the server re-reads its settings
    /// once; a provisioned server is reached at `endpoint`.
    pub async fn call(
        &self,
        server: &str,
        tool: &str,
        arguments: Option<serde_json::Map<String, serde_json::Value>>,
        endpoint: Option<&str>,
    ) -> Result<CallToolResult, UpstreamError> {
        let settings = match (self.settings_of(server), endpoint) {
            (Some(s), _) => s,
            (None, Some(url)) => UpstreamServer {
                server_url: Some(url.to_string()),
                ..UpstreamServer::default()
            },
            (None, None) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_server_is_mounted_for_the_tenants_it_serves_only() {
        let server = |tenants: &[&str]| UpstreamServer {
            server_url: Some("http://127.0.0.1:1/mcp".into()),
            tenants: avb_config::ServedTenants::new(tenants.iter().copied()),
            ..UpstreamServer::default()
        };
        let hub = UpstreamHub::new(
            BTreeMap::from([
                ("home".to_string(), server(&["local"])),
                ("shared".to_string(), server(&["local", "acme"])),
                ("public".to_string(), server(&["*"])),
            ]),
            None,
            |_| false,
        );
        let tool = Tool::new("echo", "echoes", Arc::new(serde_json::Map::new()));
        hub.checked
            .write()
            .expect("lock")
            .listed
            .extend(["home", "shared", "public"].map(|s| (s.to_string(), vec![tool.clone()])));
        let names = |tenant: &str| {
            let mut n: Vec<String> = hub
                .catalog_for(tenant)
                .definitions()
                .map(|t| t.name.to_string())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names("local"), ["home_echo", "public_echo", "shared_echo"]);
        assert_eq!(names("acme"), ["public_echo", "shared_echo"]);
        assert_eq!(names("other"), ["public_echo"]);
        assert_eq!(hub.statuses_for("other").len(), 1, "statuses as tools");
    }

    #[test]
    fn a_provisioned_server_is_mounted_for_its_tenant_only() {
        let hub = UpstreamHub::new(BTreeMap::new(), None, |_| false);
        let notes = |tenant: &str, id: &str| Provisioned {
            id: id.into(),
            tenant: tenant.into(),
            service_name: "notes".into(),
            url: format!("http://127.0.0.1:1/{id}"),
        };
        hub.provisioned.write().expect("lock").extend([
            ("srv_a".to_string(), notes("tenant-a", "srv_a")),
            ("srv_b".to_string(), notes("tenant-b", "srv_b")),
        ]);
        let tool = Tool::new("echo", "echoes", Arc::new(serde_json::Map::new()));
        hub.checked.write().expect("lock").listed.extend([
            ("srv_a".to_string(), vec![tool.clone()]),
            ("srv_b".to_string(), vec![tool]),
        ]);
        let a = hub.catalog_for("tenant-a");
        assert_eq!(
            a.get("notes_echo").map(|t| t.server.as_str()),
            Some("srv_a")
        );
        assert_eq!(a.tools.len(), 1, "tenant-b's server is not tenant-a's");
        let b = hub.catalog_for("tenant-b");
        assert_eq!(
            b.get("notes_echo").map(|t| t.server.as_str()),
            Some("srv_b")
        );
        assert!(hub.catalog_for("tenant-c").tools.is_empty());
        let statuses = hub.statuses_for("tenant-a");
        assert_eq!(statuses.len(), 1);
        assert_eq!(statuses[0].server_id.as_deref(), Some("srv_a"));
        assert_eq!(
            hub.endpoint_of("srv_b").as_deref(),
            Some("http://127.0.0.1:1/srv_b")
        );
    }
}
