//! The device activities on `avb-devices`: check a command against the devices its backend
//! knows (bad commands fail non-retryably, nothing sent), send one device's change and wait for
//! its state to confirm it, and read devices and states. Zigbee2MQTT's MQTT connection is opened
//! on first use (a worker starts while the broker is down) and kept; Home Assistant is plain
//! HTTP per call.

use std::sync::Arc;
use std::time::Duration;

use crate::non_retryable;
use avb_config::DeviceSettings;
use avb_devices::DeviceError;
use avb_devices::command::{ControlInput, confirms, plan};
use avb_devices::ha::{HomeAssistant, ServiceCall};
use avb_devices::z2m::Zigbee2Mqtt;
use avb_workflows::devices::activity as defs;
use avb_workflows::devices::{Backend, DeviceResult, DeviceSet, PlanRequest, ReadRequest};
use avb_workflows::errors::ErrorKind;
use serde_json::{Value, json};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub struct DeviceActivities {
    pub settings: DeviceSettings,
    home: tokio::sync::OnceCell<Arc<Zigbee2Mqtt>>,
}

fn device_error(e: DeviceError) -> ActivityError {
    if e.is_retryable() {
        ActivityError::from(anyhow::Error::new(e))
    } else {
        let kind = match &e {
            DeviceError::Config(_) => ErrorKind::ConfigurationError,
            DeviceError::UnknownDevice(_) => ErrorKind::UnknownDevice,
            DeviceError::Offline(_) => ErrorKind::DeviceOffline,
            DeviceError::Refused { .. } => ErrorKind::HomeAssistantRefused,
            DeviceError::NotConfirmed { .. } => ErrorKind::NotConfirmed,
            DeviceError::Unavailable(_) => ErrorKind::Unavailable,
        };
        non_retryable(kind, e.to_string())
    }
}

/// A Home Assistant entity as `list_devices` shows it.
fn ha_device(state: &Value) -> Value {
    let id = state["entity_id"].as_str().unwrap_or_default();
    let domain = id.split('.').next().unwrap_or_default();
    let kind = match domain {
        "light" => "light",
        "switch" => "plug",
        "climate" => "thermostat",
        _ => "other",
    };
    json!({
        "name": id,
        "backend": Backend::HomeAssistant.as_str(),
        "kind": kind,
        "room": Value::Null,
        "label": state["attributes"]["friendly_name"],
        "online": state["state"] != "unavailable",
        "state": state,
    })
}

impl DeviceActivities {
    pub fn new(settings: DeviceSettings) -> Self {
        Self {
            settings,
            home: tokio::sync::OnceCell::new(),
        }
    }

