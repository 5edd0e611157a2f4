//! One way to connect to Temporal (address, namespace, TLS / API key from config) and to make sure
//! the search attributes the api filters on exist.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use temporalio_client::grpc::OperatorService;
use temporalio_client::tonic::Request;
use temporalio_client::{
    Client, ClientOptions, ClientTlsOptions, Connection, ConnectionOptions, TlsOptions, Url,
};
use temporalio_common::envconfig::{
    DataSource, LoadClientConfigProfileOptions, load_client_config_profile,
};
use temporalio_common::protos::temporal::api::enums::v1::IndexedValueType;
use temporalio_common::protos::temporal::api::operatorservice::v1::{
    AddSearchAttributesRequest, ListSearchAttributesRequest,
};

use avb_config::{Secret, TemporalConfig};

#[derive(Debug, thiserror::Error)]
pub enum TemporalError {
    #[error("Temporal address '{0}' is not valid: {1}")]
    Address(String, String),
    #[error("cannot connect to Temporal at {address}: {message}")]
    Connect { address: String, message: String },
    #[error("Temporal call failed: {0}")]
    Rpc(String),
}

fn url(cfg: &TemporalConfig) -> Result<Url, TemporalError> {
    let scheme = if cfg.uses_tls() { "https" } else { "http" };
    let raw = if cfg.address.contains("://") {
        cfg.address.clone()
    } else {
        format!("{scheme}://{}", cfg.address)
    };
    Url::from_str(&raw).map_err(|e| TemporalError::Address(cfg.address.clone(), e.to_string()))
}

/// Fills what `cfg` leaves at its defaults from the Temporal CLI's configuration file
/// (`temporal.toml`: `TEMPORAL_CONFIG_FILE`, else the user's config directory; the profile
/// `TEMPORAL_PROFILE`, else `default`), so a machine set up for the `temporal` command reaches
/// the same cluster. Variables (ours and the standard ones) win over the file.
pub fn apply_profile(cfg: &mut TemporalConfig) -> Result<(), TemporalError> {
    apply_profile_from(cfg, LoadClientConfigProfileOptions::default(), None)
}

fn apply_profile_from(
    cfg: &mut TemporalConfig,
    options: LoadClientConfigProfileOptions,
    env: Option<&std::collections::HashMap<String, String>>,
) -> Result<(), TemporalError> {
    let profile = load_client_config_profile(options, env).map_err(|e| {
        TemporalError::Address(cfg.address.clone(), format!("Temporal config profile: {e}"))
    })?;
    let defaults = TemporalConfig::default();
    if cfg.address == defaults.address
        && let Some(address) = profile.address
    {
        cfg.address = address;
    }
    if cfg.namespace == defaults.namespace
        && let Some(namespace) = profile.namespace
    {
        cfg.namespace = namespace;
    }
    if cfg.api_key.is_none() {
        cfg.api_key = profile.api_key.map(Secret::new);
    }
    let Some(tls) = profile.tls else {
        return Ok(());
    };
    if tls.disabled == Some(true) {
        return Ok(());
    }
    let path = |source: Option<DataSource>, what: &str| match source {
        Some(DataSource::Path(p)) => Ok(Some(std::path::PathBuf::from(p))),
        Some(_) => Err(TemporalError::Address(
            cfg.address.clone(),
            format!("{what}: give a file path (the *_PATH form), not inline data"),
        )),
        None => Ok(None),
    };
    let (cert, key) = (
        path(tls.client_cert, "tls client cert")?,
        path(tls.client_key, "tls client key")?,
    );
    let ca = path(tls.server_ca_cert, "tls server CA")?;
    cfg.tls = true;
    cfg.tls_client_cert = cfg.tls_client_cert.take().or(cert);
    cfg.tls_client_key = cfg.tls_client_key.take().or(key);
    cfg.tls_server_ca = cfg.tls_server_ca.take().or(ca);
    cfg.tls_server_name = cfg.tls_server_name.take().or(tls.server_name);
    Ok(())
}

/// The TLS of the connection: a private CA, the server's name, and a client certificate for
/// mTLS, as configured; `None` for plain connections. A file that cannot be read is named.
fn tls_options(cfg: &TemporalConfig) -> Result<Option<TlsOptions>, TemporalError> {
    if !cfg.uses_tls() {
        return Ok(None);
    }
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).map_err(|e| {
            TemporalError::Address(
                cfg.address.clone(),
                format!("{what} {}: {e}", path.display()),
            )
        })
    };
    let ca = match &cfg.tls_server_ca {
        Some(p) => Some(read(p, "TEMPORAL_TLS_SERVER_CA_CERT_PATH")?),
        None => None,
    };
    let client = match (&cfg.tls_client_cert, &cfg.tls_client_key) {
        (Some(cert), Some(key)) => Some(
            ClientTlsOptions::builder()
                .client_cert(read(cert, "TEMPORAL_TLS_CLIENT_CERT_PATH")?)
                .client_private_key(read(key, "TEMPORAL_TLS_CLIENT_KEY_PATH")?)
                .build(),
        ),
        _ => None,
    };
    Ok(Some(
        TlsOptions::builder()
            .maybe_server_root_ca_cert(ca)
            .maybe_domain(cfg.tls_server_name.clone())
            .maybe_client_tls_options(client)
            .build(),
    ))
}

