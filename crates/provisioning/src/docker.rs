//! `DockerBackend`: the Docker Engine API (Docker, or Podman's compatible socket) through bollard.
//!
//! Every replica is a container named `avb-<server_id>-<replica>` with the `avb.*` labels, its
//! port published on loopback at a port the engine picks, the template's limits, and `init`
//! (tini as PID 1: SIGTERM stops it at once instead of after the 10 s kill timeout).
//! The client connects lazily and reconnects after a transport failure, so the backend survives
//! the engine going away and coming back.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::{API_DEFAULT_VERSION, Docker};
use futures::TryStreamExt;

use crate::backend::{ContainerBackend, sort_replicas};
use crate::error::ProvisionError;
use crate::spec::{
    LABEL_INSTANCE, LABEL_MANAGED, LABEL_REPLICA, LABEL_SERVER_ID, LABEL_SPEC_HASH, LABEL_TEMPLATE,
    LABEL_TENANT, ListFilter, ManagedReplica, PORT_ENV, ReplicaHandle, ReplicaState, ServerSpec,
    replica_name, replica_url,
};

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerEndpoint {
    /// A unix socket (Docker: `/var/run/docker.sock`; Podman:
    /// `$XDG_RUNTIME_DIR/podman/podman.sock`).
    Unix(PathBuf),
    /// Plain TCP (`tcp://host:port`), no TLS.
    Tcp(String),
}

impl DockerEndpoint {
    pub const DEFAULT_SOCKET: &'static str = "/var/run/docker.sock";

    /// `unix:///path`, `/path`, `tcp://host:port` or `http://host:port`.
    pub fn parse(s: &str) -> Result<Self, ProvisionError> {
        if let Some(path) = s.strip_prefix("unix://") {
            Ok(DockerEndpoint::Unix(PathBuf::from(path)))
        } else if s.starts_with('/') {
            Ok(DockerEndpoint::Unix(PathBuf::from(s)))
        } else if s.starts_with("tcp://") || s.starts_with("http://") {
            Ok(DockerEndpoint::Tcp(s.to_string()))
        } else {
            Err(ProvisionError::Invalid(format!(
                "container engine endpoint {s:?}: expected unix:///path or tcp://host:port"
            )))
        }
    }

    /// `DOCKER_HOST`, else the default socket.
    pub fn from_env() -> Result<Self, ProvisionError> {
        match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => Self::parse(&host),
            _ => Ok(DockerEndpoint::Unix(PathBuf::from(Self::DEFAULT_SOCKET))),
        }
    }
}

impl fmt::Display for DockerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerEndpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            DockerEndpoint::Tcp(addr) => f.write_str(addr),
        }
    }
}

pub struct DockerBackend {
    endpoint: DockerEndpoint,
    endpoint_text: String,
    publish_ip: String,
    timeout_secs: u64,
    /// The negotiated client; dropped after a transport error (reconnect on the next call).
    client: Mutex<Option<Docker>>,
    /// `avb.instance` of the replicas this backend creates and the only ones it sees.
    instance: Option<String>,
}

/// What to do with a container that already holds a replica's name.
enum Existing {
    Reuse,
    Replace,
    Conflict(String),
}

impl DockerBackend {
    pub fn new(endpoint: DockerEndpoint) -> Self {
        Self {
            endpoint_text: endpoint.to_string(),
            endpoint,
            publish_ip: "127.0.0.1".to_string(),
            timeout_secs: 60,
            client: Mutex::new(None),
            instance: None,
        }
    }

    /// Labels what it creates `avb.instance=<instance>` and sees only replicas so labelled.
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// `DOCKER_HOST`, else `/var/run/docker.sock`.
    pub fn from_env() -> Result<Self, ProvisionError> {
        Ok(Self::new(DockerEndpoint::from_env()?))
    }

    /// The host address ports are published on and replicas are reached at (default
    /// `127.0.0.1`: this host only).
    pub fn with_publish_ip(mut self, ip: impl Into<String>) -> Self {
        self.publish_ip = ip.into();
        self
    }

    /// The network replicas join: the installation's own bridge (`avb-<instance>`, or
    /// `avb-servers`), so tenants' servers share no network with other containers of the host.
    pub fn network_name(&self) -> String {
        format!("avb-{}", self.instance.as_deref().unwrap_or("servers"))
    }

