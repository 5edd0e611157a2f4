//! The api's connection to Redis (`REDIS_URL`), for what its replicas share: rate-limit buckets
//! and MCP sessions. Opened on first use, so an api starts while Redis is down; short timeouts,
//! so a Redis outage fails a request quickly instead of holding it.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub struct SharedRedis {
    client: redis::Client,
    conn: tokio::sync::OnceCell<ConnectionManager>,
}

impl SharedRedis {
    /// Checks the URL; connects on first use. `rediss://` trusts what https does (`avb_tls`).
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: avb_tls::redis_client(url)?,
            conn: tokio::sync::OnceCell::new(),
        })
    }

    /// The connection (one multiplexed connection per process, reconnecting by itself).
    pub async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        self.conn
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned()
    }

    /// One round trip (`PING`): whether Redis answers.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }
}
