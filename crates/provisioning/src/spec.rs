//! What to provision (`ServerSpec` from a `TemplateSpec`), what comes back (`ReplicaHandle`), and
//! what an engine reports (`ManagedReplica`). Also the naming and labelling rules every backend
//! shares.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ProvisionError;

/// Label (Docker) / environment variable (process backend) names.
pub const LABEL_MANAGED: &str = "avb.managed";
pub const LABEL_TENANT: &str = "avb.tenant";
pub const LABEL_SERVER_ID: &str = "avb.server_id";
pub const LABEL_REPLICA: &str = "avb.replica";
pub const LABEL_TEMPLATE: &str = "avb.template";
/// A hash of everything that makes up a replica (image, command, env, port, limits): an existing
/// replica with the same name is reused only when it matches.
pub const LABEL_SPEC_HASH: &str = "avb.spec_hash";
/// The installation a replica belongs to, when its backend has one (`with_instance`): two
/// installations sharing one engine never list, reconcile or remove each other's replicas.
pub const LABEL_INSTANCE: &str = "avb.instance";
/// The host a process replica was started by, when its backend names one (`with_host`): the
/// workers of one host never list or remove another's replicas, even where they could see them.
pub const LABEL_HOST: &str = "avb.host";

/// The environment variable that tells a replica which port to listen on (also substituted for
/// `{port}` in the template's command and args).
pub const PORT_ENV: &str = "PORT";

/// Longest server id: the container name `avb-<id>-<replica>` stays well under Docker's limit.
pub const MAX_SERVER_ID_LEN: usize = 64;
/// Highest replica count a spec may ask for.
pub const MAX_REPLICAS: u32 = 64;

/// How clients speak MCP to a replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Transport {
    /// MCP Streamable HTTP at `path` (e.g. `/mcp`).
    StreamableHttp { path: String },
}

impl Transport {
    pub fn path(&self) -> &str {
        match self {
            Transport::StreamableHttp { path } => path,
        }
    }
}

/// A server template (from config): how to run one replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSpec {
    pub name: String,
    /// Image reference for container engines (`repo:tag`); the process backend maps it to a
    /// local program (`ProcessBackend::with_program`) unless `command` is set.
    pub image: String,
    /// Entrypoint override (Docker) / program and leading arguments (process backend). Empty:
    /// the image's entrypoint.
    #[serde(default)]
    pub command: Vec<String>,
    /// Arguments (Docker `Cmd`). `{port}` is replaced by the port the replica listens on.
    #[serde(default)]
    pub args: Vec<String>,
    /// The port the server listens on inside the container (also passed as `PORT`).
    pub container_port: u16,
    pub transport: Transport,
    /// Environment keys a caller may set (`ServerSpec::env`); anything else is refused.
    #[serde(default)]
    pub allowed_env: Vec<String>,
    #[serde(default)]
    pub memory_mb: Option<u64>,
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub pids: Option<i64>,
    /// Linux capabilities the container keeps; every other one is dropped (default: none).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Let the server write to its root file system (default: read-only, with a small `/tmp`).
    #[serde(default)]
    pub writable_root: bool,
}

/// One MCP server to provision: a template, the caller's environment and a replica count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// Unique across tenants (the workflow makes it); names the containers.
    pub server_id: String,
    pub tenant: String,
    pub template: TemplateSpec,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub replicas: u32,
}

/// A running replica: where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaHandle {
    pub server_id: String,
    pub replica: u32,
    /// Container id (Docker) or process id (process backend).
    pub id: String,
    /// Loopback port the replica is reachable on from this host.
    pub host_port: u16,
    /// `http://<publish address>:<host_port><path>` (`127.0.0.1` unless the provisioning
    /// worker's `provisioning.publish_address` says otherwise)
    pub url: String,
}

/// Lifecycle state as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Unknown(String),
}

impl ReplicaState {
    pub fn is_running(&self) -> bool {
        matches!(self, ReplicaState::Running)
    }

    pub(crate) fn from_engine(state: &str) -> Self {
        match state {
            "created" => ReplicaState::Created,
            "running" => ReplicaState::Running,
            "paused" => ReplicaState::Paused,
            "restarting" => ReplicaState::Restarting,
            "removing" => ReplicaState::Removing,
            "exited" => ReplicaState::Exited,
            "dead" => ReplicaState::Dead,
            other => ReplicaState::Unknown(other.to_string()),
        }
    }
}

impl fmt::Display for ReplicaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicaState::Created => f.write_str("created"),
            ReplicaState::Running => f.write_str("running"),
            ReplicaState::Paused => f.write_str("paused"),
            ReplicaState::Restarting => f.write_str("restarting"),
            ReplicaState::Removing => f.write_str("removing"),
            ReplicaState::Exited => f.write_str("exited"),
            ReplicaState::Dead => f.write_str("dead"),
            ReplicaState::Unknown(s) => write!(f, "unknown ({s})"),
        }
    }
}

