//! `smart_home_control` arguments → one Zigbee2MQTT `/set` payload per device, validated first:
//! every error names the field and what would be accepted, and nothing is sent for a bad one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::color::{color_named, color_names, kelvin_to_mireds, percent_to_level};
use crate::model::{Device, DeviceKind};

pub const ACTIONS: &[&str] = &["set_lights", "turn_on", "turn_off", "set_temperature"];
pub const MIN_KELVIN: u32 = 2000;
pub const MAX_KELVIN: u32 = 6500;
pub const MIN_CELSIUS: f64 = 5.0;
pub const MAX_CELSIUS: f64 = 30.0;

pub use avb_workflows::devices::{CommandError, ControlInput};

fn bad(field: &'static str, message: impl Into<String>) -> CommandError {
    CommandError {
        field,
        message: message.into(),
    }
}

/// What to publish: `(device name, /set payload)` for each device the command reaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub sets: Vec<(String, Value)>,
}

fn known(list: impl IntoIterator<Item = String>) -> String {
    let mut v: Vec<String> = list.into_iter().collect();
    v.sort();
    v.dedup();
    v.join(", ")
}

/// Validates `input` against `devices` and says what to send.
pub fn plan(input: &ControlInput, devices: &[Device]) -> Result<Plan, CommandError> {
    if !ACTIONS.contains(&input.action.as_str()) {
        return Err(bad(
            "action",
            format!(
                "unknown action {:?}; use one of {}",
                input.action,
                ACTIONS.join(", ")
            ),
        ));
    }
    let targets: Vec<&Device> = match (&input.room, &input.device) {
        (Some(_), Some(_)) => return Err(bad("room", "give a room or a device, not both")),
        (None, None) => return Err(bad("room", "give a room or a device")),
        (Some(room), None) => {
            let in_room: Vec<&Device> = devices.iter().filter(|d| &d.room == room).collect();
            if in_room.is_empty() {
                return Err(bad(
                    "room",
                    format!(
                        "unknown room {room:?}; rooms: {}",
                        known(devices.iter().map(|d| d.room.clone()))
                    ),
                ));
            }
            in_room
        }
        (None, Some(name)) => match devices.iter().find(|d| &d.name == name) {
            Some(d) => vec![d],
            None => {
                return Err(bad(
                    "device",
                    format!(
                        "unknown device {name:?}; devices: {}",
                        known(devices.iter().map(|d| d.name.clone()))
                    ),
                ));
            }
        },
    };
    let brightness = match input.brightness {
        Some(b) if !(0..=100).contains(&b) => {
            return Err(bad(
                "brightness",
                format!("{b} is out of range; use 0 to 100 (percent)"),
            ));
        }
        Some(b) => Some(u8::try_from(b).unwrap_or(100)),
        None => None,
    };
    let color = match &input.color {
        Some(name) => Some(color_named(name).ok_or_else(|| {
            bad(
                "color",
                format!(
                    "unknown colour {name:?}; use one of {}",
                    color_names().join(", ")
                ),
            )
        })?),
        None => None,
    };
    let kelvin = match input.color_temp {
        Some(k) if !(i64::from(MIN_KELVIN)..=i64::from(MAX_KELVIN)).contains(&k) => {
            return Err(bad(
                "color_temp",
                format!("{k} K is out of range; use {MIN_KELVIN} to {MAX_KELVIN}"),
            ));
        }
        Some(k) => Some(u32::try_from(k).unwrap_or(MAX_KELVIN)),
        None => None,
    };
    if color.is_some() && kelvin.is_some() {
        return Err(bad(
            "color",
            "give a colour or a colour temperature, not both",
        ));
    }
    let light_fields = brightness.is_some() || color.is_some() || kelvin.is_some();
    let sets: Vec<(String, Value)> = match input.action.as_str() {
        "turn_on" | "turn_off" => {
            if light_fields || input.temperature.is_some() {
                return Err(bad(
                    "action",
                    format!(
                        "{} takes no brightness, colour or temperature; use set_lights",
                        input.action
                    ),
                ));
            }
            let state = if input.action == "turn_on" {
                "ON"
            } else {
                "OFF"
            };
            targets
                .iter()
                .filter(|d| d.switchable())
                .map(|d| (d.name.clone(), json!({ "state": state })))
                .collect()
        }
        "set_lights" => {
            if input.temperature.is_some() {
                return Err(bad("temperature", "set_lights takes no temperature"));
            }
            let mut out = Vec::new();
            for d in targets.iter().filter(|d| d.kind == DeviceKind::Light) {
                let mut set = Map::new();
                match brightness {
                    Some(0) => {
                        set.insert("state".into(), json!("OFF"));
                    }
                    Some(p) if d.dimmable => {
                        set.insert("state".into(), json!("ON"));
                        set.insert("brightness".into(), json!(percent_to_level(p)));
                    }
                    _ => {
                        set.insert("state".into(), json!("ON"));
                    }
                }
                if let Some(c) = color {
                    let fragment = c.payload();
                    let supported = match c {
                        crate::color::Color::Temperature(_) => d.color_temp.is_some(),
                        crate::color::Color::Xy(..) => d.color_xy,
                    };
                    if supported && let Some(obj) = fragment.as_object() {
                        set.extend(obj.clone());
                    }
                }
                if let (Some(k), Some((min, max))) = (kelvin, d.color_temp) {
                    set.insert(
                        "color_temp".into(),
                        json!(kelvin_to_mireds(k).clamp(min, max)),
                    );
                }
                out.push((d.name.clone(), Value::Object(set)));
            }
            out
        }
        _ => {
            let Some(t) = input.temperature else {
                return Err(bad(
                    "temperature",
                    "set_temperature needs a temperature (°C)",
                ));
            };
            if !(MIN_CELSIUS..=MAX_CELSIUS).contains(&t) {
                return Err(bad(
                    "temperature",
                    format!("{t} °C is out of range; use {MIN_CELSIUS} to {MAX_CELSIUS}"),
                ));
            }
            if light_fields {
                return Err(bad(
                    "action",
                    "set_temperature takes no brightness or colour",
                ));
            }
            // Thermostats take half degrees.
            let t = (t * 2.0).round() / 2.0;
            targets
                .iter()
                .filter(|d| d.kind == DeviceKind::Thermostat)
                .map(|d| (d.name.clone(), json!({ "occupied_heating_setpoint": t })))
                .collect()
        }
    };
    if sets.is_empty() {
        let kind = match input.action.as_str() {
            "set_lights" => "light",
            "set_temperature" => "thermostat",
            _ => "switchable device",
        };
        let field = if input.device.is_some() {
            "device"
        } else {
            "room"
        };
        return Err(bad(field, format!("no {kind} there for {}", input.action)));
    }
    Ok(Plan { sets })
}

/// Does `state` (a device's state message) show every field of `set`? Numbers within a small
/// tolerance (devices round), colours within 0.01 in x and y.
pub fn confirms(set: &Value, state: &Value) -> bool {
    let Some(set) = set.as_object() else {
        return false;
    };
    set.iter().all(|(k, want)| {
        let got = &state[k.as_str()];
        match (k.as_str(), want) {
            ("color", Value::Object(w)) => ["x", "y"].iter().all(|c| {
                match (w.get(*c).and_then(Value::as_f64), got[*c].as_f64()) {
                    (Some(a), Some(b)) => (a - b).abs() <= 0.01,
                    _ => false,
                }
            }),
            (_, Value::Number(n)) => match (n.as_f64(), got.as_f64()) {
                (Some(a), Some(b)) => (a - b).abs() <= 1.0,
                _ => false,
            },
            (_, Value::String(s)) => got.as_str().is_some_and(|g| g.eq_ignore_ascii_case(s)),
            _ => got == want,
        }
    })
}
