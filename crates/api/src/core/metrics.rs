//! Prometheus metrics: tool calls, latencies and job outcomes per tool.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub tool_calls: IntCounterVec,
    pub tool_latency: HistogramVec,
    pub job_outcomes: IntCounterVec,
    pub http_requests: IntCounterVec,
    /// Calls refused by a rate limit, by tool (or `rest`).
    pub rate_limited: IntCounterVec,
    /// Failures of the shared rate-limit backend (Redis), which then fails open.
    pub rate_limit_backend_errors: IntCounterVec,
    /// Speech audio streams being sent to clients right now.
    pub audio_streams_open: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("avb".into()), None)?;
        let tool_calls = IntCounterVec::new(
            Opts::new("tool_calls_total", "MCP tool calls by tool and outcome"),
            &["tool", "outcome"],
        )?;
        let tool_latency = HistogramVec::new(
            HistogramOpts::new("tool_call_seconds", "MCP tool call latency").buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["tool"],
        )?;
        let job_outcomes = IntCounterVec::new(
            Opts::new(
                "job_outcomes_total",
                "Durable jobs by tool and final status",
            ),
            &["tool", "status"],
        )?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "REST requests by route and status"),
            &["route", "status"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "rate_limited_total",
                "Calls refused by a rate limit, by tool (or rest)",
            ),
            &["scope"],
        )?;
        let rate_limit_backend_errors = IntCounterVec::new(
            Opts::new(
                "rate_limit_backend_errors_total",
                "Rate-limit backend failures (calls then fail open to in-process buckets)",
            ),
            &["backend"],
        )?;
        let audio_streams_open = IntGauge::with_opts(Opts::new(
            "audio_streams_open",
            "Speech audio streams being sent to clients",
        ))?;
        registry.register(Box::new(audio_streams_open.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(rate_limit_backend_errors.clone()))?;
        registry.register(Box::new(tool_calls.clone()))?;
        registry.register(Box::new(tool_latency.clone()))?;
        registry.register(Box::new(job_outcomes.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        Ok(Self {
            registry,
            tool_calls,
            tool_latency,
            job_outcomes,
            http_requests,
            rate_limited,
            rate_limit_backend_errors,
            audio_streams_open,
        })
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
