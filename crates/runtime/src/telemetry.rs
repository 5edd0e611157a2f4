//! One telemetry init for every binary mode: structured logs (JSON with `AVB_LOG_FORMAT=json`),
//! filter from `AVB_LOG` / `RUST_LOG`, Temporal SDK targets included so workers are not silent.

use tracing_subscriber::EnvFilter;

/// rmcp logs session ids at info; a session id is the handle to someone's session, so rmcp
/// speaks only of warnings.
const DEFAULT_FILTER: &str =
    "info,temporalio_sdk_core=warn,temporalio_sdk=info,temporalio_client=warn,ort=warn,rmcp=warn";

/// Installs the global subscriber, writing to stderr (stdout belongs to the stdio transport).
pub fn init() {
    let filter = std::env::var("AVB_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .map(EnvFilter::new)
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let result = if std::env::var("AVB_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
