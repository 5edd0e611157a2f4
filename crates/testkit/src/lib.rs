//! Real services for tests and benchmarks, each started on its own loopback port and stopped
//! when its guard drops (also when the test panics). They fail, never skip, when they cannot
//! start: a missing Debian package is an error naming `deploy/install-deps.sh`.
//!
//! # Layout
//! - [`pg`]: a PostgreSQL server per test (`initdb` cached, `postgres` on a free port).
//! - [`redis`]: a `redis-server` without persistence.
//! - [`mosquitto`]: an MQTT broker; `restart()` simulates an outage.
//! - [`s3`]: an S3-compatible object store (moto's server) with one bucket.
//! - [`dockerd`]: a private Docker daemon with its own bridge and roots (needs root).
//! - [`tls`]: a CA made at test time (`openssl`) and a TLS front for any loopback server.
//! - `cluster` (feature `system`): apis and workers as processes with data folders of their
//!   own behind a load balancer, sharing Temporal, PostgreSQL and Redis; a mixed load driver.
//! - `system` (feature `system`): `system::TestSystem`, the whole AgentVoiceBox in one
//!   process — Temporal dev server, workers and api — plus helpers for what tests check
//!   (WAV facts, stored artifacts, JSON GETs).

#[cfg(feature = "system")]
pub mod cluster;
pub mod dockerd;
pub mod mosquitto;
pub mod pg;
pub mod redis;
pub mod s3;
#[cfg(feature = "system")]
pub mod system;
pub mod tls;

/// A loopback port free at the moment of asking (another process may take it before it is
/// bound; harnesses that care retry).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
