//! `[billing]` settings: whether jobs are charged, and the tariff per tool (credits per 1 000
//! units). The api prices each job from this table before its workflow starts.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::env::{EnvVar, parse_bool, parse_uint};

/// Tools with work to pay for, and what they are measured in.
pub const BILLED_TOOLS: &[(&str, &str)] = &[
    ("generate_speech", "character"),
    ("create_mcp_server", "container-minute"),
    ("smart_home_control", "device-command"),
];

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// What is counted: "character", "container-minute", "device-command".
    pub unit: String,
    /// Credits per 1 000 units (a job costs at least 1 credit when the price is not 0).
    pub credits_per_1000: i64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingSettings {
    /// Charge jobs through the ledger (`AVB_BILLING_ENABLED`; default true). Off, nothing is
    /// held or charged and the `avb-billing` worker is idle.
    pub enabled: bool,
    /// Credits `avb dev` grants the local tenant once, on its first start
    /// (`AVB_BILLING_DEV_CREDITS`), so the first run has something to spend.
    pub dev_credits: i64,
    /// Tariff by tool name, e.g. `[billing.prices.generate_speech] unit = "character",
    /// credits_per_1000 = 10`. A tool not listed is free.
    pub prices: BTreeMap<String, Price>,
}

impl Default for BillingSettings {
    fn default() -> Self {
        let price = |unit: &str, credits_per_1000| Price {
            unit: unit.into(),
            credits_per_1000,
        };
        Self {
            enabled: true,
            dev_credits: 100_000,
            prices: BTreeMap::from([
                ("generate_speech".into(), price("character", 10)),
                ("create_mcp_server".into(), price("container-minute", 1_000)),
                ("smart_home_control".into(), price("device-command", 1_000)),
            ]),
        }
    }
}

pub const ENV: &[EnvVar<BillingSettings>] = &[
    EnvVar::new(
        "AVB_BILLING_ENABLED",
        "charge jobs through the ledger (default true)",
        |b, v| {
            b.enabled = parse_bool(v)?;
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_BILLING_DEV_CREDITS",
        "credits `avb dev` grants the local tenant on its first start (default 100000)",
        |b, v| {
            b.dev_credits = parse_uint(v)?;
            Ok(())
        },
    ),
];

impl BillingSettings {
    /// The price of `tool` when billing is on and the tool has one.
    pub fn price_of(&self, tool: &str) -> Option<&Price> {
        self.enabled.then(|| self.prices.get(tool)).flatten()
    }

    /// Checks the tariff; the error names the offending key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.dev_credits < 0 {
            return Err(("billing.dev_credits".into(), "must not be negative".into()));
        }
        for (tool, price) in &self.prices {
            let key = format!("billing.prices.{tool}");
            let Some((_, unit)) = BILLED_TOOLS.iter().find(|(t, _)| t == tool) else {
                let known: Vec<_> = BILLED_TOOLS.iter().map(|(t, _)| *t).collect();
                return Err((
                    key,
                    format!("unknown tool; billed tools: {}", known.join(", ")),
                ));
            };
            if price.unit != *unit {
                return Err((
                    format!("{key}.unit"),
                    format!("{tool} is measured in {unit}s, not {:?}", price.unit),
                ));
            }
            if price.credits_per_1000 < 0 {
                return Err((
                    format!("{key}.credits_per_1000"),
                    "must not be negative".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_price_speech_per_character() {
        let b = BillingSettings::default();
        assert!(b.validate().is_ok());
        assert_eq!(
            b.price_of("generate_speech").map(|p| p.credits_per_1000),
            Some(10)
        );
        assert_eq!(b.price_of("durable_echo"), None);
        let off = BillingSettings {
            enabled: false,
            ..BillingSettings::default()
        };
        assert_eq!(off.price_of("generate_speech"), None);
    }

    #[test]
    fn bad_tariffs_name_the_key() {
        let mut b = BillingSettings::default();
        b.prices.insert(
            "get_balance".into(),
            Price {
                unit: "call".into(),
                credits_per_1000: 1,
            },
        );
        assert_eq!(
            b.validate().map_err(|e| e.0),
            Err("billing.prices.get_balance".into())
        );
        let mut b = BillingSettings::default();
        if let Some(p) = b.prices.get_mut("generate_speech") {
            p.unit = "word".into();
        }
        assert_eq!(
            b.validate().map_err(|e| e.0),
            Err("billing.prices.generate_speech.unit".into())
        );
        let mut b = BillingSettings::default();
        if let Some(p) = b.prices.get_mut("generate_speech") {
            p.credits_per_1000 = -1;
        }
        assert!(b.validate().is_err());
    }
}
