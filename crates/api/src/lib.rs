//! The api: MCP over Streamable HTTP (`/mcp`), legacy HTTP+SSE and stdio, plus REST. The app is
//! a plain `Router` (testable without a socket); `run` serves it until shutdown.
//!
//! # Layout
//! - `core/`: the state hub, auth (API keys, OIDC), rate limits, health, metrics, and the one
//!   error type (`core::problem::Problem`, rendered to REST and MCP alike).
//! - `jobs/`: durable jobs whatever their tool: the `DurableTool` trait and its registry type
//!   (`jobs::durable`), views, lists, following, the job tools and REST. No family names.
//! - `registry.rs`: the durable tools, one line per family.
//! - one folder per family, each with its service code, MCP tools and REST routes:
//!   `speech/`, `echo/`, `billing/`, `approval/`, `devices/`, `servers/`, `upstream/`
//!   (mounted tools, `search_tools`, `batch_execute`), `status/`. `speech/stream.rs` sends audio
//!   as it is made; `speech/ws.rs` is the `/api/v2/ws` WebSocket.
//! - `openai/`: the OpenAI-compatible speech API; `plain_tools.rs`: tools over plain HTTP.
//! - `mcp/`: protocol plumbing (the server, tasks, resources, legacy SSE, session ownership and
//!   limits in `mcp/sessions.rs`, sessions shared by replicas through Redis in
//!   `mcp/shared_sessions.rs`); no tool bodies.
//! - `rest.rs`: the families' routers merged, and the probes.

pub mod approval;
pub mod billing;
pub mod core;
pub mod devices;
pub mod echo;
pub mod jobs;
pub mod mcp;
pub mod openai;
pub mod plain_tools;
pub mod registry;
pub mod rest;
pub mod servers;
pub mod speech;
pub mod status;
pub mod upstream;

// The shared parts by their short names (`crate::state::ApiState`, …).
pub use crate::core::{auth, health, metrics, oidc, ratelimit, state};

use std::sync::Arc;

use axum::Router;
use axum::serve::ListenerExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use mcp::AvbServer;
pub use state::ApiState;

/// The whole HTTP surface. `shutdown` ends open MCP streams when the server stops.
pub fn app(state: ApiState, shutdown: CancellationToken) -> Router {
    let factory_state = state.clone();
    let hosts = &state.config.mcp.allowed_hosts;
    let mcp_config = if hosts.iter().any(|h| h == "*") {
        StreamableHttpServerConfig::default().disable_allowed_hosts()
    } else {
        StreamableHttpServerConfig::default().with_allowed_hosts(hosts.clone())
    }
    // Origins are checked by `core::origin::guard`, for the legacy SSE routes too.
    .with_cancellation_token(shutdown.child_token());
    // With Redis, a session continues on another replica (and after a restart).
    let mut mcp_config = mcp_config;
    if let Some(shared) = &state.shared_sessions {
        mcp_config.session_store = Some(shared.clone());
    }
    // Idle sessions are closed (rmcp's keep-alive), and so leave the session book.
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(std::time::Duration::from_secs(
        state.config.mcp.session_idle_secs,
    ));
    let sessions = Arc::new(sessions);
    let mcp = StreamableHttpService::new(
        move || Ok(AvbServer::new(factory_state.clone())),
        sessions.clone(),
        mcp_config,
    );
    // Tools over plain HTTP are stateless MCP requests to this same service.
    let plain_tools = plain_tools::router(Router::new().nest_service("/mcp", mcp.clone()));
    let core_tasks = mcp::core_tasks::CoreTasks {
        state: state.clone(),
        sessions: sessions.clone(),
    };
    let session_book = mcp::sessions::Sessions {
        state: state.clone(),
        manager: sessions,
    };
    // Everything an agent or operator calls needs a key; health and metrics do not.
    let protected =
        Router::new()
            .nest_service("/mcp", mcp)
            // 2025-11-25 clients' tasks, which rmcp does not model, are answered in front of it.
            .layer(axum::middleware::from_fn_with_state(
                core_tasks,
                mcp::core_tasks::layer,
            ))
            // Sessions belong to the key that opened them; opening is limited.
            .layer(axum::middleware::from_fn_with_state(
                session_book,
                mcp::sessions::layer,
            ))
            .merge(mcp::sse::router(state.clone(), shutdown.clone()))
            .merge(plain_tools)
            .merge(rest::api_router(state.clone()).route_layer(
                axum::middleware::from_fn_with_state(state.clone(), ratelimit::limit_rest),
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::authenticate,
            ))
            // Outermost: a page on a foreign site is refused before anything else runs.
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                core::origin::guard,
            ));
    Router::new()
        .merge(protected)
        .merge(rest::probe_router(state.clone()))
        .merge(core::resource_metadata::router(state))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Serves `app` on `listener` (TCP_NODELAY on every connection: SSE frames are small) until
/// `shutdown` is cancelled, then drains connections.
pub async fn run(
    listener: TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    start_upstreams(&state, shutdown.clone());
    let app = app(state, shutdown.clone());
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Keeps the upstream catalog current until `shutdown` (only when there is, or may come,
/// something to mount: servers configured or provisioned, or a config file that may add some).
pub fn start_upstreams(state: &ApiState, shutdown: CancellationToken) {
    let config = &state.config;
    // Servers provisioned by create_mcp_server mount for their tenants.
    if let Some(store) = &state.store {
        state
            .upstreams
            .set_provisioned_source(upstream::provisioned_source(store.clone()));
    }
    if state.upstreams.has_servers() || config.source_file.is_some() {
        let every = std::time::Duration::from_secs(config.mcp.upstream_check_secs);
        tokio::spawn(state.upstreams.clone().run(every, shutdown));
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
