//! `[devices]` settings: where the smart-home backends are, and each backend's policy
//! (`enabled`, `tenants` it serves, `allowed_tools`, `require_approval: always | never |
//! {tool: always|never}`, and for Home Assistant the `allowed_services` agents may call).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Secret;
use super::env::{EnvVar, non_empty, parse_uint, split_list};
use super::tenants::ServedTenants;

/// Every device tool, for policy checks (`allowed_tools`, per-tool `require_approval`).
pub const DEVICE_TOOLS: &[&str] = &[
    "list_devices",
    "get_device_state",
    "smart_home_control",
    "call_service",
];

/// Who approves a command that needs approval (`approver`, `AVB_APPROVER`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Approver {
    /// A HUMAN key of the tenant, through approve_job / reject_job or the REST approve/reject.
    #[default]
    Operator,
    /// The person at the MCP client, through the client's own elicitation: a 2026-07-28 call
    /// answers `input_required` and runs once the retry carries the approval; a task waits in
    /// `input_required` for `tasks/update`. Clients that cannot elicit (older protocols, no
    /// elicitation capability, REST) fall back to the operator.
    Client,
}

impl Approver {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "operator" => Ok(Self::Operator),
            "client" => Ok(Self::Client),
            other => Err(format!("{other:?}: use operator or client")),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    Always,
    Never,
}

/// `require_approval`: one mode for every tool, or a mode per tool (unlisted tools: never).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ApprovalRule {
    All(ApprovalMode),
    PerTool(BTreeMap<String, ApprovalMode>),
}

impl Default for ApprovalRule {
    fn default() -> Self {
        Self::All(ApprovalMode::Never)
    }
}

impl ApprovalRule {
    pub fn requires(&self, tool: &str) -> bool {
        match self {
            Self::All(mode) => *mode == ApprovalMode::Always,
            Self::PerTool(map) => map.get(tool) == Some(&ApprovalMode::Always),
        }
    }

    /// "always", "never" or "smart_home_control=always,…" (`AVB_*_REQUIRE_APPROVAL`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mode = |s: &str| match s.trim() {
            "always" => Ok(ApprovalMode::Always),
            "never" => Ok(ApprovalMode::Never),
            other => Err(format!("{other:?}: use always or never")),
        };
        if !text.contains('=') {
            return mode(text).map(Self::All);
        }
        let mut map = BTreeMap::new();
        for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (tool, m) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?}: use tool=always|never"))?;
            map.insert(tool.trim().to_string(), mode(m)?);
        }
        Ok(Self::PerTool(map))
    }
}

/// A backend's policy.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Zigbee2MqttPolicy {
    pub enabled: bool,
    /// The tenants whose keys see and drive this home (default: `local` only).
    pub tenants: ServedTenants,
    pub require_approval: ApprovalRule,
    /// Tools agents may use on this backend; unset: all.
    pub allowed_tools: Option<Vec<String>>,
}

impl Default for Zigbee2MqttPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            tenants: ServedTenants::default(),
            require_approval: ApprovalRule::default(),
            allowed_tools: None,
        }
    }
}

/// The Home Assistant services `call_service` may call unless `allowed_services` says
/// otherwise: everyday controls of lights, switches, fans, covers, climate and media, and
/// scenes. Locks, alarms, scripts, automations and Home Assistant's own services are left out:
/// an operator who wants agents to unlock doors says so.
pub const DEFAULT_ALLOWED_SERVICES: &[&str] = &[
    "light.*",
    "switch.*",
    "fan.*",
    "cover.*",
    "climate.*",
    "media_player.*",
    "input_boolean.*",
    "scene.turn_on",
];

/// `[devices.home_assistant]`: the installation and its policy.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HomeAssistantSettings {
    /// e.g. `http://homeassistant.local:8123` (`AVB_HA_URL`). Unset: no Home Assistant.
    pub url: Option<String>,
    /// A long-lived access token (`AVB_HA_TOKEN`; never logged).
    pub token: Option<Secret<String>>,
    pub enabled: bool,
    /// The tenants whose keys see and drive this home (default: `local` only).
    pub tenants: ServedTenants,
    pub require_approval: ApprovalRule,
    pub allowed_tools: Option<Vec<String>>,
    /// Services `call_service` may call, as `domain.service` or `domain.*`; `["*"]` allows
    /// every service (`AVB_HA_ALLOWED_SERVICES`; default [`DEFAULT_ALLOWED_SERVICES`]).
    pub allowed_services: Vec<String>,
}

