//! Legacy MCP HTTP+SSE transport (protocol 2024-11-05): `GET /api/v2/mcp/sse` opens the stream and
//! announces the POST endpoint; `POST /api/v2/mcp/messages?sessionId=…` delivers client messages.
//! rmcp dropped this transport, so this bridges it over rmcp's generic Sink/Stream transport.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

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

use super::AvbServer;
use crate::auth::Caller;
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

/// An open session: where its client messages go, and the tenant that opened it.
type OpenSession = (mpsc::Sender<ClientJsonRpcMessage>, String);

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
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let session_id = uuid::Uuid::new_v4().simple().to_string();
    let (to_server, from_client) = mpsc::channel::<ClientJsonRpcMessage>(64);
    let (to_client, from_server) = mpsc::channel::<ServerJsonRpcMessage>(64);
    if let Ok(mut sessions) = bridge.sessions.lock() {
        sessions.insert(session_id.clone(), (to_server, caller.tenant.clone()));
    }
    // The caller who opened the stream is the session's: its POSTs must come from that tenant.
    let server = AvbServer::for_caller(bridge.state.clone(), caller);
    let sessions = bridge.sessions.clone();
    let id = session_id.clone();
    tokio::spawn(async move {
        // `serve` waits for `initialize`; the session ends when either side hangs up.
        match server.serve((to_client, from_client)).await {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(e) => {
                tracing::debug!(session = %id, error = %e, "legacy SSE session ended before initialize")
            }
        }
        if let Ok(mut s) = sessions.lock() {
            s.remove(&id);
        }
    });
    let endpoint = futures::stream::once(async move {
        Ok(Event::default()
            .event("endpoint")
            .data(format!("{MESSAGES_PATH}?sessionId={session_id}")))
    });
    let messages = from_server.map(|m| {
        let data = serde_json::to_string(&m).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        Ok(Event::default().event("message").data(data))
    });
    let stop = bridge.shutdown.clone();
    let stream = endpoint
        .chain(messages)
        .take_until(async move { stop.cancelled().await });
    Sse::new(stream).keep_alive(KeepAlive::default())
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
    let sender = bridge
        .sessions
        .lock()
        .ok()
        .and_then(|s| s.get(&session_id).cloned())
        // Another tenant's session is not found, as if it did not exist.
        .filter(|(_, tenant)| *tenant == caller.tenant)
        .map(|(tx, _)| tx);
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
