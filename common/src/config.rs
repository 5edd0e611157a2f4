//! Configuration: defaults → optional TOML file (`AVB_CONFIG`) → `AVB_`-prefixed environment
//! variables, validated once at start. Secrets (the Temporal API key) are never printed: the
//! `Debug` impl redacts them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use crate::upstream_settings::UpstreamServer;

pub use crate::billing_settings::{BillingSettings, Price};
pub use crate::provisioning_settings::{ProvisioningSettings, TemplateSettings};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}={value:?} is invalid: {message}")]
    Env {
        name: String,
        value: String,
        message: String,
    },
    #[error("config key {key} is invalid: {message}")]
    Invalid { key: &'static str, message: String },
    /// Like `Invalid`, for keys built at run time (e.g. `billing.prices.<tool>`).
    #[error("config key {key} is invalid: {message}")]
    InvalidKey { key: String, message: String },
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AvbConfig {
    /// Assets, artifacts, the dev server's database (`AVB_DATA_DIR`, default `./data`).
    pub data_dir: PathBuf,
    /// HTTP listen address of the api (`AVB_HTTP`).
    pub http: SocketAddr,
    /// Public base URL used in links (`AVB_PUBLIC_URL`); defaults to `http://<http>`.
    pub public_url: Option<String>,
    pub temporal: TemporalConfig,
    pub tts: TtsSettings,
    pub mcp: McpSettings,
    /// Token buckets per API key and tool (`crate::rate_limit_settings`).
    pub rate_limits: RateLimitSettings,
    /// Shared state across api processes (rate limits), when `REDIS_URL` is set.
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub database: DatabaseSettings,
    pub billing: BillingSettings,
    pub provisioning: ProvisioningSettings,
    pub devices: crate::device_settings::DeviceSettings,
    /// Upstream MCP servers mounted beside our tools (`crate::upstream_settings`).
    pub mcp_servers: BTreeMap<String, UpstreamServer>,
    /// The file this config came from (`AVB_CONFIG`): `[mcp_servers]` is re-read from it while
    /// running.
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Every MCP and `/api/v2` request needs an API key (`AVB_AUTH_REQUIRED`; default true).
    /// Off, every caller is the operator of the `local` tenant.
    pub required: bool,
    /// JWT bearer tokens from an OIDC issuer, next to API keys (`[auth.oidc]`, `AVB_OIDC_*`).
    pub oidc: Option<OidcSettings>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            required: true,
            oidc: None,
        }
    }
}