/// A replica the engine knows about, found by its labels (reconciliation, status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedReplica {
    pub server_id: String,
    pub tenant: String,
    pub replica: u32,
    pub template: String,
    /// Container id or process id.
    pub id: String,
    /// `avb-<server_id>-<replica>`
    pub name: String,
    pub state: ReplicaState,
    /// Exit code when it has exited (Docker).
    pub exit_code: Option<i64>,
    /// The published loopback port, when it has one.
    pub host_port: Option<u16>,
}

/// Which managed replicas `list_managed` returns (all of them when both are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub tenant: Option<String>,
    pub server_id: Option<String>,
}

impl ListFilter {
    pub fn all() -> Self {
        Self::default()
    }

    pub fn tenant(tenant: impl Into<String>) -> Self {
        Self {
            tenant: Some(tenant.into()),
            server_id: None,
        }
    }

    pub fn server(server_id: impl Into<String>) -> Self {
        Self {
            tenant: None,
            server_id: Some(server_id.into()),
        }
    }

    pub(crate) fn matches(&self, tenant: &str, server_id: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
            && self.server_id.as_deref().is_none_or(|s| s == server_id)
    }
}

/// The deterministic name of a replica: `avb-<server_id>-<replica>`.
pub fn replica_name(server_id: &str, replica: u32) -> String {
    format!("avb-{server_id}-{replica}")
}

/// The URL of a replica published on `address`:`port` (an IPv6 address in brackets).
pub fn replica_url(address: &str, port: u16, transport: &Transport) -> String {
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    };
    format!("http://{host}:{port}{}", transport.path())
}

fn valid_name(s: &str, max: usize) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && s.len() <= max
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Is `key` a name a process environment can carry?
fn valid_env_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Keys the backends set themselves; a caller may not.
fn reserved_env_key(key: &str) -> bool {
    key == PORT_ENV || key == "HOST" || key.starts_with("AVB_")
}

impl TemplateSpec {
    pub fn validate(&self) -> Result<(), ProvisionError> {
        let bad = |msg: String| Err(ProvisionError::Invalid(msg));
        if !valid_name(&self.name, 64) {
            return bad(format!(
                "template name {:?} must be 1-64 characters [A-Za-z0-9_.-], starting with a \
                 letter or digit",
                self.name
            ));
        }
        if self.image.trim().is_empty() && self.command.is_empty() {
            return bad(format!(
                "template {} has neither an image nor a command",
                self.name
            ));
        }
        if self.container_port == 0 {
            return bad(format!(
                "template {}: container_port must be 1-65535",
                self.name
            ));
        }
        let path = self.transport.path();
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c == '?') {
            return bad(format!(
                "template {}: transport path {path:?} must be an absolute URL path",
                self.name
            ));
        }
        if let Some(mb) = self.memory_mb
            && mb < 6
        {
            return bad(format!(
                "template {}: memory_mb {mb} is below the engine's minimum of 6",
                self.name
            ));
        }
        if let Some(cpus) = self.cpus
            && !(cpus.is_finite() && cpus > 0.0 && cpus <= 1024.0)
        {
            return bad(format!(
                "template {}: cpus {cpus} must be a positive number",
                self.name
            ));
        }
        if let Some(pids) = self.pids
            && pids < 1
        {
            return bad(format!(
                "template {}: pids {pids} must be at least 1",
                self.name
            ));
        }
        for key in &self.allowed_env {
            if !valid_env_key(key) || reserved_env_key(key) {
                return bad(format!(
                    "template {}: allowed env key {key:?} is not a valid or is a reserved name",
                    self.name
                ));
            }
        }
        Ok(())
    }
}

