//! `avb-demo-mcp`: a tiny MCP server over Streamable HTTP (rmcp) with two tools, `echo(message)`
//! and `add(a, b)`. It is the tests' container image entrypoint and a template to provision.
//!
//! Listens on `$HOST:$PORT` (defaults `0.0.0.0:8000`; `--host`, `--port` override), MCP at
//! `/mcp`, `GET /healthz` answers `ok`. Any `Host` header is accepted (it runs behind published
//! container ports). `ECHO_PREFIX`, when set, is prepended to what `echo` returns (shows that
//! the caller's environment reached the replica). `DEMO_STARTUP_DELAY_MS` delays listening by
//! that long (at most 60 s): a slow-starting server, for readiness waits in demos and tests.
//! Exits on SIGTERM or Ctrl-C.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Deserialize, JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    message: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(Clone)]
struct Demo {
    prefix: String,
    tool_router: ToolRouter<Demo>,
}

#[tool_router(router = tool_router)]
impl Demo {
    fn new(prefix: String) -> Self {
        Self {
            prefix,
            tool_router: Self::tool_router(),
        }
    }

    /// Returns the message unchanged (after ECHO_PREFIX, when the server has one).
    #[tool(annotations(read_only_hint = true, idempotent_hint = true))]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        format!("{}{}", self.prefix, args.message)
    }

    /// Adds two integers.
    #[tool(annotations(read_only_hint = true, idempotent_hint = true))]
    async fn add(
        &self,
        Parameters(AddArgs { a, b }): Parameters<AddArgs>,
    ) -> Result<String, McpError> {
        a.checked_add(b)
            .map(|sum| sum.to_string())
            .ok_or_else(|| McpError::invalid_params(format!("{a} + {b} overflows i64"), None))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Demo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "avb-demo-mcp",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("A demo MCP server: echo(message) and add(a, b).")
    }
}

struct Args {
    host: String,
    port: u16,
}

fn parse_args() -> Result<Args, String> {
    let mut host = std::env::var("HOST").unwrap_or_else(|_| "0.0.0.0".to_string());
    let mut port = std::env::var("PORT").unwrap_or_else(|_| "8000".to_string());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--port" => port = value()?,
            "--host" => host = value()?,
            "-h" | "--help" => {
                return Err(
                    "usage: avb-demo-mcp [--host ADDR] [--port N]  (env HOST, PORT, \
                            ECHO_PREFIX, DEMO_STARTUP_DELAY_MS)"
                        .to_string(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    let port = port
        .parse()
        .map_err(|_| format!("port {port:?} is not a number 0-65535"))?;
    Ok(Args { host, port })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("avb-demo-mcp: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    let prefix = std::env::var("ECHO_PREFIX").unwrap_or_default();
    if let Ok(delay) = std::env::var("DEMO_STARTUP_DELAY_MS") {
        let Ok(ms) = delay.parse::<u64>() else {
            eprintln!("avb-demo-mcp: DEMO_STARTUP_DELAY_MS={delay:?} is not a number of ms");
            return std::process::ExitCode::from(2);
        };
        let ms = ms.min(60_000);
        eprintln!("avb-demo-mcp: starting in {ms} ms (DEMO_STARTUP_DELAY_MS)");
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let shutdown = CancellationToken::new();
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(shutdown.child_token());
    let mcp = StreamableHttpService::new(
        move || Ok(Demo::new(prefix.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new()
        .nest_service("/mcp", mcp)
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    let addr = format!("{}:{}", args.host, args.port);
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("avb-demo-mcp: cannot listen on {addr}: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let local = listener.local_addr().map_or(addr, |a| a.to_string());
    eprintln!("avb-demo-mcp: MCP at http://{local}/mcp");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            shutdown.cancel();
        })
        .await;
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("avb-demo-mcp: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
