//! One way to connect to Temporal (address, namespace, TLS / API key from config) and to make sure
//! the search attributes the api filters on exist.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use temporalio_client::grpc::OperatorService;
use temporalio_client::tonic::Request;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, TlsOptions, Url};
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
    let scheme = if cfg.tls || cfg.api_key.is_some() {
        "https"
    } else {
        "http"
    };
    let raw = if cfg.address.contains("://") {
        cfg.address.clone()
    } else {
        format!("{scheme}://{}", cfg.address)
    };
    Url::from_str(&raw).map_err(|e| TemporalError::Address(cfg.address.clone(), e.to_string()))
}

/// Connects with the configured identity, TLS and API key.
pub async fn connect(cfg: &TemporalConfig, identity: &str) -> Result<Client, TemporalError> {
    let opts = ConnectionOptions::new(url(cfg)?)
        .identity(format!("{identity}@{}", std::process::id()))
        .connect_timeout(Duration::from_secs(5))
        .maybe_api_key(cfg.api_key.clone().map(Secret::into_inner))
        .maybe_tls_options(cfg.tls.then(TlsOptions::default))
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
