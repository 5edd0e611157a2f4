//! A **simulator** that behaves like Zigbee2MQTT for a demo home (it is not a Zigbee device):
//! on every connection it publishes `<base>/bridge/devices` and each device's availability
//! (retained) and state; it applies `<base>/<name>/set` and answers with the new state, answers
//! `<base>/<name>/get` with the current one. A device taken offline (publish its name to
//! `<base>-sim/offline`, back with `<base>-sim/online`) gets a retained `offline` availability
//! and ignores commands, like a real device out of radio range.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rumqttc::{AsyncClient, QoS};
use serde_json::{Map, Value, json};

use crate::DeviceError;
use crate::mqtt::{self, Handler};

/// The demo home: (friendly name, kind) — lights, plugs and a thermostat in four rooms.
pub const DEMO_HOME: &[(&str, &str)] = &[
    ("living_room/ceiling", "color_light"),
    ("living_room/floor_lamp", "white_light"),
    ("living_room/tv_plug", "plug"),
    ("kitchen/ceiling", "white_light"),
    ("kitchen/coffee_plug", "plug"),
    ("bedroom/bedside", "color_light"),
    ("hallway/thermostat", "thermostat"),
];

fn exposes(kind: &str) -> Value {
    let light = |color: bool| {
        let mut features = vec![
            json!({"type": "binary", "name": "state", "property": "state", "value_on": "ON", "value_off": "OFF"}),
            json!({"type": "numeric", "name": "brightness", "property": "brightness", "value_min": 0, "value_max": 254}),
            json!({"type": "numeric", "name": "color_temp", "property": "color_temp", "value_min": 153, "value_max": 500, "unit": "mired"}),
        ];
        if color {
            features.push(
                json!({"type": "composite", "name": "color_xy", "property": "color",
                "features": [{"type": "numeric", "name": "x", "property": "x"},
                             {"type": "numeric", "name": "y", "property": "y"}]}),
            );
        }
        json!([{ "type": "light", "features": features }])
    };
    match kind {
        "color_light" => light(true),
        "white_light" => light(false),
        "plug" => json!([{ "type": "switch", "features": [
            {"type": "binary", "name": "state", "property": "state", "value_on": "ON", "value_off": "OFF"}]},
            {"type": "numeric", "name": "power", "property": "power", "unit": "W"}]),
        _ => json!([{ "type": "climate", "features": [
            {"type": "numeric", "name": "occupied_heating_setpoint", "property": "occupied_heating_setpoint", "value_min": 5, "value_max": 30, "value_step": 0.5},
            {"type": "numeric", "name": "local_temperature", "property": "local_temperature"},
            {"type": "enum", "name": "system_mode", "property": "system_mode", "values": ["off", "heat"]}]}]),
    }
}

fn initial_state(kind: &str) -> Value {
    match kind {
        "color_light" => {
            json!({"state": "OFF", "brightness": 127, "color_temp": 370, "color_mode": "color_temp", "color": {"x": 0.4599, "y": 0.4106}, "linkquality": 120})
        }
        "white_light" => {
            json!({"state": "OFF", "brightness": 127, "color_temp": 370, "linkquality": 110})
        }
        "plug" => json!({"state": "OFF", "power": 0, "linkquality": 90}),
        _ => {
            json!({"occupied_heating_setpoint": 20.0, "local_temperature": 19.5, "system_mode": "heat", "linkquality": 80})
        }
    }
}

struct SimDevice {
    kind: &'static str,
    ieee: String,
    state: Value,
    online: bool,
}

pub struct Simulator {
    base: String,
    devices: Mutex<BTreeMap<String, SimDevice>>,
    /// `/set` messages applied, per device (tests check a command ran exactly once).
    sets: Mutex<BTreeMap<String, u32>>,
    /// How long a device takes to report its new state (a slow radio).
    reply_delay: Mutex<std::time::Duration>,
}

impl Simulator {
    pub fn demo(base: &str) -> Arc<Self> {
        let devices = DEMO_HOME
            .iter()
            .enumerate()
            .map(|(i, (name, kind))| {
                (
                    (*name).to_string(),
                    SimDevice {
                        kind,
                        ieee: format!("0x00124b00{:08x}", 0x2000 + i),
                        state: initial_state(kind),
                        online: true,
                    },
                )
            })
            .collect();
        Arc::new(Self {
            base: base.to_string(),
            devices: Mutex::new(devices),
            sets: Mutex::new(BTreeMap::new()),
            reply_delay: Mutex::new(std::time::Duration::ZERO),
        })
    }

    /// Devices report their new state `delay` after a `/set` (a slow radio).
    pub fn set_reply_delay(&self, delay: std::time::Duration) {
        *self
            .reply_delay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = delay;
    }

