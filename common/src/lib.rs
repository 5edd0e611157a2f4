//! What the api and the workers share: configuration, telemetry, the Temporal connection, the
//! dev server launcher and the artifact store.

pub mod artifacts;
pub mod billing_settings;
pub mod config;
pub mod device_settings;
pub mod devserver;
pub mod oidc_settings;
pub mod provisioning_settings;
pub mod rate_limit_settings;
pub mod telemetry;
pub mod temporal;
pub mod upstream_settings;
