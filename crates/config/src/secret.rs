//! `Secret`: a configuration value that must never reach a log (API keys, tokens, header values,
//! a program's environment). Structs holding one derive `Debug` and stay safe to print.

use std::fmt;

use serde::Deserialize;

/// Prints as `<redacted>`; `expose()` is the one way to the value, so every read of a secret is
/// visible where it happens. Deserializes as the value itself (`token = "…"` in TOML).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }

    /// For rewriting the value in place (`${VAR}` expansion).
    pub fn expose_mut(&mut self) -> &mut T {
        &mut self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Self(value.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed_read_by_expose_deserialized_as_the_value() {
        #[derive(Debug, Deserialize)]
        struct Holder {
            token: Secret<String>,
            maybe: Option<Secret<String>>,
        }
        let h: Holder =
            toml::from_str("token = \"hunter2\"\nmaybe = \"swordfish\"\n").expect("toml");
        assert_eq!(h.token.expose(), "hunter2");
        assert_eq!(
            h.maybe.as_ref().map(|s| s.expose().as_str()),
            Some("swordfish")
        );
        let shown = format!("{h:?} {} {:#?}", h.token, h.maybe);
        assert!(
            !shown.contains("hunter2") && !shown.contains("swordfish"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"), "{shown}");
        assert_eq!(Secret::from("x"), Secret::new(String::from("x")));
    }
}
