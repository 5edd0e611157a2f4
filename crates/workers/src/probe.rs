//! `avb worker --http ADDR`: what an orchestrator asks a worker process.
//!
//! - `GET /healthz`: the process answers (liveness).
//! - `GET /readyz`: every requested queue has a worker polling and Temporal answers (200, else
//!   503 with the reason); checked at most once a second, each answer within a second.
//! - `GET /metrics`: the Temporal SDK's worker metrics (task slots, poll and schedule-to-start
//!   latencies, activity outcomes, per task queue) in Prometheus text, plus `avb_worker_ready`.
//!
//! The SDK exports its metrics on a loopback port of its own ([`sdk_metrics`]); `/metrics` reads
//! them from there, so a worker has one port to scrape and probe.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use temporalio_client::Client;
use temporalio_client::grpc::WorkflowService;
use temporalio_common::protos::temporal::api::workflowservice::v1::GetSystemInfoRequest;
use temporalio_common::telemetry::metrics::CoreMeter;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long a readiness answer is reused: probes of several orchestrator components do not
/// each cost a Temporal round trip.
const READY_CACHE: Duration = Duration::from_secs(1);
/// A readiness check's whole budget (Kubernetes' default probe timeout is 1 s).
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// Starts the SDK's Prometheus exporter on a loopback port of its own; the meter goes into the
/// worker runtime's telemetry options.
pub fn sdk_metrics() -> anyhow::Result<(Arc<dyn CoreMeter>, SocketAddr)> {
    use temporalio_common::telemetry::{
        PrometheusExporterOptions, start_prometheus_metric_exporter,
    };
    let options = PrometheusExporterOptions::builder()
        .socket_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
        .counters_total_suffix(true)
        .use_seconds_for_durations(true)
        .build();
    let started = start_prometheus_metric_exporter(options)?;
    Ok((started.meter, started.bound_addr))
}

/// What the probe endpoints read.
pub struct WorkerProbe {
    pub client: Client,
    pub temporal_address: String,
    pub queues: Vec<&'static str>,
    /// Set once every requested queue's worker is created and polling starts.
    pub started: Arc<AtomicBool>,
    /// Where the SDK's exporter listens ([`sdk_metrics`]).
    pub sdk_metrics: SocketAddr,
    last: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
}

#[derive(Clone, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub queues: Vec<&'static str>,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl WorkerProbe {
    pub fn new(
        client: Client,
        temporal_address: String,
        queues: Vec<&'static str>,
        started: Arc<AtomicBool>,
        sdk_metrics: SocketAddr,
    ) -> Self {
        Self {
            client,
            temporal_address,
            queues,
            started,
            sdk_metrics,
            last: tokio::sync::Mutex::default(),
        }
    }

    async fn readiness(&self) -> Readiness {
        let mut last = self.last.lock().await;
        if let Some((at, r)) = last.as_ref()
            && at.elapsed() < READY_CACHE
        {
            return r.clone();
        }
        let reason = if !self.started.load(Ordering::Acquire) {
            Some("the workers are starting (loading the TTS model, connecting)".to_string())
        } else {
            let mut raw = self.client.clone();
            match tokio::time::timeout(
                CHECK_TIMEOUT,
                WorkflowService::get_system_info(
                    &mut raw,
                    tonic::Request::new(GetSystemInfoRequest {}),
                ),
            )
            .await
            {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!(
                    "Temporal at {}: {}",
                    self.temporal_address,
                    e.message()
                )),
                Err(_) => Some(format!(
                    "Temporal at {} did not answer within {CHECK_TIMEOUT:?}",
                    self.temporal_address
                )),
            }
        };
        let r = Readiness {
            ready: reason.is_none(),
            queues: self.queues.clone(),
            reason,
        };
        *last = Some((Instant::now(), r.clone()));
        r
    }
}

pub fn router(probe: Arc<WorkerProbe>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probe)
}

async fn readyz(State(probe): State<Arc<WorkerProbe>>) -> impl IntoResponse {
    let r = probe.readiness().await;
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r))
}

async fn metrics(State(probe): State<Arc<WorkerProbe>>) -> impl IntoResponse {
    let ready = probe.readiness().await.ready;
    let mut text = format!(
        "# HELP avb_worker_ready Whether this worker process is ready (its queues poll and \
         Temporal answers).\n# TYPE avb_worker_ready gauge\navb_worker_ready {}\n",
        u8::from(ready)
    );
    match read_sdk_metrics(probe.sdk_metrics).await {
        Ok(sdk) => text.push_str(&sdk),
        Err(e) => {
            tracing::warn!(error = %e, "SDK metrics unreadable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [("content-type", "text/plain; charset=utf-8")],
                format!("the Temporal SDK's metrics exporter does not answer: {e}\n"),
            );
        }
    }
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}

/// The exporter's `/metrics` body (a plain HTTP/1.0 GET on loopback).
async fn read_sdk_metrics(addr: SocketAddr) -> std::io::Result<String> {
    let read = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        conn.read_to_end(&mut response).await?;
        let response = String::from_utf8_lossy(&response).into_owned();
        match response.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200") => {
                Ok(body.to_string())
            }
            _ => Err(std::io::Error::other("unexpected answer")),
        }
    };
    tokio::time::timeout(CHECK_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("timed out")))
}
