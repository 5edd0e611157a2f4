//! What the device tools take: `smart_home_control` and `call_service` arguments, the shape
//! checks that need no device, and the error naming the argument at fault. Here (not in
//! `avb-devices`) because the api validates and publishes them, and the activities read them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Arguments of `smart_home_control`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlInput {
    /// set_lights, turn_on, turn_off or set_temperature.
    pub action: String,
    /// A room, e.g. "living_room": every device of the right kind in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// One device by its name, e.g. "living_room/ceiling" (instead of a room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Lights: brightness in percent, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brightness: Option<i64>,
    /// Lights: a colour name, e.g. "warm_white", "daylight", "red".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Lights: colour temperature in kelvin, 2000 to 6500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color_temp: Option<i64>,
    /// Thermostats: target temperature in °C, 5 to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

/// A bad command: `field` is the argument at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CommandError {
    pub field: &'static str,
    pub message: String,
}

/// Arguments of `call_service`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceCall {
    /// Service domain, e.g. "light", "switch", "climate".
    pub domain: String,
    /// Service, e.g. "turn_on", "turn_off", "set_temperature".
    pub service: String,
    /// The entity, e.g. "light.living_room".
    pub entity_id: String,
    /// Service data, e.g. {"brightness_pct": 30}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Map<String, Value>>,
}

/// Keys of Home Assistant's service target: who a call acts on.
pub const TARGET_KEYS: &[&str] = &["entity_id", "device_id", "area_id", "floor_id", "label_id"];

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `s` is a Home Assistant entity id (`domain.object_id`, each `[a-z0-9_]+`): checked
/// before an id goes into a request path, so no other path of the HA API can be reached.
pub fn is_entity_id(s: &str) -> bool {
    s.split_once('.')
        .is_some_and(|(d, o)| is_slug(d) && is_slug(o))
}

impl ServiceCall {
    /// Shape checks that need no Home Assistant: each error names the field.
    pub fn check(&self) -> Result<(), CommandError> {
        let bad = |field: &'static str, message: String| CommandError { field, message };
        if !is_slug(&self.domain) {
            return Err(bad(
                "domain",
                format!(
                    "{:?} is not a service domain (lowercase letters, digits, _)",
                    self.domain
                ),
            ));
        }
        if !is_slug(&self.service) {
            return Err(bad(
                "service",
                format!(
                    "{:?} is not a service name (lowercase letters, digits, _)",
                    self.service
                ),
            ));
        }
        match is_entity_id(&self.entity_id) {
            true => {}
            false => {
                return Err(bad(
                    "entity_id",
                    format!(
                        "{:?} is not an entity id (domain.object_id, e.g. light.kitchen)",
                        self.entity_id
                    ),
                ));
            }
        }
        // Home Assistant widens a call to everything a target key names: `data` may carry
        // settings only, never a second target (`area_id: "all"` would switch a whole house).
        if let Some(key) = self
            .data
            .as_ref()
            .and_then(|d| TARGET_KEYS.iter().find(|k| d.contains_key(**k)))
        {
            return Err(bad(
                "data",
                format!(
                    "{key} is a target: a call acts on the one entity in entity_id, and data                      carries the service's settings only"
                ),
            ));
        }
        // A service acts on entities of its own domain; `light.turn_on` on `lock.front_door`
        // would make an allowed service reach a device the allow-list leaves out.
        let entity_domain = self.entity_id.split_once('.').map_or("", |(d, _)| d);
        if entity_domain != self.domain {
            return Err(bad(
                "entity_id",
                format!(
                    "{:?} is not a {} entity: {}.{} acts on {}.* entities",
                    self.entity_id, self.domain, self.domain, self.service, self.domain
                ),
            ));
        }
        Ok(())
    }

    /// The JSON body Home Assistant takes: the data plus the entity.
    pub fn body(&self) -> Value {
        let mut body = self.data.clone().unwrap_or_default();
        body.insert("entity_id".into(), Value::String(self.entity_id.clone()));
        Value::Object(body)
    }
}