    /// How many `/set` messages `name` has applied.
    pub fn sets_received(&self, name: &str) -> u32 {
        self.sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Runs this home against the broker at `url` until the task is aborted.
    pub fn connect(
        self: &Arc<Self>,
        url: &str,
    ) -> Result<tokio::task::JoinHandle<()>, DeviceError> {
        let (_client, task) = mqtt::connect(
            url,
            &format!("avb-zigbee-sim-{}-{}", std::process::id(), self.base),
            vec![format!("{}/#", self.base), format!("{}-sim/#", self.base)],
            self.clone(),
        )?;
        Ok(task)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SimDevice>> {
        self.devices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What it publishes on `<base>/bridge/devices`.
    pub fn bridge_devices_for_tests(&self) -> Vec<Value> {
        match self.bridge_devices() {
            Value::Array(v) => v,
            _ => Vec::new(),
        }
    }

    fn bridge_devices(&self) -> Value {
        let mut list = vec![
            json!({"friendly_name": "Coordinator", "ieee_address": "0x00124b0000000001", "type": "Coordinator"}),
        ];
        for (name, d) in self.lock().iter() {
            list.push(json!({
                "friendly_name": name,
                "ieee_address": d.ieee,
                "type": if d.kind == "plug" { "Router" } else { "EndDevice" },
                "supported": true,
                "definition": {
                    "model": format!("AVB-SIM-{}", d.kind.to_ascii_uppercase()),
                    "vendor": "AgentVoiceBox simulator",
                    "description": format!("simulated {}", d.kind.replace('_', " ")),
                    "exposes": exposes(d.kind),
                },
            }));
        }
        Value::Array(list)
    }

    /// Applies a `/set` payload; the new state.
    fn apply(d: &mut SimDevice, set: &Map<String, Value>) -> Value {
        let state = d.state.as_object_mut().expect("object state");
        for (k, v) in set {
            match k.as_str() {
                "state" => {
                    let on = match v.as_str().map(str::to_ascii_uppercase).as_deref() {
                        Some("ON") => "ON",
                        Some("OFF") => "OFF",
                        Some("TOGGLE") if state.get("state") == Some(&json!("ON")) => "OFF",
                        Some("TOGGLE") => "ON",
                        _ => continue,
                    };
                    state.insert("state".into(), json!(on));
                    if d.kind == "plug" {
                        state.insert("power".into(), json!(if on == "ON" { 42 } else { 0 }));
                    }
                }
                "brightness" if d.kind.ends_with("light") => {
                    let level = v.as_u64().unwrap_or(0).min(254);
                    state.insert("brightness".into(), json!(level));
                    state.insert("state".into(), json!(if level == 0 { "OFF" } else { "ON" }));
                }
                "color_temp" if d.kind.ends_with("light") => {
                    let m = v.as_u64().unwrap_or(370).clamp(153, 500);
                    state.insert("color_temp".into(), json!(m));
                    state.insert("color_mode".into(), json!("color_temp"));
                }
                "color" if d.kind == "color_light" => {
                    state.insert("color".into(), json!({"x": v["x"], "y": v["y"]}));
                    state.insert("color_mode".into(), json!("xy"));
                }
                "occupied_heating_setpoint" if d.kind == "thermostat" => {
                    let t = v.as_f64().unwrap_or(20.0).clamp(5.0, 30.0);
                    state.insert(k.clone(), json!(t));
                }
                "system_mode" if d.kind == "thermostat" => {
                    state.insert(k.clone(), v.clone());
                }
                _ => {}
            }
        }
        d.state.clone()
    }

    async fn publish(client: &AsyncClient, topic: String, retain: bool, payload: &Value) {
        if let Err(e) = client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_string())
            .await
        {
            tracing::warn!(error = %e, "simulator publish");
        }
    }

    fn availability(online: bool) -> Value {
        json!({ "state": if online { "online" } else { "offline" } })
    }
}

impl Handler for Simulator {
    async fn on_connect(&self, client: &AsyncClient) {
        let base = &self.base;
        Self::publish(
            client,
            format!("{base}/bridge/state"),
            true,
            &json!({"state": "online"}),
        )
        .await;
        Self::publish(
            client,
            format!("{base}/bridge/devices"),
            true,
            &self.bridge_devices(),
        )
        .await;
        let snapshot: Vec<(String, bool, Value)> = self
            .lock()
            .iter()
            .map(|(n, d)| (n.clone(), d.online, d.state.clone()))
            .collect();
        for (name, online, state) in snapshot {
            Self::publish(
                client,
                format!("{base}/{name}/availability"),
                true,
                &Self::availability(online),
            )
            .await;
            Self::publish(client, format!("{base}/{name}"), false, &state).await;
        }
    }

    async fn on_publish(&self, client: &AsyncClient, topic: &str, payload: &[u8]) {
        let base = &self.base;
        if let Some(which) = topic.strip_prefix(&format!("{base}-sim/")) {
            let name = String::from_utf8_lossy(payload).trim().to_string();
            let online = which == "online";
            let known = match self.lock().get_mut(&name) {
                Some(d) => {
                    d.online = online;
                    true
                }
                None => false,
            };
            if known {
                Self::publish(
                    client,
                    format!("{base}/{name}/availability"),
                    true,
                    &Self::availability(online),
                )
                .await;
            }
            return;
        }
        let Some(rest) = topic.strip_prefix(&format!("{base}/")) else {
            return;
        };
        let (name, verb) = match (rest.strip_suffix("/set"), rest.strip_suffix("/get")) {
            (Some(n), _) => (n, "set"),
            (_, Some(n)) => (n, "get"),
            _ => return,
        };
        let body: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        let reply = {
            let mut devices = self.lock();
            let Some(d) = devices.get_mut(name) else {
                return;
            };
            if !d.online {
                return; // out of range: nothing answers
            }
            match (verb, body.as_object()) {
                ("set", Some(set)) => {
                    *self
                        .sets
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(name.to_string())
                        .or_default() += 1;
                    Self::apply(d, set)
                }
                _ => d.state.clone(),
            }
        };
        let delay = *self
            .reply_delay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let topic = format!("{base}/{name}");
        if verb == "set" && !delay.is_zero() {
            let client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                Self::publish(&client, topic, false, &reply).await;
            });
            return;
        }
        Self::publish(client, topic, false, &reply).await;
    }
}

/// Runs the demo home against the broker at `url` until the task is dropped/aborted.
pub fn run(url: &str, base: &str) -> Result<tokio::task::JoinHandle<()>, DeviceError> {
    Simulator::demo(base).connect(url)
}
