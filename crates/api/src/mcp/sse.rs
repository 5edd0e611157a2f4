//! Legacy MCP HTTP+SSE transport (protocol 2024-11-05): `GET /api/v2/mcp/sse` opens the stream and
//! announces the POST endpoint; `POST /api/v2/mcp/messages?sessionId=…` delivers client messages.
//! rmcp dropped this transport, so this bridges it over rmcp's generic Sink/Stream transport.
//! A session is its opener's (the same key must POST to it), counts toward the session caps,
//! and ends when the client drops the stream (also before `initialize`) or sends nothing for
//! `mcp.session_idle_secs`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use rmcp::ServiceExt;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::AvbServer;
use super::sessions::Transport;
use crate::auth::Caller;
use crate::core::problem::Problem;
use crate::state::ApiState;

pub const SSE_PATH: &str = "/api/v2/mcp/sse";
pub const MESSAGES_PATH: &str = "/api/v2/mcp/messages";

#[derive(Clone)]
struct Bridge {
    state: ApiState,
    /// Ends open streams on shutdown, so graceful shutdown does not wait on idle SSE clients.
    shutdown: tokio_util::sync::CancellationToken,
    sessions: Arc<Mutex<HashMap<String, OpenSession>>>,
}

/// An open session: where its client messages go, and when the client last sent one.
type OpenSession = (mpsc::Sender<ClientJsonRpcMessage>, Arc<Mutex<Instant>>);

pub fn router(state: ApiState, shutdown: tokio_util::sync::CancellationToken) -> Router {
    let bridge = Bridge {
        state,
        shutdown,
        sessions: Arc::default(),
    };
    Router::new()
        .route(SSE_PATH, get(open_stream))
        .route(MESSAGES_PATH, post(post_message))
        .with_state(bridge)
}