    async fn zigbee(&self) -> Result<Arc<Zigbee2Mqtt>, ActivityError> {
        let Some(url) = self.settings.mqtt_url.clone() else {
            return Err(non_retryable(
                ErrorKind::ConfigurationError,
                "no Zigbee2MQTT configured: set devices.mqtt_url (AVB_MQTT_URL)".into(),
            ));
        };
        self.home
            .get_or_try_init(|| async {
                Zigbee2Mqtt::connect(&url, &self.settings.z2m_base_topic, Duration::from_secs(10))
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
            .map_err(device_error)
    }

    fn home_assistant(&self) -> Result<HomeAssistant, ActivityError> {
        let ha = &self.settings.home_assistant;
        let (Some(url), Some(token)) = (&ha.url, &ha.token) else {
            return Err(non_retryable(
                ErrorKind::ConfigurationError,
                "no Home Assistant configured: set devices.home_assistant.url and .token \
                 (AVB_HA_URL, AVB_HA_TOKEN)"
                    .into(),
            ));
        };
        HomeAssistant::new(url, token.expose(), Duration::from_secs(10)).map_err(device_error)
    }

    /// The registry, with rooms from `devices.rooms` where configured.
    fn devices_of(&self, home: &Zigbee2Mqtt) -> Vec<avb_devices::model::Device> {
        let mut devices = home.devices();
        for d in &mut devices {
            if let Some(room) = self.settings.rooms.get(&d.name) {
                d.room.clone_from(room);
            }
        }
        devices
    }

    fn confirm_wait(&self) -> Duration {
        Duration::from_secs(self.settings.confirm_secs.max(1))
    }

    async fn plan_control(&self, arguments: Value) -> Result<Vec<DeviceSet>, ActivityError> {
        let input: ControlInput = serde_json::from_value(arguments)
            .map_err(|e| non_retryable(ErrorKind::InvalidInput, format!("arguments: {e}")))?;
        let home = self.zigbee().await?;
        let planned = plan(&input, &self.devices_of(&home))
            .map_err(|e| non_retryable(ErrorKind::InvalidInput, e.to_string()))?;
        Ok(planned
            .sets
            .into_iter()
            .map(|(device, set)| DeviceSet {
                backend: Backend::Zigbee2mqtt,
                device,
                set,
            })
            .collect())
    }

    async fn plan_service(&self, arguments: Value) -> Result<Vec<DeviceSet>, ActivityError> {
        let call: ServiceCall = serde_json::from_value(arguments)
            .map_err(|e| non_retryable(ErrorKind::InvalidInput, format!("arguments: {e}")))?;
        call.check()
            .map_err(|e| non_retryable(ErrorKind::InvalidInput, e.to_string()))?;
        match self.home_assistant()?.state(&call.entity_id).await {
            Err(DeviceError::UnknownDevice(id)) => Err(non_retryable(
                ErrorKind::InvalidInput,
                format!("entity_id: Home Assistant has no entity {id:?}"),
            )),
            Err(e) => Err(device_error(e)),
            Ok(_) => Ok(vec![DeviceSet {
                backend: Backend::HomeAssistant,
                device: call.entity_id.clone(),
                set: serde_json::to_value(&call).unwrap_or_default(),
            }]),
        }
    }

    /// Zigbee2MQTT: a retried send first asks the device; when it already shows the change
    /// (the earlier attempt's publish arrived, its confirmation did not), nothing is sent again.
    async fn send_zigbee(&self, input: &DeviceSet, attempt: u32) -> Result<Value, ActivityError> {
        let home = self.zigbee().await?;
        let wait = self.confirm_wait();
        if attempt > 1
            && let Ok(state) = home.state(&input.device, wait / 2).await
            && confirms(&input.set, &state)
        {
            tracing::info!(device = %input.device, attempt, "change already applied; not resent");
            return Ok(state);
        }
        home.command(&input.device, &input.set, wait)
            .await
            .map_err(device_error)
    }

    async fn read(&self, request: ReadRequest) -> Result<Value, ActivityError> {
        match request {
            ReadRequest::List { room, backends } => {
                let mut devices = Vec::new();
                if backends.contains(&Backend::Zigbee2mqtt) && self.settings.mqtt_url.is_some() {
                    let home = self.zigbee().await?;
                    for d in self.devices_of(&home) {
                        if room.as_ref().is_some_and(|r| *r != d.room) {
                            continue;
                        }
                        let mut v = serde_json::to_value(&d).unwrap_or_default();
                        v["backend"] = json!(Backend::Zigbee2mqtt.as_str());
                        v["online"] = json!(home.online(&d.name).unwrap_or(true));
                        v["state"] = home.cached_state(&d.name).unwrap_or(Value::Null);
                        devices.push(v);
                    }
                }
                if backends.contains(&Backend::HomeAssistant)
                    && self.settings.home_assistant.url.is_some()
                    && room.is_none()
                {
                    let ha = self.home_assistant()?;
                    let states = ha.states().await.map_err(device_error)?;
                    devices.extend(states.iter().map(ha_device));
                }
                Ok(json!({ "devices": devices }))
            }
            ReadRequest::State { device, backends } => {
                let ha_entity = device.contains('.') && !device.contains('/');
                if ha_entity && backends.contains(&Backend::HomeAssistant) {
                    let state = self
                        .home_assistant()?
                        .state(&device)
                        .await
                        .map_err(device_error)?;
                    return Ok(json!({"device": device, "backend": "home_assistant",
                                     "state": state}));
                }
                if !backends.contains(&Backend::Zigbee2mqtt) {
                    return Err(non_retryable(
                        ErrorKind::UnknownDevice,
                        format!("unknown device {device:?}"),
                    ));
                }
                let home = self.zigbee().await?;
                let state = home
                    .state(&device, self.confirm_wait())
                    .await
                    .map_err(device_error)?;
                Ok(json!({"device": device, "backend": "zigbee2mqtt",
                          "online": home.online(&device).unwrap_or(true), "state": state}))
            }
        }
    }
}

#[activities]
impl DeviceActivities {
    #[activity(definition = defs::PlanDeviceCommand)]
    pub async fn plan_device_command(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: PlanRequest,
    ) -> Result<Vec<DeviceSet>, ActivityError> {
        match request.tool.as_str() {
            "smart_home_control" => self.plan_control(request.arguments).await,
            "call_service" => self.plan_service(request.arguments).await,
            other => Err(non_retryable(
                ErrorKind::InvalidInput,
                format!("{other:?} is not a device command tool"),
            )),
        }
    }

    #[activity(definition = defs::SendDeviceCommand)]
    pub async fn send_device_command(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: DeviceSet,
    ) -> Result<DeviceResult, ActivityError> {
        let state = match input.backend {
            Backend::Zigbee2mqtt => self.send_zigbee(&input, ctx.info().attempt).await?,
            Backend::HomeAssistant => {
                let call: ServiceCall = serde_json::from_value(input.set.clone()).map_err(|e| {
                    non_retryable(ErrorKind::InvalidInput, format!("service call: {e}"))
                })?;
                self.home_assistant()?
                    .call_service(&call)
                    .await
                    .map_err(device_error)?
            }
        };
        tracing::info!(device = %input.device, backend = input.backend.as_str(), "device change confirmed");
        Ok(DeviceResult {
            device: input.device,
            set: input.set,
            state,
        })
    }

    #[activity(definition = defs::ReadDevices)]
    pub async fn read_devices(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: ReadRequest,
    ) -> Result<Value, ActivityError> {
        self.read(request).await
    }
}