    /// Creates the installation's network unless it exists (409 from a concurrent create is
    /// success too).
    async fn ensure_network(&self, docker: &Docker) -> Result<String, ProvisionError> {
        let name = self.network_name();
        match docker.inspect_network(&name, None).await {
            Ok(_) => return Ok(name),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(self.error("inspect network", &name, e)),
        }
        let request = bollard::models::NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([(
                LABEL_MANAGED.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        };
        match docker.create_network(request).await {
            Ok(_)
            | Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(name),
            Err(e) => Err(self.error("create network", &name, e)),
        }
    }

    /// Per-request timeout in seconds (default 60).
    pub fn with_timeout_secs(mut self, secs: u64) -> Self {
        self.timeout_secs = secs;
        self
    }

    pub fn endpoint(&self) -> &DockerEndpoint {
        &self.endpoint
    }

    /// A connected client with the API version negotiated (connects on first use and after a
    /// transport failure).
    pub async fn client(&self) -> Result<Docker, ProvisionError> {
        if let Some(docker) = self.cached() {
            return Ok(docker);
        }
        let connected = match &self.endpoint {
            DockerEndpoint::Unix(path) => Docker::connect_with_unix(
                &path.to_string_lossy(),
                self.timeout_secs,
                API_DEFAULT_VERSION,
            ),
            DockerEndpoint::Tcp(addr) => {
                Docker::connect_with_http(addr, self.timeout_secs, API_DEFAULT_VERSION)
            }
        };
        let docker = connected
            .map_err(|e| self.error("connect", "engine", e))?
            .negotiate_version()
            .await
            .map_err(|e| self.error("negotiate API version", "engine", e))?;
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(docker.clone());
        Ok(docker)
    }

    fn cached(&self) -> Option<Docker> {
        self.client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Maps a bollard error: an engine answer keeps its status; anything else means the engine
    /// is not reachable (and the client is dropped so the next call reconnects).
    pub(crate) fn error(&self, op: &'static str, target: &str, e: BollardError) -> ProvisionError {
        match e {
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => ProvisionError::Engine {
                op,
                target: target.to_string(),
                status: status_code,
                message,
            },
            other => {
                *self.client.lock().unwrap_or_else(|p| p.into_inner()) = None;
                ProvisionError::EngineUnavailable {
                    endpoint: self.endpoint_text.clone(),
                    op,
                    message: other.to_string(),
                }
            }
        }
    }

    fn create_body(&self, spec: &ServerSpec, replica: u32, network: &str) -> ContainerCreateBody {
        let t = &spec.template;
        let port_key = format!("{}/tcp", t.container_port);
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("{PORT_ENV}={}", t.container_port));
        let bindings = HashMap::from([(
            port_key.clone(),
            Some(vec![PortBinding {
                host_ip: Some(self.publish_ip.clone()),
                host_port: Some(String::new()),
            }]),
        )]);
        ContainerCreateBody {
            image: Some(t.image.clone()),
            entrypoint: (!t.command.is_empty()).then(|| spec.command_for_port(t.container_port)),
            cmd: (!t.args.is_empty()).then(|| spec.args_for_port(t.container_port)),
            env: Some(env),
            exposed_ports: Some(vec![port_key]),
            labels: Some(
                spec.labels(replica)
                    .into_iter()
                    .chain(
                        self.instance
                            .clone()
                            .map(|i| (LABEL_INSTANCE.to_string(), i)),
                    )
                    .collect(),
            ),
            host_config: Some(HostConfig {
                port_bindings: Some(bindings),
                memory: t
                    .memory_mb
                    .map(|mb| i64::try_from(mb.saturating_mul(1 << 20)).unwrap_or(i64::MAX)),
                nano_cpus: t.cpus.map(|c| (c * 1e9).round() as i64),
                pids_limit: t.pids,
                init: Some(true),
                network_mode: Some(network.to_string()),
                // A tenant's server runs with no privileges it was not given: no capabilities
                // but those its template names, no privilege gain through setuid, and a
                // read-only root unless the template says otherwise.
                cap_drop: Some(vec!["ALL".to_string()]),
                cap_add: (!t.cap_add.is_empty()).then(|| t.cap_add.clone()),
                security_opt: Some(vec!["no-new-privileges:true".to_string()]),
                readonly_rootfs: Some(!t.writable_root),
                tmpfs: (!t.writable_root).then(|| {
                    HashMap::from([("/tmp".to_string(), "rw,noexec,nosuid,size=64m".to_string())])
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn judge(existing: &ContainerInspectResponse, spec: &ServerSpec, replica: u32) -> Existing {
        let empty = HashMap::new();
        let labels = existing
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .unwrap_or(&empty);
        let label = |k: &str| labels.get(k).map(String::as_str);
        let id = existing.id.as_deref().unwrap_or("?");
        if label(LABEL_MANAGED) != Some("true") {
            return Existing::Conflict(format!(
                "container {id}, which AgentVoiceBox does not manage"
            ));
        }
        if label(LABEL_TENANT) != Some(spec.tenant.as_str())
            || label(LABEL_SERVER_ID) != Some(spec.server_id.as_str())
            || label(LABEL_REPLICA) != Some(replica.to_string().as_str())
        {
            return Existing::Conflict(format!(
                "container {id} of tenant {:?}, server {:?}, replica {:?}",
                label(LABEL_TENANT).unwrap_or("?"),
                label(LABEL_SERVER_ID).unwrap_or("?"),
                label(LABEL_REPLICA).unwrap_or("?"),
            ));
        }
        if label(LABEL_SPEC_HASH) == Some(spec.spec_hash().as_str()) {
            Existing::Reuse
        } else {
            Existing::Replace
        }
    }

    /// Starts the container (no-op when running) and reads its published port.
    async fn start_and_handle(
        &self,
        docker: &Docker,
        name: &str,
        spec: &ServerSpec,
        replica: u32,
    ) -> Result<ReplicaHandle, ProvisionError> {
        match docker.start_container(name, None).await {
            Ok(()) => {}
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => {} // already running
            Err(e) => {
                let err = self.error("start", name, e);
                if !err.is_retryable() {
                    // Leave nothing behind: the next attempt would fail the same way.
                    self.remove_by_name(docker, name).await.ok();
                }
                return Err(err);
            }
        }
        let info = docker
            .inspect_container(name, None)
            .await
            .map_err(|e| self.error("inspect", name, e))?;
        let port_key = format!("{}/tcp", spec.template.container_port);
        let host_port = info
            .network_settings
            .as_ref()
            .and_then(|n| n.ports.as_ref())
            .and_then(|p| p.get(&port_key).cloned().flatten())
            .and_then(|bindings| {
                bindings
                    .iter()
                    .find_map(|b| b.host_port.as_deref().and_then(|p| p.parse::<u16>().ok()))
            });
        let Some(host_port) = host_port else {
            // Only a container that is not running has no published port: it ended already.
            let state = info.state.as_ref();
            let running = state.and_then(|s| s.running).unwrap_or(false);
            let exit_code = state.and_then(|s| s.exit_code);
            let mut detail = Vec::new();
            if state.and_then(|s| s.oom_killed) == Some(true) {
                detail.push("killed for exceeding its memory limit".to_string());
            }
            if let Some(error) = state
                .and_then(|s| s.error.clone())
                .filter(|e| !e.is_empty())
            {
                detail.push(error);
            }
            let logs = self.logs(docker, name, 10).await.unwrap_or_default();
            if !logs.trim().is_empty() {
                detail.push(format!("last output: {}", logs.trim()));
            }
            self.remove_by_name(docker, name).await.ok();
            if running {
                return Err(ProvisionError::Engine {
                    op: "start",
                    target: name.to_string(),
                    status: 500,
                    message: format!("running but {port_key} is not published"),
                });
            }
            return Err(ProvisionError::ReplicaExited {
                name: name.to_string(),
                exit_code,
                detail: detail.join("; "),
            });
        };
        Ok(ReplicaHandle {
            server_id: spec.server_id.clone(),
            replica,
            id: info.id.unwrap_or_default(),
            host_port,
            url: replica_url(&self.publish_ip, host_port, &spec.template.transport),
        })
    }

    /// The last `tail` lines of a container's stdout and stderr.
    async fn logs(
        &self,
        docker: &Docker,
        name: &str,
        tail: usize,
    ) -> Result<String, ProvisionError> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let chunks: Vec<LogOutput> = match docker.logs(name, Some(options)).try_collect().await {
            Ok(chunks) => chunks,
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(String::new()),
            Err(e) => return Err(self.error("logs", name, e)),
        };
        Ok(chunks.iter().map(ToString::to_string).collect())
    }

    async fn remove_by_name(&self, docker: &Docker, name: &str) -> Result<(), ProvisionError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            // Gone already, or being removed by someone else: either way it will not be there.
            Err(BollardError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(()),
            Err(e) => Err(self.error("remove", name, e)),
        }
    }

    fn managed_from_labels(
        labels: &HashMap<String, String>,
        id: String,
        name: String,
        state: ReplicaState,
        exit_code: Option<i64>,
        host_port: Option<u16>,
    ) -> Option<ManagedReplica> {
        if labels.get(LABEL_MANAGED).map(String::as_str) != Some("true") {
            return None;
        }
        Some(ManagedReplica {
            server_id: labels.get(LABEL_SERVER_ID)?.clone(),
            tenant: labels.get(LABEL_TENANT)?.clone(),
            replica: labels.get(LABEL_REPLICA)?.parse().ok()?,
            template: labels.get(LABEL_TEMPLATE).cloned().unwrap_or_default(),
            id,
            name,
            state,
            exit_code,
            host_port,
        })
    }
}

#[async_trait]
impl ContainerBackend for DockerBackend {
    fn kind(&self) -> &'static str {
        "docker"
    }

    fn host_local(&self) -> bool {
        // A socket is this host's daemon; over TCP every worker may name the same one.
        matches!(self.endpoint, DockerEndpoint::Unix(_))
    }

    async fn ping(&self) -> Result<(), ProvisionError> {
        let docker = self.client().await?;
        docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| self.error("ping", "engine", e))
    }

    async fn prepare_image(
        &self,
        image: &str,
        program: Option<&std::path::Path>,
    ) -> Result<bool, ProvisionError> {
        let docker = self.client().await?;
        match docker.inspect_image(image).await {
            Ok(_) => Ok(false),
            Err(BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            }) => match program.filter(|p| p.is_file()) {
                Some(program) => {
                    tracing::info!(image, program = %program.display(), "building missing image from its program");
                    crate::build_image_from_binary(self, program, image).await?;
                    Ok(true)
                }
                // No way to make it here: create_replica reports it (non-retryable).
                None => {
                    tracing::warn!(image, %message, "image missing and no program to build it from");
                    Ok(false)
                }
            },
            Err(e) => Err(self.error("inspect image", image, e)),
        }
    }

    async fn create_replica(
        &self,
        spec: &ServerSpec,
        replica: u32,
    ) -> Result<ReplicaHandle, ProvisionError> {
        spec.check_replica(replica)?;
        if spec.template.image.trim().is_empty() {
            return Err(ProvisionError::Invalid(format!(
                "template {} has no image: the docker backend needs one",
                spec.template.name
            )));
        }
        let docker = self.client().await?;
        let network = self.ensure_network(&docker).await?;
        let name = replica_name(&spec.server_id, replica);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        // Create first (the common case); on a name conflict look at what holds the name. Two
        // rounds cover a leftover to replace and a concurrent attempt creating the same name.
        for _ in 0..3 {
            let created = docker
                .create_container(
                    Some(options.clone()),
                    self.create_body(spec, replica, &network),
                )
                .await;
            match created {
                Ok(_) => return self.start_and_handle(&docker, &name, spec, replica).await,
                Err(BollardError::DockerResponseServerError {
                    status_code: 404,
                    message,
                }) => {
                    return Err(ProvisionError::ImageNotFound {
                        image: spec.template.image.clone(),
                        message,
                    });
                }
                Err(BollardError::DockerResponseServerError {
                    status_code: 409, ..
                }) => {}
                Err(e) => return Err(self.error("create", &name, e)),
            }
            let existing = match docker.inspect_container(&name, None).await {
                Ok(existing) => existing,
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => continue, // removed in between: create again
                Err(e) => return Err(self.error("inspect", &name, e)),
            };
            match Self::judge(&existing, spec, replica) {
                Existing::Reuse => {
                    return self.start_and_handle(&docker, &name, spec, replica).await;
                }
                Existing::Replace => {
                    tracing::info!(
                        container = %name,
                        "replacing a replica created from another spec"
                    );
                    self.remove_by_name(&docker, &name).await?;
                }
                Existing::Conflict(owner) => {
                    return Err(ProvisionError::NameConflict { name, owner });
                }
            }
        }
        Err(ProvisionError::Engine {
            op: "create",
            target: name,
            status: 409,
            message: "the name stayed taken while replacing it (concurrent creates?)".into(),
        })
    }

    async fn remove_replica(&self, server_id: &str, replica: u32) -> Result<(), ProvisionError> {
        let docker = self.client().await?;
        self.remove_by_name(&docker, &replica_name(server_id, replica))
            .await
    }

    async fn list_managed(
        &self,
        filter: &ListFilter,
    ) -> Result<Vec<ManagedReplica>, ProvisionError> {
        let docker = self.client().await?;
        let mut labels = vec![format!("{LABEL_MANAGED}=true")];
        if let Some(tenant) = &filter.tenant {
            labels.push(format!("{LABEL_TENANT}={tenant}"));
        }
        if let Some(server_id) = &filter.server_id {
            labels.push(format!("{LABEL_SERVER_ID}={server_id}"));
        }
        if let Some(instance) = &self.instance {
            labels.push(format!("{LABEL_INSTANCE}={instance}"));
        }
        let filters = HashMap::from([("label".to_string(), labels)]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error("list", "containers", e))?;
        let mut out: Vec<ManagedReplica> = containers
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default();
                let state = c.state.map_or(ReplicaState::Unknown(String::new()), |s| {
                    ReplicaState::from_engine(s.as_ref())
                });
                let host_port = c
                    .ports
                    .unwrap_or_default()
                    .iter()
                    .find_map(|p| p.public_port);
                Self::managed_from_labels(
                    &labels,
                    c.id.unwrap_or_default(),
                    name,
                    state,
                    None,
                    host_port,
                )
            })
            .filter(|r| filter.matches(&r.tenant, &r.server_id))
            .collect();
        sort_replicas(&mut out);
        Ok(out)
    }

    async fn replica_logs(
        &self,
        server_id: &str,
        replica: u32,
        tail: usize,
    ) -> Result<String, ProvisionError> {
        let docker = self.client().await?;
        self.logs(&docker, &replica_name(server_id, replica), tail)
            .await
    }

    async fn replica_status(
        &self,
        server_id: &str,
        replica: u32,
    ) -> Result<Option<ManagedReplica>, ProvisionError> {
        let docker = self.client().await?;
        let name = replica_name(server_id, replica);
        let info = match docker.inspect_container(&name, None).await {
            Ok(info) => info,
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(self.error("inspect", &name, e)),
        };
        let labels = info
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let state = info.state.as_ref();
        let host_port = info
            .network_settings
            .as_ref()
            .and_then(|n| n.ports.as_ref())
            .and_then(|ports| {
                ports
                    .values()
                    .flatten()
                    .flatten()
                    .find_map(|b| b.host_port.as_deref().and_then(|p| p.parse::<u16>().ok()))
            });
        Ok(Self::managed_from_labels(
            &labels,
            info.id.clone().unwrap_or_default(),
            name,
            state
                .and_then(|s| s.status)
                .map_or(ReplicaState::Unknown(String::new()), |s| {
                    ReplicaState::from_engine(s.as_ref())
                }),
            state.and_then(|s| s.exit_code),
            host_port,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            DockerEndpoint::parse("unix:///tmp/d.sock").expect("unix"),
            DockerEndpoint::Unix("/tmp/d.sock".into())
        );
        assert_eq!(
            DockerEndpoint::parse("/run/podman/podman.sock").expect("path"),
            DockerEndpoint::Unix("/run/podman/podman.sock".into())
        );
        assert_eq!(
            DockerEndpoint::parse("tcp://10.0.0.1:2375").expect("tcp"),
            DockerEndpoint::Tcp("tcp://10.0.0.1:2375".into())
        );
        assert!(DockerEndpoint::parse("ssh://x").is_err());
        assert_eq!(
            DockerEndpoint::Unix("/x.sock".into()).to_string(),
            "unix:///x.sock"
        );
    }

    #[tokio::test]
    async fn missing_socket_is_retryable_and_names_the_endpoint() {
        let backend = DockerBackend::new(DockerEndpoint::Unix("/nonexistent/avb.sock".into()));
        let err = backend.ping().await.expect_err("no engine");
        assert!(err.is_retryable(), "{err}");
        assert_eq!(err.kind(), "EngineUnavailable");
        assert!(
            err.to_string().contains("unix:///nonexistent/avb.sock"),
            "{err}"
        );
    }
}
