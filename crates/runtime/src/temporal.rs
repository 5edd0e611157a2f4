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

/// Connects with the configured identity, TLS (mTLS, private CA) and API key.
pub async fn connect(cfg: &TemporalConfig, identity: &str) -> Result<Client, TemporalError> {
    let opts = ConnectionOptions::new(url(cfg)?)
        .identity(format!("{identity}@{}", std::process::id()))
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

/// Registers missing keyword search attributes (idempotent; a dev server keeps them in its DB).
pub async fn ensure_search_attributes(
    client: &Client,
    namespace: &str,
    names: &[&str],
) -> Result<(), TemporalError> {
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
    let missing: HashMap<String, i32> = names
        .iter()
        .filter(|n| !have.custom_attributes.contains_key(**n))
        .map(|n| ((*n).to_string(), IndexedValueType::Keyword as i32))
        .collect();
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
