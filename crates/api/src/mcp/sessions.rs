//! Who owns each MCP session, and how many there may be. A session (Streamable HTTP of a
//! session protocol, or a legacy SSE stream) belongs to the caller that opened it: every later
//! request naming it — POST, the GET stream, `Last-Event-ID` resumption, DELETE — must come
//! from the same key, else the session is "not found", as if it did not exist. Opening one is
//! rate-limited per key, and open sessions are capped per key and per process
//! (`mcp.max_sessions_per_key`, `mcp.max_sessions`); idle ones are closed
//! (`mcp.session_idle_secs`). Session ids are never logged: they are the handle to a session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

use super::shared_sessions::SharedSessions;
use crate::auth::Caller;
use crate::core::problem::{ErrorKind, Problem};
use crate::state::ApiState;

const SESSION_HEADER: &str = "mcp-session-id";

/// Which transport a session came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    StreamableHttp,
    LegacySse,
}

#[derive(Debug, Clone)]
struct Owner {
    caller: Caller,
    transport: Transport,
}

/// The open sessions of this process and their owners.
#[derive(Debug, Default)]
pub struct SessionBook {
    open: Mutex<HashMap<String, Owner>>,
}

/// Whether two callers are the same principal: the same key of the same tenant (with
/// authentication off, the one local operator).
fn same_owner(a: &Caller, b: &Caller) -> bool {
    a.tenant == b.tenant && a.key_id == b.key_id
}

impl SessionBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owner>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `caller` may open one more session: counted against the caps after the
    /// Streamable HTTP sessions rmcp has closed (idle, deleted) are dropped from the book.
    pub fn admit(
        &self,
        caller: &Caller,
        live_http: &dyn Fn(&str) -> bool,
        max_total: usize,
        max_per_key: usize,
    ) -> Result<(), Problem> {
        let mut open = self.lock();
        open.retain(|id, o| o.transport == Transport::LegacySse || live_http(id));
        if open.len() >= max_total {
            return Err(Problem::new(
                ErrorKind::RateLimited,
                format!(
                    "this server has {} MCP sessions open, its limit (mcp.max_sessions); try \
                     again later",
                    open.len()
                ),
            )
            .with_details(serde_json::json!({ "retry_after_secs": 60 })));
        }
        let mine = open
            .values()
            .filter(|o| same_owner(&o.caller, caller))
            .count();
        if mine >= max_per_key {
            return Err(Problem::new(
                ErrorKind::RateLimited,
                format!(
                    "this API key has {mine} MCP sessions open, its limit \
                     (mcp.max_sessions_per_key): close sessions you no longer use (HTTP DELETE \
                     with their Mcp-Session-Id) or wait for idle ones to be closed"
                ),
            )
            .with_details(serde_json::json!({ "retry_after_secs": 60 })));
        }
        Ok(())
    }

    pub fn record(&self, id: &str, caller: &Caller, transport: Transport) {
        self.lock().insert(
            id.to_string(),
            Owner {
                caller: caller.clone(),
                transport,
            },
        );
    }

    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Whether `caller` may use session `id`: its owner, or a session this book does not know
    /// (rmcp answers those itself: unknown).
    pub fn may_use(&self, id: &str, caller: &Caller) -> bool {
        self.lock()
            .get(id)
            .is_none_or(|o| same_owner(&o.caller, caller))
    }

    /// Whether this process holds session `id`.
    pub fn knows(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// Whether `id` is a session `caller` opened (legacy SSE POSTs: the book knows them all).
    pub fn owned_by(&self, id: &str, caller: &Caller) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|o| same_owner(&o.caller, caller))
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `/mcp` layer's state: the api's and rmcp's session manager.
#[derive(Clone)]
pub struct Sessions {
    pub state: ApiState,
    pub manager: Arc<LocalSessionManager>,
}

fn not_found() -> Response {
    // The same answer rmcp gives for a session it does not know.
    (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response()
}

/// Whether a request without a session id may open one: a POST of a session protocol. Clients
/// of 2026-07-28 (stateless) name their revision in every request's header and never get one.
fn may_open_session(request: &Request) -> bool {
    request.method() == Method::POST
        && request
            .headers()
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v < "2026-07-28")
}

