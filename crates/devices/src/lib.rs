//! Smart-home devices for the `avb-devices` worker: Zigbee2MQTT over MQTT ([`z2m`]), the
//! validation of agents' commands ([`command`], [`color`]) and a Zigbee2MQTT-behaving
//! simulator of a demo home ([`sim`]; a simulator, not a Zigbee device); Home Assistant over
//! its REST API ([`ha`]) and a simulator of that API ([`ha_sim`]).

pub mod color;
pub mod command;
pub mod ha;
pub mod ha_sim;
pub mod model;
pub mod mqtt;
pub mod sim;
pub mod z2m;

use std::time::Duration;

/// What a device operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("unknown device {0:?}")]
    UnknownDevice(String),
    /// Zigbee2MQTT reports the device offline: retrying will not reach it.
    #[error("device {0:?} is offline (Zigbee2MQTT availability)")]
    Offline(String),
    /// No state message showed the change within the wait: retried.
    #[error("device {device:?} did not confirm the change within {waited:?}")]
    NotConfirmed { device: String, waited: Duration },
    /// The broker or Zigbee2MQTT is not reachable: retried.
    #[error("{0}")]
    Unavailable(String),
    /// Home Assistant answered 4xx: the request is wrong, repeating it will not help.
    #[error("{message}")]
    Refused { status: u16, message: String },
}

impl DeviceError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DeviceError::NotConfirmed { .. } | DeviceError::Unavailable(_)
        )
    }

    /// Stable error type for activities and tool results.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceError::Config(_) => "Configuration",
            DeviceError::UnknownDevice(_) => "UnknownDevice",
            DeviceError::Offline(_) => "DeviceOffline",
            DeviceError::NotConfirmed { .. } => "NotConfirmed",
            DeviceError::Unavailable(_) => "Unavailable",
            DeviceError::Refused { .. } => "HomeAssistantRefused",
        }
    }
}
