//! Activities: one module per family. The engines are plain library code; the Temporal activity
//! wrappers translate their errors into retryable / non-retryable failures.

pub mod billing_activity;
pub mod device_activity;
pub mod echo_activity;
pub mod provisioning_activity;
pub mod reconcile_activity;
pub mod server_billing;
pub mod server_events;
pub mod speech_activity;
pub mod tts;
pub mod upstream_activity;