#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `DATABASE_URL` (or `AVB_DATABASE_URL`): `postgres://…` or `sqlite://…`; default a SQLite
    /// file `avb.db` in the data directory. May hold a password: never printed.
    pub url: Option<String>,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self
            .url
            .as_deref()
            .map(|u| u.split(':').next().unwrap_or(""));
        f.debug_struct("DatabaseSettings")
            .field("url", &scheme.map(|s| format!("{s}://<redacted>")))
            .finish()
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemporalConfig {
    /// `host:port` of the Temporal frontend (`AVB_TEMPORAL_ADDRESS`).
    pub address: String,
    pub namespace: String,
    /// Temporal Cloud API key (`AVB_TEMPORAL_API_KEY`); enables TLS.
    pub api_key: Option<String>,
    /// Use TLS without an API key (`AVB_TEMPORAL_TLS=true`).
    pub tls: bool,
    /// `avb dev` starts a dev server when none answers at `address`.
    pub dev_server_ui_port: u16,
    /// Ask for eager workflow start (effective when a worker shares the api's connection, as in
    /// `avb dev`; `AVB_TEMPORAL_EAGER_START`).
    pub eager_start: bool,
    /// `durable_echo` runs its activity as a local activity (`AVB_ECHO_LOCAL_ACTIVITY`).
    pub echo_local_activity: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtsSettings {
    /// ONNX Runtime intra-op threads per session (`AVB_TTS_THREADS`; default: cores / sessions).
    pub threads: Option<usize>,
    /// Sessions per TTS worker synthesizing chunks of one text concurrently (`AVB_TTS_SESSIONS`;
    /// default: one per core, at most 4 — measured fastest, BENCHMARKS.md).
    pub sessions: Option<usize>,
    /// Threads of the lead session that synthesizes each job's first chunk alone
    /// (`AVB_TTS_LEAD_THREADS`; 0 = none; default: all cores when `sessions` > 1, else none).
    pub lead_threads: Option<usize>,
    pub max_text_chars: usize,
    pub espeak_program: String,
    /// Run the model's 1-D integer convolutions as int8 matrix products: bit-identical audio at
    /// 1.33-1.47x the RTF of the file as it is (BENCHMARKS.md), used only on CPUs where it is
    /// exact, with AVX-512 VNNI (`AVB_TTS_REWRITE_CONVS`, default true).
    pub rewrite_convs: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpSettings {
    /// Host headers accepted on /mcp (DNS-rebinding protection). Loopback names by default.
    pub allowed_hosts: Vec<String>,
    /// Origins accepted from browsers; empty = no Origin check.
    pub allowed_origins: Vec<String>,
    /// How long a tool call waits for its workflow before answering with a job handle.
    pub wait_budget_secs: u64,
    /// Serve the MCP conformance suite's fixtures (tools, resources, prompts, logging,
    /// completions named `test_*` / `test://`; `AVB_MCP_CONFORMANCE_FIXTURES`). Test-only:
    /// needs an `avb-api` built with the `conformance-fixtures` cargo feature, else start fails.
    pub conformance_fixtures: bool,
    /// How often upstream MCP servers are checked (tools listed, down ones withdrawn) and the
    /// config file re-read for `[mcp_servers]` changes (`AVB_UPSTREAM_CHECK_SECS`).
    pub upstream_check_secs: u64,
}

impl Default for AvbConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            temporal: TemporalConfig::default(),
            tts: TtsSettings::default(),
            mcp: McpSettings::default(),
            rate_limits: RateLimitSettings::default(),
            redis: RedisSettings::default(),
            auth: AuthSettings::default(),
            database: DatabaseSettings::default(),
            billing: BillingSettings::default(),
            provisioning: ProvisioningSettings::default(),
            devices: crate::device_settings::DeviceSettings::default(),
            mcp_servers: BTreeMap::new(),
            source_file: None,
        }
    }
}

pub use crate::oidc_settings::OidcSettings;
pub use crate::rate_limit_settings::{Limit, RateLimitSettings, RedisSettings};

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

impl Default for TemporalConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:7233".into(),
            namespace: "default".into(),
            api_key: None,
            tls: false,
            dev_server_ui_port: 8233,
            eager_start: true,
            echo_local_activity: true,
        }
    }
}

impl Default for TtsSettings {
    fn default() -> Self {
        Self {
            threads: None,
            sessions: None,
            lead_threads: None,
            max_text_chars: 20_000,
            espeak_program: "espeak-ng".into(),
            rewrite_convs: true,
        }
    }
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            wait_budget_secs: 25,
            conformance_fixtures: false,
            upstream_check_secs: 5,
        }
    }
}

impl std::fmt::Debug for TemporalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporalConfig")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish()
    }
}

impl std::fmt::Debug for AvbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvbConfig")
            .field("data_dir", &self.data_dir)
            .field("http", &self.http)
            .field("temporal", &self.temporal)
            .field("tts", &self.tts)
            .field("mcp", &self.mcp)
            .field("rate_limits", &self.rate_limits)
            .field("redis", &self.redis)
            .field("auth", &self.auth)
            .field("database", &self.database)
            .field("billing", &self.billing)
            .field("provisioning", &self.provisioning)
            .field("devices", &self.devices)
            .field("mcp_servers", &self.mcp_servers)
            .finish()
    }
}

