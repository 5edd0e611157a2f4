//! The end-to-end suite: one test binary (one link, one 200 MB executable instead of sixteen),
//! one module per area. Run one area with `cargo nextest run -E 'test(/^auth::/)'`.

mod support;

mod admin_cli;
mod adversarial;
mod auth;
mod billing;
mod billing_saga;
mod cli_and_assets;
mod client_approvals;
mod cluster;
mod conformance;
mod core_tasks;
mod crashes;
mod dev_supervision;
mod device_approvals;
mod devices;
mod doctor;
mod image;
mod inspector_cli;
mod jobs;
mod mcp_transports;
mod oauth_client;
mod oidc;
mod openai_speech;
mod owners;
mod plain_tools;
mod provisioning;
mod provisioning_docker;
mod python_sdk_client;
mod rate_limits;
mod replay;
mod shared_artifacts;
mod shared_sessions;
mod speech_streaming;
mod stdio_stack;
mod tls;
mod upstream;
mod upstream_sessions;
mod worker_probes;
