//! Colour names agents use → what Zigbee lights take: white tones as colour temperature
//! (mireds, 1 000 000 / kelvin), hues as CIE 1931 xy.

use serde_json::{Value, json};

/// A named colour as a Zigbee2MQTT `/set` fragment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Color {
    /// Colour temperature in mireds.
    Temperature(u16),
    Xy(f64, f64),
}

/// Names, what they mean (for errors and tool docs).
pub const NAMED: &[(&str, Color)] = &[
    ("warm_white", Color::Temperature(370)),
    ("soft_white", Color::Temperature(333)),
    ("neutral_white", Color::Temperature(250)),
    ("cool_white", Color::Temperature(200)),
    ("daylight", Color::Temperature(153)),
    ("red", Color::Xy(0.701, 0.299)),
    ("orange", Color::Xy(0.611, 0.375)),
    ("yellow", Color::Xy(0.444, 0.517)),
    ("green", Color::Xy(0.172, 0.747)),
    ("blue", Color::Xy(0.136, 0.040)),
    ("purple", Color::Xy(0.272, 0.109)),
    ("pink", Color::Xy(0.382, 0.160)),
];

pub fn color_named(name: &str) -> Option<Color> {
    let key = name.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    NAMED.iter().find(|(n, _)| *n == key).map(|(_, c)| *c)
}

pub fn color_names() -> Vec<&'static str> {
    NAMED.iter().map(|(n, _)| *n).collect()
}

impl Color {
    /// The `/set` fields for this colour.
    pub fn payload(self) -> Value {
        match self {
            Color::Temperature(mireds) => json!({ "color_temp": mireds }),
            Color::Xy(x, y) => json!({ "color": { "x": x, "y": y } }),
        }
    }
}

/// Kelvin → mireds (rounded).
pub fn kelvin_to_mireds(kelvin: u32) -> u16 {
    u16::try_from((1_000_000 + kelvin / 2) / kelvin.max(1)).unwrap_or(u16::MAX)
}

/// Brightness percent (0–100) → Zigbee level (0–254), rounded.
pub fn percent_to_level(percent: u8) -> u8 {
    u8::try_from((u32::from(percent.min(100)) * 254 + 50) / 100).unwrap_or(254)
}

/// Zigbee level (0–254) → percent (0–100), rounded.
pub fn level_to_percent(level: u8) -> u8 {
    u8::try_from((u32::from(level.min(254)) * 100 + 127) / 254).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brightness_round_trips_and_names_resolve() {
        assert_eq!(percent_to_level(0), 0);
        assert_eq!(percent_to_level(30), 76);
        assert_eq!(percent_to_level(80), 203);
        assert_eq!(percent_to_level(100), 254);
        for p in 0..=100 {
            assert_eq!(level_to_percent(percent_to_level(p)), p);
        }
        assert_eq!(color_named("Warm White"), Some(Color::Temperature(370)));
        assert_eq!(color_named("warm-white"), Some(Color::Temperature(370)));
        assert_eq!(color_named("chartreuse"), None);
        assert_eq!(kelvin_to_mireds(2700), 370);
        assert_eq!(kelvin_to_mireds(6500), 154);
    }
}
