//! Token buckets shared by every api process, in Redis (one atomic Lua script per call).

use std::time::Duration;

use avb_config::Limit;
use futures::future::BoxFuture;

use super::{Backend, REDIS_KEY_PREFIX, Verdict};
use crate::core::shared_redis::SharedRedis;

/// The token bucket as one atomic Redis script. KEYS[1]: the bucket (a hash of `tokens` and `ts`,
/// microseconds of the Redis server's clock, so api processes' clocks never matter);
/// ARGV: burst, per_minute. Returns {allowed (0/1), milliseconds until the next token}. The key
/// expires once the bucket would be full again (then it equals a new one).
const TOKEN_BUCKET_LUA: &str = r"
if redis.replicate_commands then pcall(redis.replicate_commands) end
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / 60.0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
local elapsed = math.max(0, now - ts) / 1000000.0
tokens = math.min(capacity, tokens + elapsed * rate)
local allowed = 0
local wait_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait_ms = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {allowed, wait_ms}
";

/// Buckets in Redis, shared by every api process with the same `REDIS_URL`.
pub struct RedisBuckets {
    redis: SharedRedis,
    script: redis::Script,
}

impl RedisBuckets {
    /// Checks the URL; connects on first use (an api starts while Redis is down).
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            redis: SharedRedis::new(url)?,
            script: redis::Script::new(TOKEN_BUCKET_LUA),
        })
    }
}

impl Backend for RedisBuckets {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn take<'a>(&'a self, bucket: &'a str, limit: Limit) -> BoxFuture<'a, Result<Verdict, String>> {
        Box::pin(async move {
            let mut conn = self.redis.connection().await.map_err(|e| e.to_string())?;
            let (allowed, wait_ms): (i64, i64) = self
                .script
                .key(format!("{REDIS_KEY_PREFIX}{bucket}"))
                .arg(limit.burst)
                .arg(limit.per_minute)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok(if allowed == 1 {
                Verdict::Allowed
            } else {
                Verdict::Denied {
                    retry_after: Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)),
                }
            })
        })
    }
}