/// Middleware in front of rmcp's Streamable HTTP service (after authentication).
pub async fn layer(State(sessions): State<Sessions>, request: Request, next: Next) -> Response {
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return next.run(request).await;
    };
    let book = &sessions.state.sessions;
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(id) = session {
        if !book.may_use(&id, &caller) {
            tracing::info!(caller = %caller.rate_limit_id(), "request on another key's MCP session refused");
            return not_found();
        }
        if let Some(shared) = &sessions.state.shared_sessions
            && let Err(refused) = check_shared(shared, &sessions, &id, &caller).await
        {
            return refused;
        }
        let deleting = request.method() == Method::DELETE;
        let response = next.run(request).await;
        if deleting && response.status().is_success() {
            book.forget(&id);
        }
        return response;
    }
    if !may_open_session(&request) {
        return next.run(request).await;
    }
    if let Err(limited) = sessions.state.limiter.check_session_open(&caller).await {
        tracing::info!(caller = %caller.rate_limit_id(), %limited, "MCP session opening rate-limited");
        return Problem::from(limited).into_response();
    }
    let live: Vec<String> = sessions
        .manager
        .sessions
        .read()
        .await
        .keys()
        .map(ToString::to_string)
        .collect();
    let mcp = &sessions.state.config.mcp;
    let is_live = |id: &str| live.iter().any(|l| l == id);
    if let Err(refused) = book.admit(
        &caller,
        &is_live,
        mcp.max_sessions,
        mcp.max_sessions_per_key,
    ) {
        tracing::info!(caller = %caller.rate_limit_id(), why = %refused.message, "MCP session refused");
        return refused.into_response();
    }
    let response = next.run(request).await;
    if let Some(id) = response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        book.record(id, &caller, Transport::StreamableHttp);
        if let Some(shared) = &sessions.state.shared_sessions
            && let Err(e) = shared.bind(id, &caller, Transport::StreamableHttp).await
        {
            // The session works on this replica; it cannot move to another.
            tracing::warn!(error = %e, "MCP session not shared (Redis)");
        }
    }
    response
}

/// A request naming session `id` with sessions shared between replicas: a session this
/// replica holds is kept alive in the store; one it does not hold (opened on another replica,
/// or before a restart) is served only for its owner — the store says who — and rmcp then
/// restores it. Anything else is "not found", as rmcp would answer.
async fn check_shared(
    shared: &SharedSessions,
    sessions: &Sessions,
    id: &str,
    caller: &Caller,
) -> Result<(), Response> {
    let book = &sessions.state.sessions;
    if book.knows(id) {
        match shared.touch(id).await {
            Ok(true) => {}
            Ok(false) => {
                // Closed by a DELETE that reached another replica.
                book.forget(id);
                let id: rmcp::transport::streamable_http_server::SessionId = id.into();
                let _ = rmcp::transport::streamable_http_server::SessionManager::close_session(
                    sessions.manager.as_ref(),
                    &id,
                )
                .await;
                return Err(not_found());
            }
            Err(e) => tracing::warn!(error = %e, "MCP session not refreshed in Redis"),
        }
        return Ok(());
    }
    match shared.owner(id).await {
        Ok(Some(owner)) if owner.is(caller) && owner.transport == Transport::StreamableHttp => {
            book.record(id, caller, Transport::StreamableHttp);
            if let Err(e) = shared.touch(id).await {
                tracing::warn!(error = %e, "MCP session not refreshed in Redis");
            }
            Ok(())
        }
        Ok(_) => Err(not_found()),
        Err(e) => {
            tracing::warn!(error = %e, "MCP session store (Redis) unavailable");
            Err(Problem::new(
                ErrorKind::Unavailable,
                "this MCP session was opened on another replica, and the session store (Redis, \
                 REDIS_URL) that would continue it does not answer; try again shortly or open \
                 a new session",
            )
            .into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use avb_store::Role;

    fn key(tenant: &str, id: &str) -> Caller {
        Caller {
            tenant: tenant.into(),
            role: Role::Agent,
            key_id: Some(id.into()),
            label: None,
        }
    }

    #[test]
    fn a_session_is_its_openers_and_caps_count_live_sessions() {
        let book = SessionBook::default();
        let (a, a2, b) = (key("t", "a"), key("t", "a2"), key("u", "b"));
        let all_live = |_: &str| true;
        book.record("s1", &a, Transport::StreamableHttp);
        book.record("s2", &a, Transport::LegacySse);
        assert!(book.may_use("s1", &a));
        assert!(!book.may_use("s1", &a2), "another key of the same tenant");
        assert!(!book.may_use("s1", &b));
        assert!(book.may_use("unknown", &b), "rmcp answers unknown ids");
        assert!(book.owned_by("s2", &a) && !book.owned_by("s2", &a2));
        assert!(book.admit(&a, &all_live, 10, 2).is_err(), "a has 2 of 2");
        assert!(book.admit(&a2, &all_live, 10, 2).is_ok());
        assert!(book.admit(&b, &all_live, 2, 5).is_err(), "2 of 2 overall");
        // rmcp closed s1 (idle or deleted): its place is free again.
        assert!(book.admit(&a, &|id: &str| id != "s1", 10, 2).is_ok());
        assert_eq!(book.len(), 1);
        book.forget("s2");
        assert!(book.is_empty());
    }
}
