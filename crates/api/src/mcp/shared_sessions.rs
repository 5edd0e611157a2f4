//! MCP sessions shared by the api's replicas, in Redis (when `REDIS_URL` is set): a 2025-11-25
//! Streamable HTTP session opened on one replica continues on another, and after its replica
//! restarts. rmcp restores a session it does not hold from the client's `initialize`
//! parameters ([`SessionStore`]); the owner (tenant and key) is kept beside them, so a restored
//! session is still its opener's only. Legacy SSE sessions cannot move (the stream is a
//! connection to one replica): their owner and replica are kept so a POST that reaches another
//! replica is told that affinity is needed instead of "not found".
//!
//! One hash per session, `avb:mcp:session:<sha256 of the id>` (the id itself is the handle to
//! the session: never stored or logged), expiring after `mcp.session_idle_secs` without use.

use std::time::Duration;

use redis::AsyncCommands as _;
use rmcp::transport::streamable_http_server::session::store::{
    SessionState, SessionStore, SessionStoreError,
};
use sha2::{Digest as _, Sha256};

use super::sessions::Transport;
use crate::auth::Caller;
use crate::core::shared_redis::SharedRedis;

/// Whose a shared session is, and where a legacy SSE session's stream is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedOwner {
    pub tenant: String,
    /// The key id ("" when authentication is off).
    pub key_id: String,
    pub transport: Transport,
    /// The replica holding a legacy SSE stream (`<hostname>:<pid>`).
    pub replica: String,
}

impl SharedOwner {
    pub fn is(&self, caller: &Caller) -> bool {
        self.tenant == caller.tenant && self.key_id == caller.key_id.as_deref().unwrap_or("")
    }
}

pub struct SharedSessions {
    redis: SharedRedis,
    /// How long a session is kept without use.
    ttl: Duration,
    /// This replica (`<hostname>:<pid>`).
    replica: String,
}

fn key(session_id: &str) -> String {
    format!(
        "avb:mcp:session:{}",
        hex::encode(Sha256::digest(session_id.as_bytes()))
    )
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::StreamableHttp => "http",
        Transport::LegacySse => "sse",
    }
}

impl SharedSessions {
    pub fn new(url: &str, idle: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            redis: SharedRedis::new(url)?,
            // A little longer than a replica keeps it idle: the store must not forget a
            // session a replica still serves.
            ttl: idle + Duration::from_secs(60),
            replica: format!(
                "{}:{}",
                avb_runtime::temporal::hostname(),
                std::process::id()
            ),
        })
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn ttl_secs(&self) -> i64 {
        i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX)
    }

    /// Records `caller` as the owner of session `id`, held by this replica.
    pub async fn bind(
        &self,
        id: &str,
        caller: &Caller,
        transport: Transport,
    ) -> redis::RedisResult<()> {
        let mut conn = self.redis.connection().await?;
        let k = key(id);
        redis::pipe()
            .atomic()
            .hset_multiple(
                &k,
                &[
                    ("tenant", caller.tenant.as_str()),
                    ("key", caller.key_id.as_deref().unwrap_or("")),
                    ("transport", transport_name(transport)),
                    ("replica", self.replica.as_str()),
                ],
            )
            .ignore()
            .expire(&k, self.ttl_secs())
            .ignore()
            .query_async::<()>(&mut conn)
            .await
    }

    /// The owner of session `id`, if the store knows it.
    pub async fn owner(&self, id: &str) -> redis::RedisResult<Option<SharedOwner>> {
        let mut conn = self.redis.connection().await?;
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(key(id))
            .arg(&["tenant", "key", "transport", "replica", "closed"])
            .query_async(&mut conn)
            .await?;
        let [tenant, key_id, transport, replica, closed]: [Option<String>; 5] =
            fields.try_into().map_err(|_| {
                redis::RedisError::from((redis::ErrorKind::Parse, "HMGET answered wrong"))
            })?;
        let (Some(tenant), Some(key_id), Some(transport), None) =
            (tenant, key_id, transport, closed)
        else {
            return Ok(None);
        };
        Ok(Some(SharedOwner {
            tenant,
            key_id,
            transport: if transport == "sse" {
                Transport::LegacySse
            } else {
                Transport::StreamableHttp
            },
            replica: replica.unwrap_or_default(),
        }))
    }

    /// Keeps session `id` for another `ttl` (it was used). False when the session was closed
    /// (a DELETE on any replica): a replica that restored it must stop serving it too.
    pub async fn touch(&self, id: &str) -> redis::RedisResult<bool> {
        let mut conn = self.redis.connection().await?;
        let k = key(id);
        let (_, closed): (i64, bool) = redis::pipe()
            .expire(&k, self.ttl_secs())
            .hexists(&k, "closed")
            .query_async(&mut conn)
            .await?;
        Ok(!closed)
    }

    /// Forgets session `id` (its stream ended: a legacy SSE session).
    pub async fn forget(&self, id: &str) -> redis::RedisResult<()> {
        let mut conn = self.redis.connection().await?;
        conn.del::<_, ()>(key(id)).await
    }

    /// Marks session `id` closed (a client's DELETE): no replica restores or serves it again.
    /// Kept as a tombstone until it expires, so replicas holding it learn of the close.
    pub async fn close(&self, id: &str) -> redis::RedisResult<()> {
        let mut conn = self.redis.connection().await?;
        let k = key(id);
        redis::pipe()
            .atomic()
            .hset(&k, "closed", "1")
            .ignore()
            .hdel(&k, "init")
            .ignore()
            .expire(&k, self.ttl_secs())
            .ignore()
            .query_async::<()>(&mut conn)
            .await
    }
}

fn boxed(e: impl std::error::Error + Send + Sync + 'static) -> SessionStoreError {
    Box::new(e)
}

#[async_trait::async_trait]
impl SessionStore for SharedSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let mut conn = self.redis.connection().await.map_err(boxed)?;
        let init: Option<String> = conn.hget(key(session_id), "init").await.map_err(boxed)?;
        match init {
            Some(json) => Ok(Some(serde_json::from_str(&json).map_err(boxed)?)),
            None => Ok(None),
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let json = serde_json::to_string(state).map_err(boxed)?;
        let mut conn = self.redis.connection().await.map_err(boxed)?;
        let k = key(session_id);
        redis::pipe()
            .atomic()
            .hset(&k, "init", json)
            .ignore()
            .expire(&k, self.ttl_secs())
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(boxed)
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.close(session_id).await.map_err(boxed)
    }
}
