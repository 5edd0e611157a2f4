//! `[provisioning]` settings: which engine runs provisioned MCP servers, the templates agents may
//! ask for, and the limits per request and per tenant.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::env::{EnvVar, parse_uint};

/// The template every installation has: the bundled `avb-demo-mcp` server (tools `echo`, `add`).
pub const DEMO_TEMPLATE: &str = "demo";
/// The demo image: built from `avb-demo-mcp` by the docker backend the first time it is missing
/// (no registry needed).
pub const DEMO_IMAGE: &str = "avb/demo-mcp:latest";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TemplateSettings {
    /// Container image (`repo:tag`) for the docker backend.
    pub image: String,
    /// The program the process backend runs for this template (absolute, or found next to the
    /// `avb` binary, or on `PATH`).
    #[serde(default)]
    pub program: Option<PathBuf>,
    /// Entrypoint override (docker) / leading arguments are the image's own when empty.
    #[serde(default)]
    pub command: Vec<String>,
    /// Arguments; `{port}` is replaced by the port the server listens on (also in `PORT`).
    #[serde(default)]
    pub args: Vec<String>,
    /// The port the server listens on inside its container.
    pub port: u16,
    /// Streamable HTTP path of the server, e.g. `/mcp`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Environment keys a caller may set; any other key is refused.
    #[serde(default)]
    pub allowed_env: Vec<String>,
    #[serde(default)]
    pub memory_mb: Option<u64>,
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub pids: Option<i64>,
    /// One line saying what the template runs (for whoever reads the config).
    #[serde(default)]
    pub description: String,
    /// Linux capabilities containers of this template keep (all others are dropped).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Containers may write to their root file system (default: read-only, `/tmp` in memory).
    #[serde(default)]
    pub writable_root: bool,
}

