//! In-process token buckets, and the token-bucket step both backends implement.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use avb_config::Limit;
use futures::future::BoxFuture;

use super::{Backend, MAX_LOCAL_BUCKETS, Verdict};

/// The token-bucket step: `tokens` left at the last call, `elapsed` since; returns the tokens
/// left after this call and whether it may proceed. (The Redis script does the same in Lua.)
pub fn take_token(tokens: f64, elapsed: Duration, limit: Limit) -> (f64, Verdict) {
    let capacity = f64::from(limit.burst);
    let rate = limit.rate_per_sec();
    let tokens = (tokens + elapsed.as_secs_f64() * rate).min(capacity);
    if tokens >= 1.0 {
        (tokens - 1.0, Verdict::Allowed)
    } else {
        let wait = (1.0 - tokens) / rate;
        (
            tokens,
            Verdict::Denied {
                retry_after: Duration::from_secs_f64(wait),
            },
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    tokens: f64,
    at: Instant,
    /// When the bucket is full again if nobody calls: from then on it equals a new bucket.
    full_at: Instant,
}

/// Buckets in this process: a map from bucket name, bounded by `max` entries.
pub struct LocalBuckets {
    slots: Mutex<HashMap<String, Slot>>,
    max: usize,
}

impl Default for LocalBuckets {
    fn default() -> Self {
        Self::with_capacity(MAX_LOCAL_BUCKETS)
    }
}

impl LocalBuckets {
    pub fn with_capacity(max: usize) -> Self {
        Self {
            slots: Mutex::default(),
            max: max.max(1),
        }
    }

    /// Takes a token from `bucket` at `now`.
    pub fn take_at(&self, bucket: &str, limit: Limit, now: Instant) -> Verdict {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if !slots.contains_key(bucket) && slots.len() >= self.max {
            evict(&mut slots, now, self.max);
        }
        let fresh = Slot {
            tokens: f64::from(limit.burst),
            at: now,
            full_at: now,
        };
        let slot = slots.entry(bucket.to_string()).or_insert(fresh);
        let (tokens, verdict) =
            take_token(slot.tokens, now.saturating_duration_since(slot.at), limit);
        let to_full = (f64::from(limit.burst) - tokens).max(0.0) / limit.rate_per_sec();
        *slot = Slot {
            tokens,
            at: now,
            full_at: now + Duration::from_secs_f64(to_full),
        };
        verdict
    }

    pub fn len(&self) -> usize {
        self.slots.lock().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Makes room for one more bucket: drops the full ones (a new bucket is full too), else the one
/// closest to full.
fn evict(slots: &mut HashMap<String, Slot>, now: Instant, max: usize) {
    slots.retain(|_, s| s.full_at > now);
    if slots.len() >= max
        && let Some(key) = slots
            .iter()
            .min_by_key(|(_, s)| s.full_at)
            .map(|(k, _)| k.clone())
    {
        slots.remove(&key);
    }
}

impl Backend for LocalBuckets {
    fn name(&self) -> &'static str {
        "local"
    }

    fn take<'a>(&'a self, bucket: &'a str, limit: Limit) -> BoxFuture<'a, Result<Verdict, String>> {
        Box::pin(async move { Ok(self.take_at(bucket, limit, Instant::now())) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use avb_config::RateLimitSettings;

    fn limit(per_minute: u32, burst: u32) -> Limit {
        let s = RateLimitSettings {
            per_key_per_minute: per_minute,
            burst,
            ..RateLimitSettings::default()
        };
        s.rest_limit()
    }

    #[test]
    fn a_full_bucket_allows_burst_calls_then_refuses_until_a_token_refills() {
        let l = limit(60, 3); // one token a second
        let mut tokens = 3.0;
        for _ in 0..3 {
            let (t, v) = take_token(tokens, Duration::ZERO, l);
            assert_eq!(v, Verdict::Allowed);
            tokens = t;
        }
        let (t, v) = take_token(tokens, Duration::ZERO, l);
        assert_eq!(
            v,
            Verdict::Denied {
                retry_after: Duration::from_secs(1)
            }
        );
        // Half a second later: half a token, half a second to wait.
        let (t, v) = take_token(t, Duration::from_millis(500), l);
        assert_eq!(
            v,
            Verdict::Denied {
                retry_after: Duration::from_millis(500)
            }
        );
        let (_, v) = take_token(t, Duration::from_millis(500), l);
        assert_eq!(v, Verdict::Allowed);
    }

    #[test]
    fn refill_never_exceeds_the_burst() {
        let l = limit(60, 3);
        let (t, v) = take_token(0.0, Duration::from_secs(3600), l);
        assert_eq!(v, Verdict::Allowed);
        assert!((t - 2.0).abs() < 1e-9, "{t}");
    }

    #[test]
    fn slow_limits_wait_long() {
        let l = limit(2, 2); // a token every 30 s
        let (t, _) = take_token(2.0, Duration::ZERO, l);
        let (t, _) = take_token(t, Duration::ZERO, l);
        let (_, v) = take_token(t, Duration::ZERO, l);
        assert_eq!(
            v,
            Verdict::Denied {
                retry_after: Duration::from_secs(30)
            }
        );
    }

    #[test]
    fn local_buckets_are_separate_and_refill_with_time() {
        let b = LocalBuckets::default();
        let l = limit(60, 2);
        let t0 = Instant::now();
        assert_eq!(b.take_at("a", l, t0), Verdict::Allowed);
        assert_eq!(b.take_at("a", l, t0), Verdict::Allowed);
        assert!(matches!(b.take_at("a", l, t0), Verdict::Denied { .. }));
        assert_eq!(b.take_at("b", l, t0), Verdict::Allowed, "another bucket");
        assert_eq!(
            b.take_at("a", l, t0 + Duration::from_secs(1)),
            Verdict::Allowed
        );
    }

    #[test]
    fn local_buckets_stay_bounded_and_evict_idle_ones_first() {
        let b = LocalBuckets::with_capacity(3);
        let l = limit(60, 10);
        let t0 = Instant::now();
        // "busy" is drained; the others took one token each (full again after 1 s).
        for _ in 0..10 {
            b.take_at("busy", l, t0);
        }
        b.take_at("idle1", l, t0);
        b.take_at("idle2", l, t0);
        let later = t0 + Duration::from_secs(2);
        assert_eq!(b.take_at("new", l, later), Verdict::Allowed);
        assert!(b.len() <= 3, "{}", b.len());
        // The drained bucket was kept: still (nearly) empty.
        assert_eq!(b.take_at("busy", l, later), Verdict::Allowed);
        assert_eq!(b.take_at("busy", l, later), Verdict::Allowed);
        assert!(matches!(
            b.take_at("busy", l, later),
            Verdict::Denied { .. }
        ));
        for i in 0..100 {
            b.take_at(&format!("flood{i}"), l, later);
        }
        assert!(b.len() <= 3, "{}", b.len());
    }
}