impl Default for HomeAssistantSettings {
    fn default() -> Self {
        Self {
            url: None,
            token: None,
            enabled: true,
            tenants: ServedTenants::default(),
            require_approval: ApprovalRule::default(),
            allowed_tools: None,
            allowed_services: DEFAULT_ALLOWED_SERVICES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl HomeAssistantSettings {
    /// Whether `call_service` may call `domain.service`.
    pub fn allows_service(&self, domain: &str, service: &str) -> bool {
        self.allowed_services.iter().any(|entry| {
            entry == "*"
                || entry
                    .split_once('.')
                    .is_some_and(|(d, s)| d == domain && (s == "*" || s == service))
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceSettings {
    /// The MQTT broker Zigbee2MQTT uses, `mqtt://host:1883` (`AVB_MQTT_URL`). Unset, `avb dev`
    /// runs the demo home (a simulator) and Zigbee2MQTT commands elsewhere fail with a
    /// configuration error naming this key.
    pub mqtt_url: Option<String>,
    /// Zigbee2MQTT's base topic (`AVB_Z2M_BASE_TOPIC`).
    pub z2m_base_topic: String,
    /// How long a device gets to confirm a change before the step is retried
    /// (`AVB_DEVICES_CONFIRM_SECS`).
    pub confirm_secs: u64,
    /// How long a command waits for a human's approval before it is rejected
    /// (`AVB_APPROVAL_EXPIRY_SECS`).
    pub approval_expiry_secs: u64,
    /// Who approves commands (and upstream calls) that need approval.
    pub approver: Approver,
    /// Rooms by Zigbee2MQTT friendly name, for devices whose name does not say it
    /// (`"0x00158d0001a2b3c4" = "office"`); otherwise the part before `/` in the name.
    pub rooms: BTreeMap<String, String>,
    pub zigbee2mqtt: Zigbee2MqttPolicy,
    pub home_assistant: HomeAssistantSettings,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        Self {
            mqtt_url: None,
            z2m_base_topic: "zigbee2mqtt".into(),
            confirm_secs: 5,
            approval_expiry_secs: 900,
            approver: Approver::Operator,
            rooms: BTreeMap::new(),
            zigbee2mqtt: Zigbee2MqttPolicy::default(),
            home_assistant: HomeAssistantSettings::default(),
        }
    }
}

pub const ENV: &[EnvVar<DeviceSettings>] = &[
    EnvVar::new(
        "AVB_MQTT_URL",
        "the MQTT broker Zigbee2MQTT uses, mqtt://host:1883 (unset: the demo home in avb dev)",
        |d, v| {
            d.mqtt_url = non_empty(v);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_Z2M_BASE_TOPIC",
        "Zigbee2MQTT's base topic (default zigbee2mqtt)",
        |d, v| {
            d.z2m_base_topic = v.into();
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_DEVICES_CONFIRM_SECS",
        "how long a device has to confirm a change before the step is retried (default 5)",
        |d, v| {
            d.confirm_secs = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_APPROVAL_EXPIRY_SECS",
        "how long a command waits for a human's approval (default 900)",
        |d, v| {
            d.approval_expiry_secs = parse_uint(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_APPROVER",
        "who approves what needs approval: operator (HUMAN keys, default) or client (elicitation)",
        |d, v| {
            d.approver = Approver::parse(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_Z2M_REQUIRE_APPROVAL",
        "Zigbee2MQTT commands needing approval: always, never or tool=always,…",
        |d, v| {
            d.zigbee2mqtt.require_approval = ApprovalRule::parse(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_Z2M_TENANTS",
        "tenants whose keys see and drive the Zigbee2MQTT home, comma-separated, or * (default local)",
        |d, v| {
            d.zigbee2mqtt.tenants = ServedTenants::parse(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_HA_TENANTS",
        "tenants whose keys see and drive the Home Assistant home, comma-separated, or * (default local)",
        |d, v| {
            d.home_assistant.tenants = ServedTenants::parse(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_HA_ALLOWED_SERVICES",
        "Home Assistant services call_service may call: domain.service or domain.*, comma-separated (* for all)",
        |d, v| {
            d.home_assistant.allowed_services = split_list(v);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_HA_URL",
        "Home Assistant, e.g. http://homeassistant.local:8123 (unset: none)",
        |d, v| {
            d.home_assistant.url = non_empty(v);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_HA_TOKEN",
        "a Home Assistant long-lived access token; never printed",
        |d, v| {
            d.home_assistant.token = non_empty(v).map(Secret::new);
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_HA_REQUIRE_APPROVAL",
        "Home Assistant commands needing approval: always, never or tool=always,…",
        |d, v| {
            d.home_assistant.require_approval = ApprovalRule::parse(v)?;
            Ok(())
        },
    ),
];

/// One backend's policy, whichever backend.
#[derive(Clone, Copy, Debug)]
pub struct PolicyView<'a> {
    pub backend: &'static str,
    pub enabled: bool,
    pub tenants: &'a ServedTenants,
    pub require_approval: &'a ApprovalRule,
    pub allowed_tools: Option<&'a [String]>,
}

impl PolicyView<'_> {
    pub fn allows(&self, tool: &str) -> bool {
        self.allowed_tools
            .is_none_or(|tools| tools.iter().any(|t| t == tool))
    }

    /// Whether `tenant`'s keys may see and use this home.
    pub fn serves(&self, tenant: &str) -> bool {
        self.tenants.serves(tenant)
    }
}

impl DeviceSettings {
    pub fn zigbee2mqtt_policy(&self) -> PolicyView<'_> {
        PolicyView {
            backend: "zigbee2mqtt",
            enabled: self.zigbee2mqtt.enabled,
            tenants: &self.zigbee2mqtt.tenants,
            require_approval: &self.zigbee2mqtt.require_approval,
            allowed_tools: self.zigbee2mqtt.allowed_tools.as_deref(),
        }
    }

    pub fn home_assistant_policy(&self) -> PolicyView<'_> {
        let ha = &self.home_assistant;
        PolicyView {
            backend: "home_assistant",
            enabled: ha.enabled && ha.url.is_some(),
            tenants: &ha.tenants,
            require_approval: &ha.require_approval,
            allowed_tools: ha.allowed_tools.as_deref(),
        }
    }

    /// `(key, message)` of the first bad setting.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let tools = |key: String, list: &[String]| {
            list.iter()
                .find(|t| !DEVICE_TOOLS.contains(&t.as_str()))
                .map_or(Ok(()), |t| {
                    Err((
                        key,
                        format!(
                            "unknown tool {t:?}; device tools: {}",
                            DEVICE_TOOLS.join(", ")
                        ),
                    ))
                })
        };
        for (name, rule, allowed) in [
            (
                "zigbee2mqtt",
                &self.zigbee2mqtt.require_approval,
                &self.zigbee2mqtt.allowed_tools,
            ),
            (
                "home_assistant",
                &self.home_assistant.require_approval,
                &self.home_assistant.allowed_tools,
            ),
        ] {
            if let Some(list) = allowed {
                tools(format!("devices.{name}.allowed_tools"), list)?;
            }
            if let ApprovalRule::PerTool(map) = rule {
                let keys: Vec<String> = map.keys().cloned().collect();
                tools(format!("devices.{name}.require_approval"), &keys)?;
            }
        }
        for (name, tenants) in [
            ("zigbee2mqtt", &self.zigbee2mqtt.tenants),
            ("home_assistant", &self.home_assistant.tenants),
        ] {
            tenants
                .check()
                .map_err(|m| (format!("devices.{name}.tenants"), m))?;
        }
        if let Some(bad) = self.home_assistant.allowed_services.iter().find(|e| {
            *e != "*"
                && !e.split_once('.').is_some_and(|(d, s)| {
                    !d.is_empty()
                        && d.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                        && (s == "*"
                            || (!s.is_empty()
                                && s.bytes().all(|b| {
                                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
                                })))
                })
        }) {
            return Err((
                "devices.home_assistant.allowed_services".into(),
                format!("{bad:?}: use domain.service, domain.* or *"),
            ));
        }
        if self.approval_expiry_secs == 0 {
            return Err((
                "devices.approval_expiry_secs".into(),
                "must be at least 1".into(),
            ));
        }
        if let Some(url) = &self.home_assistant.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err((
                    "devices.home_assistant.url".into(),
                    format!("{url:?}: use http:// or https://"),
                ));
            }
            if self
                .home_assistant
                .token
                .as_ref()
                .is_none_or(|t| t.expose().is_empty())
            {
                return Err((
                    "devices.home_assistant.token".into(),
                    "a url is set but no token: set AVB_HA_TOKEN to a long-lived access token"
                        .into(),
                ));
            }
        }
        if let Some(url) = &self.mqtt_url
            && !(url.starts_with("mqtt://") || url.starts_with("tcp://"))
        {
            return Err((
                "devices.mqtt_url".into(),
                format!("{url:?}: use mqtt://host:port"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_rules_parse_from_toml_and_env() {
        let s: DeviceSettings = toml::from_str(
            "[zigbee2mqtt]\nrequire_approval = \"always\"\n[home_assistant]\n\
             require_approval = { call_service = \"always\" }\n",
        )
        .expect("toml");
        assert!(
            s.zigbee2mqtt
                .require_approval
                .requires("smart_home_control")
        );
        assert!(s.home_assistant.require_approval.requires("call_service"));
        assert!(
            !s.home_assistant
                .require_approval
                .requires("get_device_state")
        );
        assert_eq!(
            ApprovalRule::parse("smart_home_control=always"),
            Ok(ApprovalRule::PerTool(
                [("smart_home_control".to_string(), ApprovalMode::Always)].into()
            ))
        );
        assert!(
            ApprovalRule::parse("sometimes")
                .expect_err("refused")
                .contains("always or never")
        );
    }

    #[test]
    fn unknown_tools_and_missing_tokens_name_the_key() {
        let mut s = DeviceSettings::default();
        s.zigbee2mqtt.allowed_tools = Some(vec!["smart_home_control".into(), "dance".into()]);
        let (key, msg) = s.validate().expect_err("refused");
        assert_eq!(key, "devices.zigbee2mqtt.allowed_tools");
        assert!(msg.contains("\"dance\""), "{msg}");
        let mut s = DeviceSettings::default();
        s.home_assistant.url = Some("http://127.0.0.1:8123".into());
        let (key, _) = s.validate().expect_err("refused");
        assert_eq!(key, "devices.home_assistant.token");
        s.home_assistant.token = Some("t".into());
        assert!(s.validate().is_ok());
        assert!(!format!("{s:?}").contains("\"t\""), "token never printed");
    }

    #[test]
    fn services_are_allowed_by_domain_or_by_name() {
        let mut ha = HomeAssistantSettings::default();
        assert!(ha.allows_service("light", "turn_on"));
        assert!(ha.allows_service("scene", "turn_on"));
        assert!(
            !ha.allows_service("lock", "unlock"),
            "locks only when asked"
        );
        assert!(!ha.allows_service("homeassistant", "restart"));
        ha.allowed_services = vec!["lock.lock".into()];
        assert!(ha.allows_service("lock", "lock") && !ha.allows_service("lock", "unlock"));
        ha.allowed_services = vec!["*".into()];
        assert!(ha.allows_service("homeassistant", "restart"));
        let mut s = DeviceSettings::default();
        s.home_assistant.allowed_services = vec!["light".into()];
        let (key, _) = s.validate().expect_err("refused");
        assert_eq!(key, "devices.home_assistant.allowed_services");
        let mut s = DeviceSettings::default();
        s.zigbee2mqtt.tenants = ServedTenants::new(Vec::<String>::new());
        let (key, _) = s.validate().expect_err("refused");
        assert_eq!(key, "devices.zigbee2mqtt.tenants");
    }
}
