//! What the api and the workers share: configuration, telemetry, the Temporal connection, the
//! dev server launcher and the artifact store.

pub mod artifacts;
pub mod config;
pub mod devserver;
pub mod telemetry;
pub mod temporal;
