//! `tenants = [...]`: whom a shared resource serves. A home backend (`[devices.*]`) and a
//! configured upstream (`[mcp_servers.*]`) belong to the installation, not to a tenant, so each
//! names the tenants it serves; every other tenant neither sees nor calls it. The default is the
//! `local` tenant alone (the tenant of `avb dev`'s keys and of every caller when authentication
//! is off), so a fresh installation behaves as a single-user one and a second tenant is given a
//! home on purpose, never by accident. `"*"` serves every tenant.

use serde::Deserialize;

/// The tenant of the keys `avb dev` makes, and of every caller when authentication is off.
pub const LOCAL_TENANT: &str = "local";

/// Serves every tenant, when it is the one entry.
pub const EVERY_TENANT: &str = "*";

/// The tenants one resource serves (by tenant name).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ServedTenants(Vec<String>);

impl Default for ServedTenants {
    fn default() -> Self {
        Self(vec![LOCAL_TENANT.to_string()])
    }
}

impl ServedTenants {
    pub fn new(names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self(names.into_iter().map(Into::into).collect())
    }

    /// `AVB_*_TENANTS`: tenant names separated by commas, or `*`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let names = super::env::split_list(text);
        let served = Self(names);
        served.check()?;
        Ok(served)
    }

    pub fn serves(&self, tenant: &str) -> bool {
        self.0.iter().any(|t| t == tenant || t == EVERY_TENANT)
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether the list means something: not empty, names without blanks, `*` alone.
    pub fn check(&self) -> Result<(), String> {
        if self.0.is_empty() {
            return Err(format!(
                "an empty list serves nobody; name tenants, {LOCAL_TENANT:?} (the default) or \
                 {EVERY_TENANT:?} for every tenant"
            ));
        }
        if let Some(bad) = self
            .0
            .iter()
            .find(|t| t.is_empty() || t.len() > 100 || t.chars().any(char::is_whitespace))
        {
            return Err(format!(
                "{bad:?} is not a tenant name (1-100 characters, no blanks)"
            ));
        }
        if self.0.len() > 1 && self.0.iter().any(|t| t == EVERY_TENANT) {
            return Err(format!(
                "{EVERY_TENANT:?} serves every tenant: give it alone"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_tenants_are_served_unless_every_tenant_is() {
        let default = ServedTenants::default();
        assert!(default.serves("local"));
        assert!(!default.serves("acme"));
        let two = ServedTenants::parse("home, office").expect("two");
        assert!(two.serves("office") && !two.serves("local"));
        assert!(ServedTenants::parse("*").expect("all").serves("anyone"));
        for bad in ["", " , ", "*,home"] {
            assert!(ServedTenants::parse(bad).is_err(), "{bad:?}");
        }
    }
}
