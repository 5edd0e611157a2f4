//! The Home Assistant backend over its documented REST API: `GET /api/states`,
//! `GET /api/states/<entity_id>`, `POST /api/services/<domain>/<service>`, with a long-lived
//! access token as bearer. A 4xx answer is Home Assistant refusing the request (bad service,
//! unknown entity, bad token): not retried, with its message. 5xx answers, timeouts and refused
//! connections are the installation being unwell: retried.

use std::time::Duration;

use serde_json::Value;

use crate::DeviceError;

pub use avb_workflows::devices::ServiceCall;

/// One Home Assistant installation.
pub struct HomeAssistant {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl HomeAssistant {
    pub fn new(url: &str, token: &str, timeout: Duration) -> Result<Self, DeviceError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| DeviceError::Config(format!("devices.home_assistant.url {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(DeviceError::Config(format!(
                "devices.home_assistant.url {url:?}: use http:// or https://"
            )));
        }
        if token.is_empty() {
            return Err(DeviceError::Config(
                "devices.home_assistant.token is empty: set AVB_HA_TOKEN to a long-lived access \
                 token"
                    .into(),
            ));
        }
        let http = avb_tls::client_builder()
            .timeout(timeout)
            .build()
            .map_err(|e| DeviceError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value, DeviceError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| DeviceError::Unavailable(format!("Home Assistant {what}: {e}")))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                DeviceError::Unavailable(format!("Home Assistant {what}: bad JSON ({e})"))
            });
        }
        // Home Assistant explains refusals as {"message": "..."} (or plain text for 401).
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        if status.is_client_error() {
            let hint = if status.as_u16() == 401 {
                " (check devices.home_assistant.token / AVB_HA_TOKEN)"
            } else {
                ""
            };
            return Err(DeviceError::Refused {
                status: status.as_u16(),
                message: format!("Home Assistant refused {what}: {message}{hint}"),
            });
        }
        Err(DeviceError::Unavailable(format!(
            "Home Assistant {what}: HTTP {status}: {message}"
        )))
    }

    /// Every entity's state object.
    pub async fn states(&self) -> Result<Vec<Value>, DeviceError> {
        let v = self
            .send(
                self.http.get(format!("{}/api/states", self.base)),
                "GET /api/states",
            )
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// One entity's state object; `UnknownDevice` when Home Assistant has no such entity.
    pub async fn state(&self, entity_id: &str) -> Result<Value, DeviceError> {
        // Only an entity id goes into the path: `x.y\\..\\..\\states` would reach another
        // endpoint of the API with our token.
        if !avb_workflows::devices::is_entity_id(entity_id) {
            return Err(DeviceError::UnknownDevice(entity_id.to_string()));
        }
        let what = format!("GET /api/states/{entity_id}");
        match self
            .send(
                self.http
                    .get(format!("{}/api/states/{entity_id}", self.base)),
                &what,
            )
            .await
        {
            Err(DeviceError::Refused { status: 404, .. }) => {
                Err(DeviceError::UnknownDevice(entity_id.to_string()))
            }
            other => other,
        }
    }

    /// Calls the service and returns the entity's state afterwards.
    pub async fn call_service(&self, call: &ServiceCall) -> Result<Value, DeviceError> {
        let what = format!("POST /api/services/{}/{}", call.domain, call.service);
        let changed = self
            .send(
                self.http
                    .post(format!(
                        "{}/api/services/{}/{}",
                        self.base, call.domain, call.service
                    ))
                    .json(&call.body()),
                &what,
            )
            .await?;
        // The answer lists the states that changed; a call that changed nothing lists none.
        if let Some(state) = changed
            .as_array()
            .and_then(|a| a.iter().find(|s| s["entity_id"] == call.entity_id.as_str()))
        {
            return Ok(state.clone());
        }
        self.state(&call.entity_id).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A device name that is not an entity id never becomes a request (here: to a closed
    /// port, which would answer Unavailable if one were made).
    #[tokio::test]
    async fn only_entity_ids_reach_the_states_path() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let ha = HomeAssistant::new(
            &format!("http://127.0.0.1:{closed}"),
            "token",
            Duration::from_secs(2),
        )
        .expect("client");
        for name in [
            "x.y\\..\\..\\states",
            "light.kitchen/../../config",
            "Light.Kitchen",
            "light.",
        ] {
            match ha.state(name).await {
                Err(DeviceError::UnknownDevice(n)) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(
            ha.state("light.kitchen").await,
            Err(DeviceError::Unavailable(_) | DeviceError::Refused { .. })
        ));
    }

    fn call(domain: &str, service: &str, entity: &str) -> ServiceCall {
        ServiceCall {
            domain: domain.into(),
            service: service.into(),
            entity_id: entity.into(),
            data: None,
        }
    }

    #[test]
    fn calls_are_checked_field_by_field() {
        assert!(call("light", "turn_on", "light.kitchen").check().is_ok());
        let e = call("Light", "turn_on", "light.kitchen")
            .check()
            .expect_err("refused");
        assert_eq!(e.field, "domain");
        let e = call("light", "turn on", "light.kitchen")
            .check()
            .expect_err("refused");
        assert_eq!(e.field, "service");
        let e = call("light", "turn_on", "kitchen")
            .check()
            .expect_err("refused");
        assert_eq!(e.field, "entity_id");
        assert!(e.message.contains("domain.object_id"), "{e}");
        let e = call("light", "turn_on", "lock.front_door")
            .check()
            .expect_err("refused");
        assert_eq!(e.field, "entity_id");
        assert!(e.message.contains("light.*"), "{e}");
    }

    /// `data` carries settings, never a second target: `area_id` (or `device_id`, …) would make
    /// Home Assistant act on every entity it names.
    #[test]
    fn targets_inside_data_are_refused() {
        for key in avb_workflows::devices::TARGET_KEYS {
            let mut c = call("light", "turn_off", "light.kitchen");
            c.data = Some(serde_json::from_value(json!({ *key: "all" })).expect("ok"));
            let e = c.check().expect_err("refused");
            assert_eq!(e.field, "data");
            assert!(e.message.contains(key), "{e}");
        }
    }

    #[test]
    fn the_body_carries_the_entity() {
        let mut c = call("light", "turn_on", "light.kitchen");
        c.data = Some(serde_json::from_value(json!({"brightness_pct": 30})).expect("ok"));
        assert_eq!(
            c.body(),
            json!({"brightness_pct": 30, "entity_id": "light.kitchen"})
        );
    }
}
