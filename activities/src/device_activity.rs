//! The device activities on `avb-devices`: check a `smart_home_control` command against the
//! devices Zigbee2MQTT knows (bad commands fail non-retryably, nothing sent), and send one
//! device's change and wait for its state to confirm it. The MQTT connection is opened on first
//! use (a worker starts while the broker is down) and kept.

use std::sync::Arc;
use std::time::Duration;

use avb_common::device_settings::DeviceSettings;
use avb_devices::DeviceError;
use avb_devices::command::{ControlInput, plan};
use avb_devices::z2m::Zigbee2Mqtt;
use avb_workflows::devices::{DeviceResult, DeviceSet, PLAN_DEVICE_COMMAND, SEND_DEVICE_COMMAND};
use avb_workflows::errors::{CONFIGURATION_ERROR, INVALID_INPUT};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub struct DeviceActivities {
    pub settings: DeviceSettings,
    home: tokio::sync::OnceCell<Arc<Zigbee2Mqtt>>,
}

fn non_retryable(kind: &str, message: String) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(message)
            .type_name(kind.to_owned())
            .non_retryable(true)
            .build(),
    )
}

fn device_error(e: DeviceError) -> ActivityError {
    if e.is_retryable() {
        ActivityError::from(anyhow::Error::new(e))
    } else {
        let kind = match &e {
            DeviceError::Config(_) => CONFIGURATION_ERROR,
            other => other.kind(),
        };
        non_retryable(kind, e.to_string())
    }
}

impl DeviceActivities {
    pub fn new(settings: DeviceSettings) -> Self {
        Self {
            settings,
            home: tokio::sync::OnceCell::new(),
        }
    }

    async fn home(&self) -> Result<Arc<Zigbee2Mqtt>, ActivityError> {
        let Some(url) = self.settings.mqtt_url.clone() else {
            return Err(non_retryable(
                CONFIGURATION_ERROR,
                "no smart-home backend configured: set devices.mqtt_url (AVB_MQTT_URL)".into(),
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
}

#[activities]
impl DeviceActivities {
    #[activity(name = PLAN_DEVICE_COMMAND)]
    pub async fn plan_device_command(
        self: Arc<Self>,
        _ctx: ActivityContext,
        arguments: serde_json::Value,
    ) -> Result<Vec<DeviceSet>, ActivityError> {
        let input: ControlInput = serde_json::from_value(arguments)
            .map_err(|e| non_retryable(INVALID_INPUT, format!("arguments: {e}")))?;
        let home = self.home().await?;
        let planned = plan(&input, &home.devices())
            .map_err(|e| non_retryable(INVALID_INPUT, e.to_string()))?;
        Ok(planned
            .sets
            .into_iter()
            .map(|(device, set)| DeviceSet { device, set })
            .collect())
    }

    #[activity(name = SEND_DEVICE_COMMAND)]
    pub async fn send_device_command(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: DeviceSet,
    ) -> Result<DeviceResult, ActivityError> {
        let home = self.home().await?;
        let wait = Duration::from_secs(self.settings.confirm_secs.max(1));
        let state = home
            .command(&input.device, &input.set, wait)
            .await
            .map_err(device_error)?;
        tracing::info!(device = %input.device, set = %input.set, "device change confirmed");
        Ok(DeviceResult {
            device: input.device,
            set: input.set,
            state,
        })
    }
}