impl AvbConfig {
    /// Defaults, then the file named by `AVB_CONFIG` (if set), then `AVB_*` variables.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(std::env::vars())
    }

    pub fn load_from(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let all: Vec<(String, String)> = vars.into_iter().collect();
        // `${VAR}` in [mcp_servers] may name any variable (a token, a port).
        let lookup = |name: &str| all.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let vars: Vec<(String, String)> = all
            .iter()
            .filter(|(k, _)| k.starts_with("AVB_") || k == "DATABASE_URL" || k == "REDIS_URL")
            .cloned()
            .collect();
        let get = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut cfg = match get("AVB_CONFIG") {
            Some(path) => Self {
                source_file: Some(path.clone().into()),
                ..Self::from_file(Path::new(&path))?
            },
            None => Self::default(),
        };
        for (name, value) in &vars {
            cfg.apply_env(name, value)?;
        }
        crate::upstream_settings::expand_env(&mut cfg.mcp_servers, &lookup)
            .map_err(|(key, message)| ConfigError::InvalidKey { key, message })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// `[mcp_servers]` as the config file says now (variables expanded from the process
    /// environment, validated); the error names the file and the key.
    pub fn reload_mcp_servers(
        path: &Path,
    ) -> Result<BTreeMap<String, UpstreamServer>, ConfigError> {
        let mut servers = Self::from_file(path)?.mcp_servers;
        let lookup = |name: &str| std::env::var(name).ok();
        crate::upstream_settings::expand_env(&mut servers, &lookup)
            .and_then(|()| crate::upstream_settings::validate(&servers))
            .map_err(|(key, message)| ConfigError::InvalidKey { key, message })?;
        Ok(servers)
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }

    fn apply_env(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError::Env {
            name: name.into(),
            value: value.into(),
            message,
        };
        let parse_u64 = || value.parse::<u64>().map_err(|e| bad(e.to_string()));
        match name {
            "AVB_DATA_DIR" => self.data_dir = value.into(),
            "AVB_UPSTREAM_CHECK_SECS" => self.mcp.upstream_check_secs = parse_u64()?,
            "AVB_AUTH_REQUIRED" => self.auth.required = parse_bool(value).map_err(bad)?,
            "AVB_PROVISIONING_BACKEND" => self.provisioning.backend = value.into(),
            "AVB_DOCKER_HOST" => self.provisioning.docker_host = Some(value.into()),
            "AVB_PROVISIONING_MAX_REPLICAS" => {
                self.provisioning.max_replicas =
                    u32::try_from(parse_u64()?).map_err(|e| bad(e.to_string()))?
            }
            "AVB_PROVISIONING_QUOTA" => {
                self.provisioning.quota_per_tenant =
                    u32::try_from(parse_u64()?).map_err(|e| bad(e.to_string()))?
            }
            "AVB_MQTT_URL" => {
                self.devices.mqtt_url = Some(value.into()).filter(|v: &String| !v.is_empty())
            }
            "AVB_Z2M_BASE_TOPIC" => self.devices.z2m_base_topic = value.into(),
            "AVB_DEVICES_CONFIRM_SECS" => self.devices.confirm_secs = parse_u64()?,
            "AVB_APPROVAL_EXPIRY_SECS" => self.devices.approval_expiry_secs = parse_u64()?,
            "AVB_Z2M_REQUIRE_APPROVAL" => {
                self.devices.zigbee2mqtt.require_approval =
                    crate::device_settings::ApprovalRule::parse(value).map_err(bad)?
            }
            "AVB_HA_URL" => {
                self.devices.home_assistant.url =
                    Some(value.into()).filter(|v: &String| !v.is_empty())
            }
            "AVB_HA_TOKEN" => {
                self.devices.home_assistant.token =
                    Some(value.into()).filter(|v: &String| !v.is_empty())
            }
            "AVB_HA_REQUIRE_APPROVAL" => {
                self.devices.home_assistant.require_approval =
                    crate::device_settings::ApprovalRule::parse(value).map_err(bad)?
            }
            "AVB_PROVISIONING_BILLING_BLOCK_SECS" => {
                self.provisioning.billing_block_secs = parse_u64()?
            }
            "AVB_PROVISIONING_RECONCILE_SECS" => {
                self.provisioning.reconcile_every_secs = parse_u64()?
            }
            "AVB_BILLING_ENABLED" => self.billing.enabled = parse_bool(value).map_err(bad)?,
            "AVB_BILLING_DEV_CREDITS" => {
                self.billing.dev_credits =
                    i64::try_from(parse_u64()?).map_err(|e| bad(e.to_string()))?
            }
            // The conventional name wins over ours when both are set.
            "DATABASE_URL" => self.database.url = Some(value.into()),
            "AVB_DATABASE_URL" => {
                self.database.url.get_or_insert_with(|| value.into());
            }
            "AVB_HTTP" => {
                self.http = value
                    .parse()
                    .map_err(|e: std::net::AddrParseError| bad(e.to_string()))?
            }
            "AVB_PUBLIC_URL" => self.public_url = Some(value.trim_end_matches('/').into()),
            "AVB_TEMPORAL_ADDRESS" => self.temporal.address = value.into(),
            "AVB_TEMPORAL_NAMESPACE" => self.temporal.namespace = value.into(),
            "AVB_TEMPORAL_API_KEY" => {
                self.temporal.api_key = Some(value.into()).filter(|v: &String| !v.is_empty())
            }
            "AVB_TEMPORAL_UI_PORT" => {
                self.temporal.dev_server_ui_port =
                    u16::try_from(parse_u64()?).map_err(|e| bad(e.to_string()))?;
            }
            "AVB_TEMPORAL_EAGER_START" => {
                self.temporal.eager_start = matches!(value, "1" | "true" | "yes")
            }
            "AVB_ECHO_LOCAL_ACTIVITY" => {
                self.temporal.echo_local_activity = matches!(value, "1" | "true" | "yes")
            }
            "AVB_TEMPORAL_TLS" => self.temporal.tls = matches!(value, "1" | "true" | "yes"),
            "AVB_TTS_THREADS" => {
                self.tts.threads =
                    Some(usize::try_from(parse_u64()?).map_err(|e| bad(e.to_string()))?)
            }
            "AVB_TTS_LEAD_THREADS" => {
                self.tts.lead_threads =
                    Some(usize::try_from(parse_u64()?).map_err(|e| bad(e.to_string()))?)
            }
            "AVB_TTS_SESSIONS" => {
                self.tts.sessions =
                    Some(usize::try_from(parse_u64()?).map_err(|e| bad(e.to_string()))?)
            }
            "AVB_MAX_TEXT_CHARS" => {
                self.tts.max_text_chars =
                    usize::try_from(parse_u64()?).map_err(|e| bad(e.to_string()))?
            }
            "AVB_ESPEAK_PROGRAM" => self.tts.espeak_program = value.into(),
            "AVB_TTS_REWRITE_CONVS" => self.tts.rewrite_convs = parse_bool(value).map_err(bad)?,
            "AVB_MCP_ALLOWED_HOSTS" => self.mcp.allowed_hosts = split_list(value),
            "AVB_MCP_ALLOWED_ORIGINS" => self.mcp.allowed_origins = split_list(value),
            "AVB_WAIT_BUDGET_SECS" => self.mcp.wait_budget_secs = parse_u64()?,
            "AVB_MCP_CONFORMANCE_FIXTURES" => {
                self.mcp.conformance_fixtures = matches!(value, "1" | "true" | "yes")
            }
            "AVB_RATE_LIMITS_ENABLED" => {
                self.rate_limits.enabled = parse_bool(value).map_err(bad)?
            }
            "AVB_RATE_LIMITS_PER_KEY_PER_MINUTE" => {
                self.rate_limits.per_key_per_minute =
                    u32::try_from(parse_u64()?).map_err(|e| bad(e.to_string()))?
            }
            "AVB_RATE_LIMITS_BURST" => {
                self.rate_limits.burst =
                    u32::try_from(parse_u64()?).map_err(|e| bad(e.to_string()))?
            }
            "AVB_RATE_LIMITS_TOOLS" => {
                self.rate_limits.tools = RateLimitSettings::parse_tools(value).map_err(bad)?
            }
            "AVB_OIDC_ISSUER" => self.oidc().issuer = value.trim_end_matches('/').into(),
            "AVB_OIDC_AUDIENCE" => self.oidc().audience = value.into(),
            "AVB_OIDC_JWKS_URL" => {
                self.oidc().jwks_url = Some(value.into()).filter(|v: &String| !v.is_empty())
            }
            "AVB_OIDC_TENANT_CLAIM" => self.oidc().tenant_claim = value.into(),
            "AVB_OIDC_ROLE_CLAIM" => self.oidc().role_claim = value.into(),
            "AVB_OIDC_JWKS_CACHE_SECS" => self.oidc().jwks_cache_secs = parse_u64()?,
            "AVB_OIDC_JWKS_MIN_REFETCH_SECS" => self.oidc().jwks_min_refetch_secs = parse_u64()?,
            "AVB_OIDC_LEEWAY_SECS" => self.oidc().leeway_secs = parse_u64()?,
            // The conventional name wins over ours when both are set.
            "REDIS_URL" => self.redis.url = Some(value.into()).filter(|v: &String| !v.is_empty()),
            "AVB_REDIS_URL" if self.redis.url.is_none() => {
                self.redis.url = Some(value.into()).filter(|v: &String| !v.is_empty())
            }
            // Read elsewhere (paths of helper programs, the config file itself, log filter).
            _ => {}
        }
        Ok(())
    }

    /// `[auth.oidc]`, created by the first `AVB_OIDC_*` variable.
    fn oidc(&mut self) -> &mut OidcSettings {
        self.auth.oidc.get_or_insert_with(OidcSettings::default)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(oidc) = &self.auth.oidc {
            oidc.validate()
                .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        }
        self.rate_limits
            .validate()
            .and_then(|()| self.redis.validate())
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        if self.temporal.address.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "temporal.address",
                message: "must not be empty".into(),
            });
        }
        if self.temporal.namespace.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "temporal.namespace",
                message: "must not be empty".into(),
            });
        }
        if self.tts.max_text_chars == 0 {
            return Err(ConfigError::Invalid {
                key: "tts.max_text_chars",
                message: "must be at least 1".into(),
            });
        }
        if self.tts.sessions == Some(0) {
            return Err(ConfigError::Invalid {
                key: "tts.sessions",
                message: "must be at least 1".into(),
            });
        }
        if self.tts.threads == Some(0) {
            return Err(ConfigError::Invalid {
                key: "tts.threads",
                message: "must be at least 1".into(),
            });
        }
        self.billing
            .validate()
            .map_err(|(key, message)| ConfigError::InvalidKey { key, message })?;
        self.provisioning
            .validate()
            .map_err(|(key, message)| ConfigError::InvalidKey { key, message })?;
        self.devices
            .validate()
            .map_err(|(key, message)| ConfigError::InvalidKey { key, message })?;
        crate::upstream_settings::validate(&self.mcp_servers)
            .map_err(|(key, message)| ConfigError::InvalidKey { key, message })?;
        if self.mcp.upstream_check_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "mcp.upstream_check_secs",
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// Where tenants, keys and the ledger live: `database.url`, else `<data_dir>/avb.db`.
    pub fn database_url(&self) -> String {
        self.database.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("avb.db").display()
            )
        })
    }

    /// This installation's id: 12 hex digits of the SHA-256 of its database URL (processes
    /// sharing a database are one installation). Provisioned replicas carry it, so
    /// installations sharing a container engine or a machine leave each other's replicas alone.
    pub fn installation_id(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.database_url().as_bytes());
        digest[..6].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn assets_dir(&self) -> PathBuf {
        self.data_dir.join("assets")
    }

    pub fn artifacts_dir(&self) -> PathBuf {
        self.data_dir.join("artifacts")
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.http))
    }

    pub fn wait_budget(&self) -> Duration {
        Duration::from_secs(self.mcp.wait_budget_secs)
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("avb.toml");
        std::fs::write(
            &file,
            "http = \"127.0.0.1:9000\"\n[temporal]\nnamespace = \"prod\"\n",
        )
        .expect("write");
        let cfg = AvbConfig::load_from(vars(&[
            ("AVB_CONFIG", file.to_str().expect("utf8")),
            ("AVB_TEMPORAL_ADDRESS", "temporal:7233"),
            ("AVB_TEMPORAL_API_KEY", "sekret"),
        ]))
        .expect("config");
        assert_eq!(cfg.http.port(), 9000);
        assert_eq!(cfg.temporal.namespace, "prod");
        assert_eq!(cfg.temporal.address, "temporal:7233");
        assert!(!cfg.mcp.conformance_fixtures, "fixtures are off by default");
        assert!(
            !format!("{cfg:?}").contains("sekret"),
            "secrets must not be printed"
        );
    }

    #[test]
    fn conformance_fixtures_from_env_or_file() {
        let cfg = AvbConfig::load_from(vars(&[("AVB_MCP_CONFORMANCE_FIXTURES", "true")]))
            .expect("config");
        assert!(cfg.mcp.conformance_fixtures);
        let cfg: AvbConfig = toml::from_str("[mcp]\nconformance_fixtures = true\n").expect("toml");
        assert!(cfg.mcp.conformance_fixtures);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = AvbConfig::load_from(vars(&[("AVB_HTTP", "nope")])).expect_err("bad addr");
        assert!(e.to_string().contains("AVB_HTTP"), "{e}");
        let e = AvbConfig::load_from(vars(&[("AVB_TTS_THREADS", "0")])).expect_err("zero");
        assert!(e.to_string().contains("tts.threads"), "{e}");
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("avb.toml");
        std::fs::write(&file, "colour = 1\n").expect("write");
        let e = AvbConfig::load_from(vars(&[("AVB_CONFIG", file.to_str().expect("utf8"))]))
            .expect_err("unknown key");
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn rate_limits_and_redis_from_env_and_file() {
        let cfg = AvbConfig::load_from(vars(&[])).expect("defaults");
        assert!(cfg.rate_limits.enabled, "limits are on by default");
        assert!(cfg.redis.url.is_none(), "in-process buckets by default");
        let cfg = AvbConfig::load_from(vars(&[
            ("AVB_RATE_LIMITS_PER_KEY_PER_MINUTE", "120"),
            ("AVB_RATE_LIMITS_BURST", "20"),
            ("AVB_RATE_LIMITS_TOOLS", "generate_speech=6"),
            ("AVB_REDIS_URL", "redis://ours:6379"),
            ("REDIS_URL", "redis://:sekret@conventional:6379"),
        ]))
        .expect("config");
        assert_eq!(cfg.rate_limits.per_key_per_minute, 120);
        assert_eq!(cfg.rate_limits.burst, 20);
        assert_eq!(cfg.rate_limits.tool_limit("generate_speech").per_minute, 6);
        assert_eq!(
            cfg.redis.url.as_deref(),
            Some("redis://:sekret@conventional:6379"),
            "REDIS_URL wins over AVB_REDIS_URL"
        );
        assert!(!format!("{cfg:?}").contains("sekret"), "{cfg:?}");
        let cfg: AvbConfig = toml::from_str(
            "[rate_limits]\nenabled = false\n[rate_limits.tools]\nget_job = 5\n[redis]\nurl = \"redis://x\"\n",
        )
        .expect("toml");
        assert!(!cfg.rate_limits.enabled);
        assert_eq!(cfg.rate_limits.tools.get("get_job"), Some(&5));

        for (name, value, key) in [
            ("AVB_RATE_LIMITS_BURST", "0", "rate_limits.burst"),
            (
                "AVB_RATE_LIMITS_PER_KEY_PER_MINUTE",
                "0",
                "rate_limits.per_key_per_minute",
            ),
            ("AVB_RATE_LIMITS_TOOLS", "get_job=0", "get_job"),
            ("AVB_RATE_LIMITS_TOOLS", "get_job", "AVB_RATE_LIMITS_TOOLS"),
            (
                "AVB_RATE_LIMITS_ENABLED",
                "maybe",
                "AVB_RATE_LIMITS_ENABLED",
            ),
            ("AVB_REDIS_URL", "http://cache", "redis.url"),
        ] {
            let e = AvbConfig::load_from(vars(&[(name, value)])).expect_err(name);
            assert!(e.to_string().contains(key), "{name}={value}: {e}");
        }
    }

    #[test]
    fn oidc_from_env_and_file() {
        assert!(
            AvbConfig::default().auth.oidc.is_none(),
            "API keys only by default"
        );
        let cfg = AvbConfig::load_from(vars(&[
            ("AVB_OIDC_AUDIENCE", "avb"),
            ("AVB_OIDC_ISSUER", "http://127.0.0.1:8180/realms/avb/"),
        ]))
        .expect("config");
        let oidc = cfg.auth.oidc.expect("oidc");
        assert_eq!(oidc.issuer, "http://127.0.0.1:8180/realms/avb");
        assert_eq!(oidc.audience, "avb");
        assert_eq!(oidc.tenant_claim, "tenant");
        assert_eq!(oidc.role_claim, "role");
        let e = AvbConfig::load_from(vars(&[("AVB_OIDC_AUDIENCE", "avb")])).expect_err("no issuer");
        assert!(e.to_string().contains("auth.oidc.issuer"), "{e}");
        let cfg: AvbConfig = toml::from_str(
            "[auth.oidc]\nissuer = \"https://sso/realms/r\"\naudience = \"avb\"\ntenant_claim = \"org\"\n",
        )
        .expect("toml");
        let oidc = cfg.auth.oidc.expect("oidc");
        assert_eq!(oidc.tenant_claim, "org");
        assert!(oidc.jwks_url.is_none());
    }
}
