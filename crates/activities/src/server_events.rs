//! Lifecycle events of provisioned MCP servers. The database keeps them (the per-server audit
//! trail, one row per event key, so retried activities write once); with `REDIS_URL` set each
//! event is also added to the Redis stream `avb:events:mcp-servers` for consumers elsewhere
//! (fields `key`, `server_id`, `tenant`, `kind`, `detail`, `at_ms`). The stream is at least
//! once — a retried step adds its event again with the same `key`, consumers dedupe by it — and
//! best effort: a Redis outage is logged and never fails provisioning, the database has it all.

use std::time::Duration;

use avb_store::{Store, StoreError, now_ms};

/// The stream every lifecycle event goes to (`XRANGE avb:events:mcp-servers - +`).
pub const EVENT_STREAM: &str = "avb:events:mcp-servers";
/// Entries the stream keeps (approximately; older ones are trimmed).
const STREAM_MAX_LEN: usize = 100_000;

pub struct ServerEvents {
    store: Store,
    stream: Option<RedisStream>,
}

struct RedisStream {
    client: redis::Client,
    conn: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
}

impl ServerEvents {
    /// Events in `store`, and on the Redis stream when `redis_url` is given (connects on first
    /// use; a bad URL is an error now).
    pub fn new(store: Store, redis_url: Option<&str>) -> Result<Self, redis::RedisError> {
        let stream = redis_url
            .map(|url| {
                avb_tls::redis_client(url).map(|client| RedisStream {
                    client,
                    conn: tokio::sync::OnceCell::new(),
                })
            })
            .transpose()?;
        Ok(Self { store, stream })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records the event (once per `key`) and announces it.
    pub async fn append(
        &self,
        key: &str,
        server_id: &str,
        tenant: &str,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let detail = detail.to_string();
        self.store
            .append_server_event(key, server_id, tenant, kind, &detail)
            .await?;
        if let Some(stream) = &self.stream {
            let fields = [
                ("key", key),
                ("server_id", server_id),
                ("tenant", tenant),
                ("kind", kind),
                ("detail", detail.as_str()),
                ("at_ms", &now_ms().to_string()),
            ];
            if let Err(e) = stream.add(&fields).await {
                tracing::warn!(error = %e, kind, server_id, "event not added to the Redis stream {EVENT_STREAM} (it is in the database)");
            }
        }
        Ok(())
    }
}

impl RedisStream {
    async fn add(&self, fields: &[(&str, &str)]) -> redis::RedisResult<()> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let mut conn = self
            .conn
            .get_or_try_init(|| {
                redis::aio::ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?
            .clone();
        redis::cmd("XADD")
            .arg(EVENT_STREAM)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAX_LEN)
            .arg("*")
            .arg(fields)
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
    }
}
