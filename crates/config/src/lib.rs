//! Configuration: defaults → optional TOML file (`AVB_CONFIG`) → environment variables,
//! validated once at start. Each section (`[temporal]`, `[tts]`, …) is a module owning its
//! struct, defaults, validation and table of variables (`ENV`); this module puts them together.
//! The variables are data, not code, so that one parser serves each kind of value, the README
//! can be checked against them, and an `AVB_*` variable no table knows (most likely a typo) is
//! reported instead of ignored. Secrets are `Secret`s: never printed.

pub mod artifacts;
pub mod auth;
pub mod billing;
pub mod database;
pub mod devices;
mod env;
pub mod mcp;
pub mod mcp_servers;
pub mod oidc;
pub mod provisioning;
pub mod rate_limits;
pub mod redis;
mod secret;
pub mod temporal;
pub mod tenants;
pub mod tls;
pub mod tts;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use artifacts::{ArtifactLocation, ArtifactSettings};
pub use auth::AuthSettings;
pub use billing::{BillingSettings, Price};
pub use database::DatabaseSettings;
pub use devices::{ApprovalMode, ApprovalRule, Approver, DeviceSettings, PolicyView};
pub use env::EnvVar;
pub use mcp::McpSettings;
pub use mcp_servers::{UpstreamMode, UpstreamServer, UpstreamTransport};
pub use oidc::OidcSettings;
pub use provisioning::{ProvisioningSettings, TemplateSettings};
pub use rate_limits::{Limit, RateLimitSettings};
pub use redis::RedisSettings;
pub use secret::Secret;
pub use temporal::TemporalConfig;
pub use tenants::{EVERY_TENANT, LOCAL_TENANT, ServedTenants};
pub use tls::TlsSettings;
pub use tts::TtsSettings;

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

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AvbConfig {
    /// Assets, artifacts, the dev server's database (`AVB_DATA_DIR`, default `./data`).
    pub data_dir: PathBuf,
    /// HTTP listen address of the api (`AVB_HTTP`).
    pub http: SocketAddr,
    /// Public base URL used in links (`AVB_PUBLIC_URL`); defaults to `http://<http>`.
    pub public_url: Option<String>,
    /// This installation's name (`AVB_INSTALLATION`): provisioned replicas carry it, so
    /// installations sharing a container engine or a machine leave each other's alone. Unset:
    /// derived from the database's location (never from its credentials).
    pub installation: Option<String>,
    pub temporal: TemporalConfig,
    pub tts: TtsSettings,
    pub mcp: McpSettings,
    /// Token buckets per API key and tool (`rate_limits`).
    pub rate_limits: RateLimitSettings,
    /// Shared state across api processes (rate limits), when `REDIS_URL` is set.
    pub redis: RedisSettings,
    /// Where audio and other large results are kept (`artifacts.url`).
    pub artifacts: ArtifactSettings,
    /// Whom outbound https calls trust besides the platform's roots.
    pub tls: TlsSettings,
    pub auth: AuthSettings,
    pub database: DatabaseSettings,
    pub billing: BillingSettings,
    pub provisioning: ProvisioningSettings,
    pub devices: DeviceSettings,
    /// Upstream MCP servers mounted beside our tools (`mcp_servers`).
    pub mcp_servers: BTreeMap<String, UpstreamServer>,
    /// The file this config came from (`AVB_CONFIG`): `[mcp_servers]` is re-read from it while
    /// running.
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
    /// What loading found wrong but not fatal (unknown `AVB_*` variables), one sentence each.
    /// `load_from` has logged them already; they are kept for callers that show them elsewhere.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl Default for AvbConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            installation: None,
            temporal: TemporalConfig::default(),
            tts: TtsSettings::default(),
            mcp: McpSettings::default(),
            rate_limits: RateLimitSettings::default(),
            redis: RedisSettings::default(),
            artifacts: ArtifactSettings::default(),
            tls: TlsSettings::default(),
            auth: AuthSettings::default(),
            database: DatabaseSettings::default(),
            billing: BillingSettings::default(),
            provisioning: ProvisioningSettings::default(),
            devices: DeviceSettings::default(),
            mcp_servers: BTreeMap::new(),
            source_file: None,
            warnings: Vec::new(),
        }
    }
}

