//! One telemetry init for every binary mode: structured logs (JSON with `AVB_LOG_FORMAT=json`),
//! filter from `AVB_LOG` / `RUST_LOG`, Temporal SDK targets included so workers are not silent.

use tracing_subscriber::EnvFilter;

/// rmcp logs session ids at info; a session id is the handle to someone's session, so rmcp
/// speaks only of warnings.
const DEFAULT_FILTER: &str =
    "info,temporalio_sdk_core=warn,temporalio_sdk=info,temporalio_client=warn,ort=warn,rmcp=warn";

/// Installs the global subscriber, writing to stderr (stdout belongs to the stdio transport).
pub fn init() {
    install(std::io::stderr);
}

/// As [`init`], and also appends every line to `log_file` (a process an IDE starts has its
/// stderr read by nobody, or shown far from where one looks). If the file cannot be opened, the
/// logs go to stderr only, and the first line says why.
pub fn init_with_log_file(log_file: &std::path::Path) {
    use tracing_subscriber::fmt::writer::MakeWriterExt as _;
    let opened = log_file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_file)
        });
    match opened {
        Ok(file) => install(std::io::stderr.and(std::sync::Arc::new(file))),
        Err(e) => {
            install(std::io::stderr);
            tracing::warn!(file = %log_file.display(), error = %e, "cannot write the log file; logging to stderr only");
        }
    }
}

fn install<W>(writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = std::env::var("AVB_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .map(EnvFilter::new)
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let result = if std::env::var("AVB_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