impl ServerSpec {
    /// Everything a backend checks before creating anything.
    pub fn validate(&self) -> Result<(), ProvisionError> {
        let bad = |msg: String| Err(ProvisionError::Invalid(msg));
        if !valid_name(&self.server_id, MAX_SERVER_ID_LEN) {
            return bad(format!(
                "server id {:?} must be 1-{MAX_SERVER_ID_LEN} characters [A-Za-z0-9_.-], \
                 starting with a letter or digit",
                self.server_id
            ));
        }
        if self.tenant.is_empty() || self.tenant.len() > 128 || self.tenant.contains('\0') {
            return bad(format!("tenant {:?} must be 1-128 characters", self.tenant));
        }
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return bad(format!(
                "replicas must be 1-{MAX_REPLICAS}, not {}",
                self.replicas
            ));
        }
        self.template.validate()?;
        for (key, value) in &self.env {
            if !self.template.allowed_env.iter().any(|k| k == key) {
                return bad(format!(
                    "environment key {key:?} is not allowed by template {} (allowed: {})",
                    self.template.name,
                    if self.template.allowed_env.is_empty() {
                        "none".to_string()
                    } else {
                        self.template.allowed_env.join(", ")
                    }
                ));
            }
            if value.contains('\0') {
                return bad(format!("environment value of {key} contains a NUL byte"));
            }
        }
        Ok(())
    }

    pub(crate) fn check_replica(&self, replica: u32) -> Result<(), ProvisionError> {
        self.validate()?;
        if replica >= self.replicas {
            return Err(ProvisionError::Invalid(format!(
                "replica {replica} out of range: server {} has {} replica(s), numbered from 0",
                self.server_id, self.replicas
            )));
        }
        Ok(())
    }

    /// Arguments with `{port}` replaced.
    pub(crate) fn args_for_port(&self, port: u16) -> Vec<String> {
        let port = port.to_string();
        self.template
            .args
            .iter()
            .map(|a| a.replace("{port}", &port))
            .collect()
    }

    pub(crate) fn command_for_port(&self, port: u16) -> Vec<String> {
        let port = port.to_string();
        self.template
            .command
            .iter()
            .map(|a| a.replace("{port}", &port))
            .collect()
    }

    /// The labels every replica of this server carries.
    pub(crate) fn labels(&self, replica: u32) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_TENANT.to_string(), self.tenant.clone()),
            (LABEL_SERVER_ID.to_string(), self.server_id.clone()),
            (LABEL_REPLICA.to_string(), replica.to_string()),
            (LABEL_TEMPLATE.to_string(), self.template.name.clone()),
            (LABEL_SPEC_HASH.to_string(), self.spec_hash()),
        ])
    }

    /// A stable hash (FNV-1a, 64 bit, hex) of what a replica is made of. Replica-independent.
    pub fn spec_hash(&self) -> String {
        let canonical = serde_json::json!({
            "tenant": self.tenant,
            "template": self.template,
            "env": self.env,
        });
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in canonical.to_string().bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> ServerSpec {
        ServerSpec {
            server_id: "srv-1".into(),
            tenant: "acme".into(),
            template: TemplateSpec {
                name: "demo".into(),
                image: "avb-demo-mcp:test".into(),
                command: vec![],
                args: vec!["--port".into(), "{port}".into()],
                container_port: 8000,
                transport: Transport::StreamableHttp {
                    path: "/mcp".into(),
                },
                allowed_env: vec!["ECHO_PREFIX".into()],
                memory_mb: Some(64),
                cpus: Some(0.5),
                pids: Some(64),
                cap_add: Vec::new(),
                writable_root: false,
            },
            env: BTreeMap::from([("ECHO_PREFIX".into(), "hi ".into())]),
            replicas: 2,
        }
    }

    #[test]
    fn valid_spec_passes() {
        spec().validate().expect("valid");
        spec().check_replica(1).expect("replica 1 of 2");
    }

    #[test]
    fn invalid_specs_name_the_problem() {
        let err = |f: &dyn Fn(&mut ServerSpec)| {
            let mut s = spec();
            f(&mut s);
            let e = s.validate().expect_err("invalid");
            assert!(!e.is_retryable());
            e.to_string()
        };
        assert!(err(&|s| s.server_id = "bad/id".into()).contains("server id \"bad/id\""));
        assert!(err(&|s| s.server_id = "-x".into()).contains("server id"));
        assert!(err(&|s| s.replicas = 0).contains("replicas must be"));
        assert!(
            err(&|s| {
                s.env.insert("SECRET".into(), "x".into());
            })
            .contains("\"SECRET\" is not allowed by template demo (allowed: ECHO_PREFIX)")
        );
        assert!(err(&|s| s.template.memory_mb = Some(1)).contains("memory_mb 1"));
        assert!(err(&|s| s.template.cpus = Some(f64::NAN)).contains("cpus"));
        assert!(err(&|s| s.template.container_port = 0).contains("container_port"));
        assert!(err(&|s| s.template.allowed_env.push("PORT".into())).contains("\"PORT\""));
        assert!(
            err(&|s| s.template.transport = Transport::StreamableHttp { path: "mcp".into() })
                .contains("absolute URL path")
        );
        let e = spec().check_replica(2).expect_err("out of range");
        assert!(e.to_string().contains("replica 2 out of range"), "{e}");
    }

    #[test]
    fn hash_depends_on_content_not_replica() {
        let a = spec();
        let mut b = spec();
        assert_eq!(a.spec_hash(), b.spec_hash());
        assert_eq!(a.labels(0)[LABEL_SPEC_HASH], a.labels(1)[LABEL_SPEC_HASH]);
        b.env.insert("ECHO_PREFIX".into(), "other".into());
        assert_ne!(a.spec_hash(), b.spec_hash());
        assert_eq!(a.labels(1)[LABEL_REPLICA], "1");
    }

    #[test]
    fn names_urls_and_args() {
        assert_eq!(replica_name("srv-1", 3), "avb-srv-1-3");
        let s = spec();
        assert_eq!(
            replica_url("127.0.0.1", 4321, &s.template.transport),
            "http://127.0.0.1:4321/mcp"
        );
        assert_eq!(
            replica_url("10.0.0.5", 4321, &s.template.transport),
            "http://10.0.0.5:4321/mcp"
        );
        assert_eq!(
            replica_url("fd00::5", 4321, &s.template.transport),
            "http://[fd00::5]:4321/mcp"
        );
        assert_eq!(s.args_for_port(9000), vec!["--port", "9000"]);
        let json = serde_json::to_value(&s.template.transport).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"type": "streamable-http", "path": "/mcp"})
        );
    }
}