fn default_path() -> String {
    "/mcp".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvisioningSettings {
    /// `auto` (docker when its socket answers, else process), `docker` or `process`
    /// (`AVB_PROVISIONING_BACKEND`).
    pub backend: String,
    /// Docker Engine endpoint (`unix:///path/docker.sock` or `tcp://…`; `DOCKER_HOST` when unset).
    pub docker_host: Option<String>,
    /// The IP address of this host that replicas are published on and reached at
    /// (`AVB_PROVISIONING_PUBLISH_ADDRESS`; default `127.0.0.1`: only this host reaches them).
    /// On several machines, an address the api hosts reach; replicas then listen there.
    pub publish_address: Option<std::net::IpAddr>,
    /// The name of this host for provisioning (`AVB_PROVISIONING_HOST`; default the machine's
    /// hostname). Replicas of a host-local engine (the process backend, a Docker socket) are
    /// created, checked and removed by the workers of the host that created them, through the
    /// task queue `avb-provisioning@<host>`; two hosts must not share a name.
    pub host: Option<String>,
    /// Most replicas one server may have (`AVB_PROVISIONING_MAX_REPLICAS`).
    pub max_replicas: u32,
    /// Most servers (not deleted) one tenant may have (`AVB_PROVISIONING_QUOTA`).
    pub quota_per_tenant: u32,
    /// Most creates one tenant may start in an hour, failed ones included
    /// (`AVB_PROVISIONING_CREATES_PER_HOUR`; 0: no limit). A create that fails frees its quota
    /// place at once, so without this a tenant could fail creates without end.
    pub creates_per_hour: u32,
    /// Failed and deleted servers' records are purged after this many days, each with an
    /// audit event that stays (`AVB_PROVISIONING_RECORD_RETENTION_DAYS`; 0: kept forever).
    pub record_retention_days: u64,
    /// How often the reconciliation schedule compares records with the engine and removes
    /// orphans, in seconds; 0 turns the schedule off (`AVB_PROVISIONING_RECONCILE_SECS`).
    pub reconcile_every_secs: u64,
    /// Container-minutes are prepaid in blocks this long (`AVB_PROVISIONING_BILLING_BLOCK_SECS`;
    /// default an hour): the first when a server is created, the next ones as they start, the
    /// unused whole minutes of the last refunded on delete.
    pub billing_block_secs: u64,
    pub templates: BTreeMap<String, TemplateSettings>,
}

impl Default for ProvisioningSettings {
    fn default() -> Self {
        Self {
            backend: "auto".into(),
            docker_host: None,
            publish_address: None,
            host: None,
            max_replicas: 5,
            quota_per_tenant: 10,
            creates_per_hour: 30,
            record_retention_days: 30,
            reconcile_every_secs: 300,
            billing_block_secs: 3600,
            templates: BTreeMap::from([(
                DEMO_TEMPLATE.to_string(),
                TemplateSettings {
                    image: DEMO_IMAGE.into(),
                    program: Some(PathBuf::from("avb-demo-mcp")),
                    command: Vec::new(),
                    args: Vec::new(),
                    port: 8000,
                    path: default_path(),
                    allowed_env: vec!["ECHO_PREFIX".into(), "DEMO_STARTUP_DELAY_MS".into()],
                    memory_mb: Some(128),
                    cpus: Some(0.5),
                    pids: Some(128),
                    description: "the bundled demo MCP server (tools echo and add)".into(),
                    cap_add: Vec::new(),
                    writable_root: false,
                },
            )]),
        }
    }
}

pub const ENV: &[EnvVar<ProvisioningSettings>] = &[
    EnvVar::new(
        "AVB_PROVISIONING_BACKEND",
        "what runs provisioned MCP servers: auto, docker or process (default auto)",
        |p, v| {
            p.backend = v.into();
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_PROVISIONING_PUBLISH_ADDRESS",
        "the IP address of this host provisioned replicas listen on and are reached at \
         (default 127.0.0.1: this host only)",
        |p, v| {
            p.publish_address = Some(
                v.trim()
                    .parse()
                    .map_err(|_| format!("{v:?} is not an IP address (e.g. 10.0.0.5)"))?,
            );
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_PROVISIONING_HOST",
        "this host's name for provisioning: replicas on it are created, checked and removed \
         through the queue avb-provisioning@<name> (default the hostname)",
        |p, v| {
            p.host = Some(v.trim().to_owned());
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_DOCKER_HOST",
        "Docker Engine endpoint, unix:// or tcp:// (default DOCKER_HOST, else the local socket)",
        |p, v| {
            p.docker_host = Some(v.into());
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_PROVISIONING_MAX_REPLICAS",
        "most replicas one provisioned server may have (default 5)",
        |p, v| {
            p.max_replicas = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_PROVISIONING_QUOTA",
        "most provisioned servers one tenant may have (default 10)",
        |p, v| {
            p.quota_per_tenant = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_PROVISIONING_CREATES_PER_HOUR",
        "most server creates one tenant may start in an hour, failed ones included; 0 = no limit (default 30)",
        |p, v| {
            p.creates_per_hour = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_PROVISIONING_RECORD_RETENTION_DAYS",
        "failed and deleted servers' records are purged after this many days; 0 = never (default 30)",
        |p, v| {
            p.record_retention_days = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_PROVISIONING_RECONCILE_SECS",
        "how often records and the engine are reconciled; 0 = never (default 300)",
        |p, v| {
            p.reconcile_every_secs = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_PROVISIONING_BILLING_BLOCK_SECS",
        "container time is prepaid in blocks this long (default 3600)",
        |p, v| {
            p.billing_block_secs = parse_uint(v)?;
            Ok(())
        },
    ),
];

/// Whether `name` can name a host: letters, digits, `.`, `-` and `_`, at most 100 characters
/// (it becomes part of a task queue name and of a schedule id).
pub fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

impl ProvisioningSettings {
    /// The address replicas are published on and reached at.
    pub fn publish_address(&self) -> String {
        self.publish_address
            .map_or_else(|| "127.0.0.1".to_string(), |a| a.to_string())
    }

    /// This host's name for provisioning: `host`, else the machine's hostname (characters a
    /// task queue name cannot carry become `-`).
    pub fn host_name(&self) -> String {
        if let Some(host) = &self.host {
            return host.clone();
        }
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default();
        let cleaned: String = raw
            .trim()
            .chars()
            .take(100)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        if cleaned.is_empty() {
            "localhost".into()
        } else {
            cleaned
        }
    }

    /// Checks the settings; the error names the offending key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(host) = &self.host
            && !is_host_name(host)
        {
            return Err((
                "provisioning.host".into(),
                format!("{host:?}: use letters, digits, '.', '-' and '_' (at most 100 characters)"),
            ));
        }
        if self.publish_address.is_some_and(|a| a.is_unspecified()) {
            return Err((
                "provisioning.publish_address".into(),
                "0.0.0.0 or :: is where to listen, not where to be reached: name this host's \
                 address"
                    .into(),
            ));
        }
        if !matches!(self.backend.as_str(), "auto" | "docker" | "process") {
            return Err((
                "provisioning.backend".into(),
                format!("{:?}: use auto, docker or process", self.backend),
            ));
        }
        if self.billing_block_secs == 0 {
            return Err((
                "provisioning.billing_block_secs".into(),
                "must be at least 1".into(),
            ));
        }
        if self.max_replicas == 0 {
            return Err((
                "provisioning.max_replicas".into(),
                "must be at least 1".into(),
            ));
        }
        for (name, t) in &self.templates {
            let key = format!("provisioning.templates.{name}");
            if t.port == 0 {
                return Err((format!("{key}.port"), "must be a port number".into()));
            }
            if !t.path.starts_with('/') {
                return Err((
                    format!("{key}.path"),
                    format!("{:?} must start with /", t.path),
                ));
            }
            if t.image.trim().is_empty() {
                return Err((format!("{key}.image"), "must not be empty".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_the_key() {
        assert!(ProvisioningSettings::default().validate().is_ok());
        let mut s = ProvisioningSettings {
            backend: "kubernetes".into(),
            ..ProvisioningSettings::default()
        };
        assert_eq!(
            s.validate().map_err(|e| e.0),
            Err("provisioning.backend".into())
        );
        s.backend = "process".into();
        if let Some(t) = s.templates.get_mut(DEMO_TEMPLATE) {
            t.path = "mcp".into();
        }
        assert_eq!(
            s.validate().map_err(|e| e.0),
            Err("provisioning.templates.demo.path".into())
        );
    }

    #[test]
    fn a_host_name_must_fit_a_task_queue_and_defaults_to_the_hostname() {
        let named = |h: &str| ProvisioningSettings {
            host: Some(h.into()),
            ..ProvisioningSettings::default()
        };
        assert!(named("node-1.rack_a").validate().is_ok());
        for bad in ["", "two words", "a/b", &"x".repeat(101)] {
            let (key, message) = named(bad).validate().expect_err(bad);
            assert_eq!(key, "provisioning.host");
            assert!(message.contains("letters, digits"), "{message}");
        }
        assert_eq!(named("node-1").host_name(), "node-1");
        let default = ProvisioningSettings::default().host_name();
        assert!(is_host_name(&default), "{default:?}");
    }
}
