//! `[devices]` settings: where the smart-home backends are.

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceSettings {
    /// The MQTT broker Zigbee2MQTT uses, `mqtt://host:1883` (`AVB_MQTT_URL`). Unset, device
    /// commands fail with a configuration error naming this key.
    pub mqtt_url: Option<String>,
    /// Zigbee2MQTT's base topic (`AVB_Z2M_BASE_TOPIC`).
    pub z2m_base_topic: String,
    /// How long a device gets to confirm a change before the step is retried
    /// (`AVB_DEVICES_CONFIRM_SECS`).
    pub confirm_secs: u64,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        Self {
            mqtt_url: None,
            z2m_base_topic: "zigbee2mqtt".into(),
            confirm_secs: 5,
        }
    }
}