/// The top-level keys' variables.
pub const ENV: &[EnvVar<AvbConfig>] = &[
    EnvVar::new(
        "AVB_DATA_DIR",
        "assets, artifacts and the default SQLite database (default ./data)",
        |c, v| {
            c.data_dir = v.into();
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_HTTP",
        "HTTP listen address of the api (default 127.0.0.1:8080)",
        |c, v| {
            c.http = v
                .parse()
                .map_err(|e: std::net::AddrParseError| e.to_string())?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_INSTALLATION",
        "this installation's name on provisioned replicas (default derived from the database's location)",
        |c, v| {
            c.installation = env::non_empty(v);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_PUBLIC_URL",
        "public base URL used in links (default http://<AVB_HTTP>)",
        |c, v| {
            c.public_url = Some(v.trim_end_matches('/').into());
            Ok(())
        },
    ),
];

/// `url` without the `user:password@` part of its authority (a SQLite path has none).
fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{tail}")
}

/// `AVB_*` variables read outside the loader, by `avb` or by the scripts and test suites that
/// start it: known, so never reported as unknown. (name, doc) like the sections' tables.
pub const READ_ELSEWHERE: &[(&str, &str)] = &[
    ("AVB_CONFIG", "the TOML file read before the variables"),
    ("AVB_LOG", "log filter (default info; RUST_LOG when unset)"),
    ("AVB_LOG_FORMAT", "json: one JSON object per log line"),
    ("AVB_API_KEY", "the API key `avb mcp` (stdio) acts with"),
    (
        "AVB_TEMPORAL_BIN",
        "the temporal program `avb dev` starts a dev server with",
    ),
    (
        "AVB_CACHE_DIR",
        "downloads of avb dev and the deploy scripts (default ~/.cache/avb)",
    ),
    (
        "AVB_TEST_DATABASE",
        "tests: sqlite or postgres for the end-to-end tests' store",
    ),
    ("AVB_PG_BIN", "tests: where initdb and postgres are"),
    (
        "AVB_RECORD_HISTORIES",
        "tests: set, the replay tests rewrite tests/histories",
    ),
    (
        "AVB_UPDATE_SNAPSHOTS",
        "tests: set, the tool schema snapshot is rewritten",
    ),
    (
        "AVB_CONFORMANCE_OUT",
        "deploy/conformance.sh: results directory",
    ),
    (
        "AVB_CONFORMANCE_EXPECTED",
        "deploy/conformance.sh: the expected-failures file",
    ),
    (
        "AVB_CONFORMANCE_SCENARIOS",
        "deploy/conformance.sh: the scenarios to run",
    ),
    (
        "AVB_CONFORMANCE_TIMEOUT",
        "deploy/conformance.sh: seconds per scenario",
    ),
];

/// A section's table and where in `AvbConfig` it applies, behind one object-safe face so that
/// the sections, whatever their types, are one list.
trait Section: Sync {
    fn vars(&self) -> Vec<(&'static str, &'static str)>;
    /// `None` when the variable is not this section's.
    fn apply(&self, config: &mut AvbConfig, name: &str, value: &str) -> Option<Result<(), String>>;
}

struct In<T: 'static> {
    table: &'static [EnvVar<T>],
    /// Called only for one of the table's variables, so it may create the section (`[auth.oidc]`).
    field: fn(&mut AvbConfig) -> &mut T,
}

impl<T: 'static> Section for In<T> {
    fn vars(&self) -> Vec<(&'static str, &'static str)> {
        self.table.iter().map(|v| (v.name, v.doc)).collect()
    }

    fn apply(&self, config: &mut AvbConfig, name: &str, value: &str) -> Option<Result<(), String>> {
        let var = self.table.iter().find(|v| v.name == name)?;
        Some((var.set)((self.field)(config), value))
    }
}