/// This machine's name: the kernel's, else `HOSTNAME`, else `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The identity Temporal shows for a process (pollers in the UI, `identity` of each
/// activity attempt): `<role>@<hostname>:<pid>`, so processes of many machines (or of
/// containers, all pid 1) tell apart.
pub fn identity(role: &str) -> String {
    format!("{role}@{}:{}", hostname(), std::process::id())
}

/// Connects with the configured identity, TLS (mTLS, private CA) and API key.
pub async fn connect(cfg: &TemporalConfig, identity: &str) -> Result<Client, TemporalError> {
    let opts = ConnectionOptions::new(url(cfg)?)
        .identity(self::identity(identity))
        .connect_timeout(Duration::from_secs(5))
        .maybe_api_key(cfg.api_key.clone().map(Secret::into_inner))
        .maybe_tls_options(tls_options(cfg)?)
        .build();
    let conn = Connection::connect(opts)
        .await
        .map_err(|e| TemporalError::Connect {
            address: cfg.address.clone(),
            message: e.to_string(),
        })?;
    Client::new(conn, ClientOptions::new(cfg.namespace.clone()).build()).map_err(|e| {
        TemporalError::Connect {
            address: cfg.address.clone(),
            message: e.to_string(),
        }
    })
}

/// Which of `names` the namespace has not registered as search attributes (read only).
pub async fn missing_search_attributes(
    client: &Client,
    namespace: &str,
    names: &[&str],
) -> Result<Vec<String>, TemporalError> {
    let mut raw = client.clone();
    let have = OperatorService::list_search_attributes(
        &mut raw,
        Request::new(ListSearchAttributesRequest {
            namespace: namespace.to_string(),
        }),
    )
    .await
    .map_err(|e| TemporalError::Rpc(format!("listing search attributes: {}", e.message())))?
    .into_inner();
    Ok(names
        .iter()
        .filter(|n| !have.custom_attributes.contains_key(**n))
        .map(|n| (*n).to_string())
        .collect())
}

/// Registers missing keyword search attributes (idempotent; a dev server keeps them in its DB).
pub async fn ensure_search_attributes(
    client: &Client,
    namespace: &str,
    names: &[&str],
) -> Result<(), TemporalError> {
    let missing: HashMap<String, i32> = missing_search_attributes(client, namespace, names)
        .await?
        .into_iter()
        .map(|n| (n, IndexedValueType::Keyword as i32))
        .collect();
    let mut raw = client.clone();
    if missing.is_empty() {
        return Ok(());
    }
    tracing::info!(attributes = ?missing.keys().collect::<Vec<_>>(), "registering search attributes");
    match OperatorService::add_search_attributes(
        &mut raw,
        Request::new(AddSearchAttributesRequest {
            search_attributes: missing,
            namespace: namespace.to_string(),
        }),
    )
    .await
    {
        Ok(_) => Ok(()),
        // Another process registered them first.
        Err(status) if status.code() == temporalio_client::tonic::Code::AlreadyExists => Ok(()),
        Err(status) => Err(TemporalError::Rpc(format!(
            "registering search attributes: {}",
            status.message()
        ))),
    }
}

#[cfg(test)]
mod profile_tests {
    use super::*;

    #[test]
    fn a_temporal_toml_profile_fills_what_variables_leave_unset() {
        let toml = br#"
[profile.default]
address = "default.example:7233"

[profile.prod]
address = "prod.example:7233"
namespace = "payments"
[profile.prod.tls]
client_cert_path = "/etc/temporal/client.pem"
client_key_path = "/etc/temporal/client.key"
server_name = "prod.internal"
"#;
        let options = || {
            LoadClientConfigProfileOptions::builder()
                .config_source(DataSource::Data(toml.to_vec()))
                .build()
        };
        let env: std::collections::HashMap<String, String> =
            [("TEMPORAL_PROFILE".to_string(), "prod".to_string())].into();
        let mut cfg = TemporalConfig::default();
        apply_profile_from(&mut cfg, options(), Some(&env)).expect("profile");
        assert_eq!(cfg.address, "prod.example:7233");
        assert_eq!(cfg.namespace, "payments");
        assert!(cfg.uses_tls());
        assert_eq!(cfg.tls_server_name.as_deref(), Some("prod.internal"));
        assert_eq!(
            cfg.tls_client_key.as_deref(),
            Some(std::path::Path::new("/etc/temporal/client.key"))
        );
        // A variable that set the address wins over the file.
        let mut cfg = TemporalConfig {
            address: "explicit:7233".into(),
            ..TemporalConfig::default()
        };
        apply_profile_from(&mut cfg, options(), Some(&env)).expect("profile");
        assert_eq!(cfg.address, "explicit:7233");
        // An unknown profile is an error naming it.
        let env: std::collections::HashMap<String, String> =
            [("TEMPORAL_PROFILE".to_string(), "nope".to_string())].into();
        let e = apply_profile_from(&mut TemporalConfig::default(), options(), Some(&env))
            .expect_err("unknown profile");
        assert!(e.to_string().contains("nope"), "{e}");
    }
}

#[cfg(test)]
mod identity_tests {
    #[test]
    fn an_identity_names_the_machine_and_the_process() {
        let id = super::identity("avb-worker");
        let host = super::hostname();
        assert!(!host.is_empty() && !host.contains('\n'), "{host:?}");
        assert_eq!(id, format!("avb-worker@{host}:{}", std::process::id()));
    }
}