async fn open_stream(
    State(bridge): State<Bridge>,
    Extension(caller): Extension<Caller>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let state = &bridge.state;
    if let Err(limited) = state.limiter.check_session_open(&caller).await {
        tracing::info!(caller = %caller.rate_limit_id(), %limited, "legacy SSE session rate-limited");
        return Err(Problem::from(limited));
    }
    let mcp = &state.config.mcp;
    // Streamable HTTP sessions are pruned by the /mcp layer; here every entry is counted.
    state.sessions.admit(
        &caller,
        &|_| true,
        mcp.max_sessions,
        mcp.max_sessions_per_key,
    )?;
    let idle = Duration::from_secs(mcp.session_idle_secs);
    let session_id = uuid::Uuid::new_v4().simple().to_string();
    let (to_server, from_client) = mpsc::channel::<ClientJsonRpcMessage>(64);
    let (to_client, from_server) = mpsc::channel::<ServerJsonRpcMessage>(64);
    let last_seen = Arc::new(Mutex::new(Instant::now()));
    if let Ok(mut sessions) = bridge.sessions.lock() {
        sessions.insert(session_id.clone(), (to_server, last_seen.clone()));
    }
    state
        .sessions
        .record(&session_id, &caller, Transport::LegacySse);
    let shared = state.shared_sessions.clone();
    if let Some(shared) = &shared
        && let Err(e) = shared
            .bind(&session_id, &caller, Transport::LegacySse)
            .await
    {
        tracing::warn!(error = %e, "legacy SSE session not recorded in Redis");
    }
    // The caller who opened the stream is the session's: its POSTs must come from that key.
    let server = AvbServer::for_caller(state.clone(), caller);
    let (sessions, book) = (bridge.sessions.clone(), state.sessions.clone());
    let id = session_id.clone();
    // Dropped with the response stream (the client went away): the session ends, also when
    // it never sent `initialize`.
    let left = CancellationToken::new();
    let guard = left.clone().drop_guard();
    tokio::spawn(async move {
        let run = async {
            // `serve` waits for `initialize`; the session ends when either side hangs up.
            match server.serve((to_client, from_client)).await {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(e) => tracing::debug!(error = %e, "legacy SSE session ended before initialize"),
            }
        };
        tokio::select! {
            () = run => {}
            () = left.cancelled() => tracing::debug!("legacy SSE client left"),
            () = idle_for(&last_seen, idle) => tracing::info!(idle_secs = idle.as_secs(), "idle legacy SSE session closed"),
        }
        if let Ok(mut s) = sessions.lock() {
            s.remove(&id);
        }
        book.forget(&id);
        if let Some(shared) = shared {
            let _ = shared.forget(&id).await;
        }
    });
    let endpoint = futures::stream::once(async move {
        Ok(Event::default()
            .event("endpoint")
            .data(format!("{MESSAGES_PATH}?sessionId={session_id}")))
    });
    let messages = from_server.map(move |m| {
        let _alive = &guard;
        let data = serde_json::to_string(&m).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        Ok(Event::default().event("message").data(data))
    });
    let stop = bridge.shutdown.clone();
    let stream = endpoint
        .chain(messages)
        .take_until(async move { stop.cancelled().await });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Resolves once no message came for `idle`.
async fn idle_for(last_seen: &Mutex<Instant>, idle: Duration) {
    loop {
        let since = last_seen.lock().map_or(Duration::ZERO, |t| t.elapsed());
        if since >= idle {
            return;
        }
        tokio::time::sleep(idle - since).await;
    }
}

#[derive(Deserialize)]
struct SessionQuery {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

async fn post_message(
    State(bridge): State<Bridge>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<SessionQuery>,
    body: Bytes,
) -> impl IntoResponse {
    let Some(session_id) = q.session_id else {
        return (
            StatusCode::BAD_REQUEST,
            "missing sessionId query parameter".to_string(),
        );
    };
    let msg = match serde_json::from_slice::<ClientJsonRpcMessage>(&body) {
        Ok(m) => m,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("body is not a JSON-RPC message: {e}"),
            );
        }
    };
    // Another key's session is not found, as if it did not exist.
    if !bridge.state.sessions.owned_by(&session_id, &caller) {
        return elsewhere(&bridge.state, &session_id, &caller).await;
    }
    let sender = bridge
        .sessions
        .lock()
        .ok()
        .and_then(|s| s.get(&session_id).cloned())
        .map(|(tx, last_seen)| {
            if let Ok(mut t) = last_seen.lock() {
                *t = Instant::now();
            }
            tx
        });
    match sender {
        Some(mut tx) => match tx.send(msg).await {
            Ok(()) => (StatusCode::ACCEPTED, "Accepted".to_string()),
            Err(_) => (StatusCode::GONE, format!("session {session_id} has ended")),
        },
        None => (
            StatusCode::NOT_FOUND,
            format!("unknown session {session_id}; open {SSE_PATH} first"),
        ),
    }
}

/// The answer to a POST for a session this replica does not hold. With sessions shared through
/// Redis, one the caller opened on another replica gets 421 and what to do: the legacy stream
/// is a connection to that replica, so its POSTs must reach it too (session affinity).
/// Anything else is not found.
async fn elsewhere(state: &ApiState, session_id: &str, caller: &Caller) -> (StatusCode, String) {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            format!("unknown session {session_id}; open {SSE_PATH} first"),
        )
    };
    let Some(shared) = &state.shared_sessions else {
        return not_found();
    };
    match shared.owner(session_id).await {
        Ok(Some(owner)) if owner.is(caller) && owner.transport == Transport::LegacySse => (
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "legacy SSE session {session_id} is held by another api replica ({}), not this \
                 one ({}): the legacy transport keeps a session on the replica holding its \
                 stream, so route {SSE_PATH} and {MESSAGES_PATH} of one client to one replica \
                 (session affinity), or use Streamable HTTP (/mcp), whose sessions move between \
                 replicas",
                owner.replica,
                shared.replica()
            ),
        ),
        _ => not_found(),
    }
}