const SECTIONS: &[&dyn Section] = &[
    &In {
        table: ENV,
        field: |c| c,
    },
    &In {
        table: temporal::ENV,
        field: |c| &mut c.temporal,
    },
    &In {
        table: tts::ENV,
        field: |c| &mut c.tts,
    },
    &In {
        table: mcp::ENV,
        field: |c| &mut c.mcp,
    },
    &In {
        table: rate_limits::ENV,
        field: |c| &mut c.rate_limits,
    },
    &In {
        table: redis::ENV,
        field: |c| &mut c.redis,
    },
    &In {
        table: artifacts::ENV,
        field: |c| &mut c.artifacts,
    },
    &In {
        table: tls::ENV,
        field: |c| &mut c.tls,
    },
    &In {
        table: auth::ENV,
        field: |c| &mut c.auth,
    },
    &In {
        table: oidc::ENV,
        field: |c| c.auth.oidc.get_or_insert_with(OidcSettings::default),
    },
    &In {
        table: database::ENV,
        field: |c| &mut c.database,
    },
    &In {
        table: billing::ENV,
        field: |c| &mut c.billing,
    },
    &In {
        table: provisioning::ENV,
        field: |c| &mut c.provisioning,
    },
    &In {
        table: devices::ENV,
        field: |c| &mut c.devices,
    },
];

/// Every variable the loader applies, section by section: (name, one-line doc).
pub fn env_vars() -> impl Iterator<Item = (&'static str, &'static str)> {
    SECTIONS.iter().flat_map(|s| s.vars())
}

/// A sentence for each `AVB_*` name that no section reads and nothing else is known to, with
/// the nearest known name when it looks like a typo of one.
fn unknown_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let known: Vec<&str> = env_vars()
        .map(|(name, _)| name)
        .chain(READ_ELSEWHERE.iter().map(|(name, _)| *name))
        .collect();
    names
        .into_iter()
        .filter(|name| name.starts_with("AVB_") && !known.contains(name))
        .map(|name| match env::nearest(name, known.iter().copied()) {
            Some(near) => {
                format!("unknown environment variable {name} is ignored; did you mean {near}?")
            }
            None => format!("unknown environment variable {name} is ignored"),
        })
        .collect()
}

