//! End-to-end harness: the whole system in one process (`avb_testkit::system::TestSystem`),
//! the service harnesses, and the MCP, SSE and upstream clients these tests drive it with.

#![allow(dead_code)]

pub mod mcp;
pub mod sse_client;
pub mod upstreams;

pub use avb_testkit::system::*;
pub use avb_testkit::{dockerd, mosquitto, redis};
