//! What every AgentVoiceBox process runs on: logging ([`telemetry`]), the Temporal connection
//! and search-attribute registration ([`temporal`]), the embedded Temporal dev server that
//! `avb dev`, the tests and the benchmarks start ([`devserver`]), listening addresses checked
//! before start-up ([`ports`]) and children kept running ([`supervise`]).

pub mod devserver;
pub mod ports;
pub mod supervise;
pub mod telemetry;
pub mod temporal;