impl AvbConfig {
    /// Defaults, then the file named by `AVB_CONFIG` (if set), then `AVB_*` variables.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(std::env::vars())
    }

    /// `load` from the given variables. Unknown `AVB_*` variables are logged as warnings, before
    /// anything can fail (a misspelt name may be why), and kept in `warnings`.
    pub fn load_from(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let all: Vec<(String, String)> = vars.into_iter().collect();
        // `${VAR}` in [mcp_servers] may name any variable (a token, a port).
        let lookup = |name: &str| all.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let vars: Vec<(String, String)> = all.iter().filter(|(k, _)| is_ours(k)).cloned().collect();
        let warnings = unknown_variables(vars.iter().map(|(k, _)| k.as_str()));
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
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
        mcp_servers::expand_env(&mut cfg.mcp_servers, &lookup)
            .map_err(|(key, message)| ConfigError::InvalidKey { key, message })?;
        cfg.validate()?;
        cfg.warnings = warnings;
        Ok(cfg)
    }

    /// `[mcp_servers]` as the config file says now (variables expanded from the process
    /// environment, validated); the error names the file and the key.
    pub fn reload_mcp_servers(
        path: &Path,
    ) -> Result<BTreeMap<String, UpstreamServer>, ConfigError> {
        let mut servers = Self::from_file(path)?.mcp_servers;
        let lookup = |name: &str| std::env::var(name).ok();
        mcp_servers::expand_env(&mut servers, &lookup)
            .and_then(|()| mcp_servers::validate(&servers))
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

    /// Applies one variable through the section whose table has it; others are left alone
    /// (`unknown_variables` has reported the `AVB_*` ones).
    fn apply_env(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let applied = SECTIONS
            .iter()
            .find_map(|section| section.apply(self, name, value));
        match applied {
            Some(Err(message)) => Err(ConfigError::Env {
                name: name.into(),
                value: value.into(),
                message,
            }),
            Some(Ok(())) | None => Ok(()),
        }
    }

    /// Every section's checks, in a fixed order: the first failure is the one reported.
    fn validate(&self) -> Result<(), ConfigError> {
        let fixed = |(key, message)| ConfigError::Invalid { key, message };
        let built = |(key, message)| ConfigError::InvalidKey { key, message };
        self.auth.validate().map_err(fixed)?;
        self.rate_limits.validate().map_err(fixed)?;
        self.redis.validate().map_err(fixed)?;
        self.artifacts.validate().map_err(fixed)?;
        self.temporal.validate().map_err(fixed)?;
        self.tts.validate().map_err(fixed)?;
        self.billing.validate().map_err(built)?;
        self.provisioning.validate().map_err(built)?;
        self.devices.validate().map_err(built)?;
        mcp_servers::validate(&self.mcp_servers).map_err(built)?;
        self.mcp.validate().map_err(fixed)?;
        if let Some(name) = &self.installation
            && !(name.len() <= 40
                && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(ConfigError::Invalid {
                key: "installation",
                message: format!(
                    "{name:?}: 1-40 letters, digits, - or _, starting with a letter or digit \
                     (it names container labels and a Docker network)"
                ),
            });
        }
        Ok(())
    }

    /// Where tenants, keys and the ledger live: `database.url`, else `<data_dir>/avb.db`.
    pub fn database_url(&self) -> String {
        self.database.url.as_ref().map_or_else(
            || {
                format!(
                    "sqlite://{}?mode=rwc",
                    self.data_dir.join("avb.db").display()
                )
            },
            |url| url.expose().clone(),
        )
    }

    /// This installation's id: `installation` when set, else 12 hex digits of the SHA-256 of
    /// its database URL without credentials (processes sharing a database are one
    /// installation, and changing the database password does not turn its replicas into
    /// strangers). Provisioned replicas carry it.
    pub fn installation_id(&self) -> String {
        use sha2::Digest;
        if let Some(name) = &self.installation {
            return name.clone();
        }
        let url = without_credentials(&self.database_url());
        let digest = sha2::Sha256::digest(url.as_bytes());
        digest[..6].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn assets_dir(&self) -> PathBuf {
        self.data_dir.join("assets")
    }

    /// Where artifacts are kept: `artifacts.url`, else the database when it is PostgreSQL
    /// (hosts sharing the database share artifacts), else `<data_dir>/artifacts`.
    pub fn artifact_location(&self) -> ArtifactLocation {
        match self.artifacts.location() {
            Ok(Some(location)) => location,
            // `validate` refused a bad URL at load; a config built in code falls back too.
            Ok(None) | Err(_) => {
                let url = self.database_url();
                if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                    ArtifactLocation::Database
                } else {
                    ArtifactLocation::Directory(self.data_dir.join("artifacts"))
                }
            }
        }
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

/// Variables named by convention rather than under our prefix: the database and Redis URLs,
/// and the Temporal SDKs' own connection variables.
const CONVENTIONAL: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS",
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_SERVER_NAME",
];

/// Whether the loader reads `name`: ours (`AVB_*`) or a conventional one.
fn is_ours(name: &str) -> bool {
    name.starts_with("AVB_") || CONVENTIONAL.contains(&name)
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
    fn temporal_reads_the_sdks_standard_variables_over_our_aliases() {
        let cfg = AvbConfig::load_from(vars(&[
            ("AVB_TEMPORAL_ADDRESS", "ours:7233"),
            ("TEMPORAL_ADDRESS", "cluster.example:7233"),
            ("TEMPORAL_NAMESPACE", "prod"),
            ("TEMPORAL_TLS_CLIENT_CERT_PATH", "/etc/avb/client.pem"),
            ("TEMPORAL_TLS_CLIENT_KEY_PATH", "/etc/avb/client.key"),
            ("TEMPORAL_TLS_SERVER_NAME", "temporal.internal"),
        ]))
        .expect("config");
        assert_eq!(cfg.temporal.address, "cluster.example:7233");
        assert_eq!(cfg.temporal.namespace, "prod");
        assert!(cfg.temporal.uses_tls(), "a client certificate means TLS");
        assert!(!AvbConfig::default().temporal.uses_tls());
        let half = AvbConfig::load_from(vars(&[(
            "TEMPORAL_TLS_CLIENT_CERT_PATH",
            "/etc/avb/client.pem",
        )]));
        assert!(half.is_err(), "a certificate without its key is refused");
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
    fn artifacts_follow_the_database_unless_a_url_says_where() {
        let local = AvbConfig::load_from(vars(&[("AVB_DATA_DIR", "/srv/avb")])).expect("sqlite");
        assert_eq!(
            local.artifact_location(),
            ArtifactLocation::Directory("/srv/avb/artifacts".into())
        );
        let shared = AvbConfig::load_from(vars(&[("DATABASE_URL", "postgres://avb:pw@db/avb")]))
            .expect("pg");
        assert_eq!(shared.artifact_location(), ArtifactLocation::Database);
        let s3 = AvbConfig::load_from(vars(&[
            ("DATABASE_URL", "postgres://avb:pw@db/avb"),
            ("AVB_ARTIFACTS_URL", "s3://avb-audio/eu"),
        ]))
        .expect("s3");
        assert_eq!(
            s3.artifact_location(),
            ArtifactLocation::S3 {
                bucket: "avb-audio".into(),
                prefix: "eu".into()
            }
        );
        let err = AvbConfig::load_from(vars(&[("AVB_ARTIFACTS_URL", "ftp://x")]))
            .expect_err("unknown kind");
        assert!(err.to_string().contains("artifacts.url"), "{err}");
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

    #[test]
    fn booleans_accept_any_case_and_on_or_off() {
        let cfg = AvbConfig::load_from(vars(&[
            ("AVB_TEMPORAL_TLS", "TRUE"),
            ("AVB_TEMPORAL_EAGER_START", "off"),
            ("AVB_ECHO_LOCAL_ACTIVITY", "No"),
            ("AVB_MCP_CONFORMANCE_FIXTURES", "On"),
            ("AVB_AUTH_REQUIRED", "0"),
            ("AVB_BILLING_ENABLED", "FALSE"),
            ("AVB_RATE_LIMITS_ENABLED", "yes"),
            ("AVB_TTS_REWRITE_CONVS", "false"),
        ]))
        .expect("config");
        assert!(cfg.temporal.tls, "TRUE is true");
        assert!(!cfg.temporal.eager_start, "off is false");
        assert!(!cfg.temporal.echo_local_activity, "No is false");
        assert!(cfg.mcp.conformance_fixtures, "On is true");
        assert!(!cfg.auth.required);
        assert!(!cfg.billing.enabled);
        assert!(cfg.rate_limits.enabled);
        assert!(!cfg.tts.rewrite_convs);
    }

    #[test]
    fn a_bad_boolean_names_the_variable_the_value_and_the_accepted_words() {
        for name in [
            "AVB_TEMPORAL_TLS",
            "AVB_TEMPORAL_EAGER_START",
            "AVB_ECHO_LOCAL_ACTIVITY",
            "AVB_MCP_CONFORMANCE_FIXTURES",
        ] {
            let e = AvbConfig::load_from(vars(&[(name, "maybe")])).expect_err(name);
            let shown = e.to_string();
            assert!(
                matches!(e, ConfigError::Env { .. })
                    && shown.contains(name)
                    && shown.contains("\"maybe\"")
                    && ["1", "true", "yes", "on", "0", "false", "no", "off"]
                        .iter()
                        .all(|w| shown.contains(w)),
                "{shown}"
            );
        }
    }

    #[test]
    fn unknown_avb_variables_warn_with_the_nearest_known_name() {
        let cfg = AvbConfig::load_from(vars(&[
            ("AVB_TEMPRAL_ADDRESS", "temporal:7233"),
            ("AVB_COLOUR", "red"),
            ("AVB_LOG", "debug"),
            ("AVB_CONFORMANCE_TIMEOUT", "60"),
            ("AVB_DATA_DIR", "/srv/avb"),
            ("HOME", "/root"),
            ("DATABASE_URL", "sqlite://x.db"),
        ]))
        .expect("unknown variables warn, they do not refuse the start");
        assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
        assert!(
            cfg.warnings[0].contains("AVB_TEMPRAL_ADDRESS")
                && cfg.warnings[0].contains("did you mean AVB_TEMPORAL_ADDRESS?"),
            "{}",
            cfg.warnings[0]
        );
        assert!(
            cfg.warnings[1].contains("AVB_COLOUR") && !cfg.warnings[1].contains("did you mean"),
            "{}",
            cfg.warnings[1]
        );
        assert_eq!(
            cfg.temporal.address, "127.0.0.1:7233",
            "a typo sets nothing"
        );
        assert!(
            AvbConfig::load_from(vars(&[("AVB_HTTP", "127.0.0.1:1")]))
                .expect("config")
                .warnings
                .is_empty()
        );
    }

    #[test]
    fn every_variable_is_listed_once_with_one_line_of_doc() {
        let mut names: Vec<&str> = env_vars()
            .map(|(name, _)| name)
            .chain(READ_ELSEWHERE.iter().map(|(name, _)| *name))
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a variable is listed twice");
        for (name, doc) in env_vars() {
            assert!(
                is_ours(name),
                "{name}: the loader only reads AVB_* and the conventional names"
            );
            assert!(
                !doc.is_empty() && !doc.contains('\n'),
                "{name}: one line of doc"
            );
        }
    }

    #[test]
    fn the_installation_id_never_depends_on_credentials() {
        let with = |url: &str| AvbConfig {
            database: DatabaseSettings {
                url: Some(Secret::new(url.to_string())),
            },
            ..AvbConfig::default()
        };
        let a = with("postgres://avb:old-password@db.internal:5432/avb").installation_id();
        let b = with("postgres://avb:new-password@db.internal:5432/avb").installation_id();
        let other = with("postgres://avb:old-password@db2.internal:5432/avb").installation_id();
        assert_eq!(a, b, "a new password keeps the installation");
        assert_ne!(a, other, "another database is another installation");
        assert_eq!(a.len(), 12);
        let named = AvbConfig {
            installation: Some("prod-eu".into()),
            ..with("postgres://x@y/z")
        };
        assert_eq!(named.installation_id(), "prod-eu");
        assert_eq!(
            without_credentials("postgres://u:p@h:1/d?sslmode=require"),
            "postgres://h:1/d?sslmode=require"
        );
        assert_eq!(
            without_credentials("sqlite:///srv/avb.db?mode=rwc"),
            "sqlite:///srv/avb.db?mode=rwc"
        );
    }

    #[test]
    fn every_variable_is_in_the_readme() {
        let readme = include_str!("../../../README.md");
        // A whole-word match: AVB_LOG must not pass on the strength of AVB_LOG_FORMAT.
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let missing: Vec<&str> = env_vars()
            .chain(READ_ELSEWHERE.iter().copied())
            .map(|(name, _)| name)
            .filter(|name| {
                !readme.match_indices(name).any(|(at, _)| {
                    !word(readme[..at].chars().next_back())
                        && !word(readme[at + name.len()..].chars().next())
                })
            })
            .collect();
        assert!(missing.is_empty(), "README.md does not mention {missing:?}");
    }
}
