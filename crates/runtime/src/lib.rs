//! What every AgentVoiceBox process runs on: logging ([`telemetry`]), the Temporal connection
//! and search-attribute registration ([`temporal`]), and the embedded Temporal dev server that
//! `avb dev`, the tests and the benchmarks start ([`devserver`]).

pub mod devserver;
pub mod telemetry;
pub mod temporal;
