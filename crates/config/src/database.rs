//! `[database]`: where tenants, keys, the ledger and server records live.

use serde::Deserialize;

use super::Secret;
use super::env::EnvVar;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `DATABASE_URL` (or `AVB_DATABASE_URL`): `postgres://…` or `sqlite://…`; default a SQLite
    /// file `avb.db` in the data directory. May hold a password: never printed.
    pub url: Option<Secret<String>>,
}

pub const ENV: &[EnvVar<DatabaseSettings>] = &[
    EnvVar::new(
        "DATABASE_URL",
        "postgres://… or sqlite://… (default sqlite in AVB_DATA_DIR/avb.db); never printed",
        |d, v| {
            d.url = Some(v.into());
            Ok(())
        },
    ),
    EnvVar::new(
        "AVB_DATABASE_URL",
        "the same under our prefix; DATABASE_URL wins when both are set",
        |d, v| {
            // The conventional name wins over ours when both are set, in either order.
            d.url.get_or_insert_with(|| v.into());
            Ok(())
        },
    ),
];
