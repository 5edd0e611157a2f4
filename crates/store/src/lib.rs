//! The database layer: tenants, API keys, the credit ledger, provisioned servers and artifacts.
//!
//! One code path serves both backends through sqlx's `Any` driver: a SQLite file by default
//! (`sqlite://PATH`, WAL, writers serialized), PostgreSQL when the URL says `postgres://`.
//! Migrations live in the repository's `migrations/` directory, are embedded at build time and
//! applied by [`Store::connect`].

mod artifacts;
mod db;
mod error;
mod keys;
mod ledger;
mod servers;
mod tenants;

pub use artifacts::StoredArtifact;
pub use db::{MigrationReport, Store, now_ms};
pub use error::StoreError;
pub use keys::{KeyInfo, NewKey, ParseRoleError, Principal, Role};
pub use ledger::{Balance, EntryKind, LedgerEntry, MAX_BALANCE, MAX_CREDITS, Usage, UsageRecord};
pub use servers::{CreateLimits, CreateRefused, ServerEvent, ServerRecord};
pub use tenants::{Tenant, validate_tenant_name};
