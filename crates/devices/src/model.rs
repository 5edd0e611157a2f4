//! Devices as Zigbee2MQTT describes them (`zigbee2mqtt/bridge/devices`), reduced to what
//! commands need: the friendly name, the room (the part before `/` in the friendly name, the
//! usual Zigbee2MQTT convention), the kind and what it exposes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Light,
    /// A switch or smart plug (on/off).
    Plug,
    Thermostat,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Device {
    /// Zigbee2MQTT friendly name, e.g. `living_room/ceiling`.
    pub name: String,
    /// e.g. `living_room`; `default` when the name has no `/`.
    pub room: String,
    pub kind: DeviceKind,
    pub ieee_address: String,
    /// Brightness 0–254.
    pub dimmable: bool,
    /// Colour temperature range in mireds, when it has one.
    pub color_temp: Option<(u16, u16)>,
    /// Takes CIE xy colours.
    pub color_xy: bool,
    pub model: String,
}

fn room_of(name: &str) -> String {
    name.split_once('/')
        .map_or("default", |(room, _)| room)
        .to_string()
}

/// Every `property` named in an `exposes` tree (features nest under `features`).
fn properties(exposes: &Value, out: &mut Vec<(String, Value)>) {
    match exposes {
        Value::Array(items) => items.iter().for_each(|i| properties(i, out)),
        Value::Object(map) => {
            if let Some(p) = map.get("property").and_then(Value::as_str) {
                out.push((p.to_string(), exposes.clone()));
            }
            if let Some(f) = map.get("features") {
                properties(f, out);
            }
        }
        _ => {}
    }
}

impl Device {
    /// One entry of `zigbee2mqtt/bridge/devices`; `None` for the coordinator and entries
    /// without a friendly name.
    pub fn from_bridge(entry: &Value) -> Option<Device> {
        if entry["type"] == "Coordinator" {
            return None;
        }
        let name = entry["friendly_name"].as_str()?.to_string();
        let exposes = &entry["definition"]["exposes"];
        let kinds: Vec<&str> = exposes
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["type"].as_str()).collect())
            .unwrap_or_default();
        let mut props = Vec::new();
        properties(exposes, &mut props);
        let has = |p: &str| props.iter().any(|(n, _)| n == p);
        let kind = if kinds.contains(&"light") {
            DeviceKind::Light
        } else if kinds.contains(&"climate") {
            DeviceKind::Thermostat
        } else if kinds.contains(&"switch") || has("state") {
            DeviceKind::Plug
        } else {
            DeviceKind::Other
        };
        let color_temp = props.iter().find(|(n, _)| n == "color_temp").map(|(_, e)| {
            let min = e["value_min"].as_u64().unwrap_or(150);
            let max = e["value_max"].as_u64().unwrap_or(500);
            (
                u16::try_from(min).unwrap_or(150),
                u16::try_from(max).unwrap_or(500),
            )
        });
        Some(Device {
            room: room_of(&name),
            name,
            kind,
            ieee_address: entry["ieee_address"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            dimmable: has("brightness"),
            color_temp,
            color_xy: has("color") || props.iter().any(|(_, e)| e["name"] == "color_xy"),
            model: entry["definition"]["model"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// Can be switched on and off.
    pub fn switchable(&self) -> bool {
        matches!(self.kind, DeviceKind::Light | DeviceKind::Plug)
    }
}

/// Availability as Zigbee2MQTT publishes it: `{"state":"online"}` (or legacy plain `online`).
pub fn parse_availability(payload: &[u8]) -> Option<bool> {
    let text = std::str::from_utf8(payload).ok()?.trim();
    let state = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["state"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.to_string());
    match state.as_str() {
        "online" => Some(true),
        "offline" => Some(false),
        _ => None,
    }
}
