//! The Zigbee2MQTT backend: the device registry from `<base>/bridge/devices`, states from
//! `<base>/<name>`, availability from `<base>/<name>/availability`; a command publishes
//! `<base>/<name>/set` and is confirmed when a state message shows every field asked for
//! (half the wait), else after a `/get` (the rest). A device Zigbee2MQTT reports `offline` fails
//! at once and is not retried: its radio is gone, not the broker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, QoS};
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::DeviceError;
use crate::command::confirms;
use crate::model::{Device, parse_availability};
use crate::mqtt::{self, Handler};

#[derive(Default)]
struct Registry {
    devices: Vec<Device>,
    states: HashMap<String, Value>,
    online: HashMap<String, bool>,
}

struct Listener {
    base: String,
    registry: Mutex<Registry>,
    /// (device, state) for every state message.
    states: broadcast::Sender<(String, Value)>,
    devices_known: tokio::sync::watch::Sender<bool>,
}

fn lock(m: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Handler for Listener {
    async fn on_connect(&self, _client: &AsyncClient) {}

    async fn on_publish(&self, _client: &AsyncClient, topic: &str, payload: &[u8]) {
        let Some(rest) = topic.strip_prefix(&format!("{}/", self.base)) else {
            return;
        };
        if rest == "bridge/devices" {
            let list: Vec<Value> = serde_json::from_slice(payload).unwrap_or_default();
            let devices: Vec<Device> = list.iter().filter_map(Device::from_bridge).collect();
            lock(&self.registry).devices = devices;
            self.devices_known.send_replace(true);
            return;
        }
        if rest.starts_with("bridge/") {
            return;
        }
        if let Some(name) = rest.strip_suffix("/availability") {
            if let Some(online) = parse_availability(payload) {
                lock(&self.registry).online.insert(name.to_string(), online);
            }
            return;
        }
        if rest.ends_with("/set") || rest.ends_with("/get") {
            return;
        }
        let Ok(state @ Value::Object(_)) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        {
            let mut r = lock(&self.registry);
            let entry = r
                .states
                .entry(rest.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let (Some(old), Some(new)) = (entry.as_object_mut(), state.as_object()) {
                old.extend(new.clone());
            }
        }
        let _ = self.states.send((rest.to_string(), state));
    }
}

/// A connection to one Zigbee2MQTT installation.
pub struct Zigbee2Mqtt {
    client: AsyncClient,
    listener: Arc<Listener>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Zigbee2Mqtt {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Zigbee2Mqtt {
    /// Connects to `url` (`mqtt://host:port`) for the installation under topic `base`
    /// (usually `zigbee2mqtt`) and waits up to `wait` for its device list.
    pub async fn connect(url: &str, base: &str, wait: Duration) -> Result<Self, DeviceError> {
        let (devices_known, mut known) = tokio::sync::watch::channel(false);
        let listener = Arc::new(Listener {
            base: base.to_string(),
            registry: Mutex::new(Registry::default()),
            states: broadcast::channel(1024).0,
            devices_known,
        });
        let client_id = format!("avb-{}-{}", std::process::id(), rand_suffix());
        let (client, task) =
            mqtt::connect(url, &client_id, vec![format!("{base}/#")], listener.clone())?;
        let this = Self {
            client,
            listener,
            task,
        };
        tokio::time::timeout(wait, known.wait_for(|k| *k))
            .await
            .map_err(|_| {
                DeviceError::Unavailable(format!(
                    "no device list on {base}/bridge/devices from {url} within {wait:?}: is \
                     Zigbee2MQTT (or the simulator) running?"
                ))
            })?
            .map_err(|_| DeviceError::Unavailable("MQTT connection closed".into()))?;
        // Ask every device for its state once, so lists show states before the first change.
        for d in this.devices() {
            if this.cached_state(&d.name).is_none() {
                let field = match d.kind {
                    crate::model::DeviceKind::Thermostat => "occupied_heating_setpoint",
                    _ => "state",
                };
                let topic = format!("{base}/{}/get", d.name);
                let _ = this.publish(topic, &serde_json::json!({ field: "" })).await;
            }
        }
        Ok(this)
    }

    pub fn devices(&self) -> Vec<Device> {
        lock(&self.listener.registry).devices.clone()
    }

    /// The last state the device reported (merged), if any.
    pub fn cached_state(&self, name: &str) -> Option<Value> {
        lock(&self.listener.registry).states.get(name).cloned()
    }

    /// Zigbee2MQTT's availability of `name`: `None` until it said.
    pub fn online(&self, name: &str) -> Option<bool> {
        lock(&self.listener.registry).online.get(name).copied()
    }

    fn check(&self, name: &str) -> Result<(), DeviceError> {
        if !self.devices().iter().any(|d| d.name == name) {
            return Err(DeviceError::UnknownDevice(name.to_string()));
        }
        if self.online(name) == Some(false) {
            return Err(DeviceError::Offline(name.to_string()));
        }
        Ok(())
    }

    async fn publish(&self, topic: String, payload: &Value) -> Result<(), DeviceError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
            .await
            .map_err(|e| DeviceError::Unavailable(format!("MQTT publish: {e}")))
    }

    /// Waits until a state message of `name` satisfies `done`, up to `wait`.
    async fn wait_state(
        &self,
        rx: &mut broadcast::Receiver<(String, Value)>,
        name: &str,
        set: &Value,
        wait: Duration,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok((device, _))) if device == name => {
                    let merged = self.cached_state(name).unwrap_or(Value::Null);
                    if confirms(set, &merged) {
                        return Some(merged);
                    }
                }
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return None,
            }
        }
    }

    /// The device's current state: asks with `/get` and waits up to `wait`; the cached state
    /// when the device does not answer.
    pub async fn state(&self, name: &str, wait: Duration) -> Result<Value, DeviceError> {
        self.check(name)?;
        let mut rx = self.listener.states.subscribe();
        self.publish(
            format!("{}/{name}/get", self.listener.base),
            &serde_json::json!({ "state": "" }),
        )
        .await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok((device, _))) if device == name => {
                    return Ok(self.cached_state(name).unwrap_or(Value::Null));
                }
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                _ => {
                    return self
                        .cached_state(name)
                        .ok_or_else(|| DeviceError::NotConfirmed {
                            device: name.to_string(),
                            waited: wait,
                        });
                }
            }
        }
    }

    /// Sends `set` to `name` and returns the state that confirms it.
    pub async fn command(
        &self,
        name: &str,
        set: &Value,
        wait: Duration,
    ) -> Result<Value, DeviceError> {
        self.check(name)?;
        let mut rx = self.listener.states.subscribe();
        self.publish(format!("{}/{name}/set", self.listener.base), set)
            .await?;
        if let Some(state) = self.wait_state(&mut rx, name, set, wait / 2).await {
            return Ok(state);
        }
        if self.online(name) == Some(false) {
            return Err(DeviceError::Offline(name.to_string()));
        }
        // The state message may have been missed: ask for the fields we set.
        let fields: Map<String, Value> = set
            .as_object()
            .map(|o| o.keys().map(|k| (k.clone(), Value::from(""))).collect())
            .unwrap_or_default();
        self.publish(
            format!("{}/{name}/get", self.listener.base),
            &Value::Object(fields),
        )
        .await?;
        if let Some(state) = self.wait_state(&mut rx, name, set, wait / 2).await {
            return Ok(state);
        }
        if self.online(name) == Some(false) {
            return Err(DeviceError::Offline(name.to_string()));
        }
        Err(DeviceError::NotConfirmed {
            device: name.to_string(),
            waited: wait,
        })
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}
