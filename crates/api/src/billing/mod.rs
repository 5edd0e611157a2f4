//! Billing as callers see it (MCP `get_balance`, `get_usage`, `grant_credits`; REST under
//! `/api/v2/billing`): the caller's own tenant's account in the store's credit ledger. Only
//! HUMAN keys grant credits. The store keys accounts by tenant id; callers carry the tenant
//! name, looked up here (with authentication off, the `local` tenant is created on first use).

use avb_store::{Role, Store, StoreError, UsageRecord};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod rest;
pub mod tools;

use crate::auth::LOCAL_TENANT;
use crate::core::problem::{ErrorKind, Problem};
use crate::jobs::view::rfc3339_ms;
use crate::state::ApiState;

/// `get_usage` / `GET /api/v2/billing/usage`: records per call unless `limit` says otherwise.
pub const DEFAULT_USAGE_LIMIT: u32 = 50;
pub const MAX_USAGE_LIMIT: u32 = 500;
/// Caller-chosen idempotency keys are namespaced by tenant inside the ledger (whose keys are at
/// most 256 bytes), so they are limited a little below that.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;
pub const MAX_NOTE_LEN: usize = 500;

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BalanceView {
    /// Your tenant's name.
    pub tenant: String,
    /// Credits that new jobs can use.
    pub available: i64,
    /// Credits held by jobs still running (settled or released when they end).
    pub held: i64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UsageView {
    /// `use_` + 32 hex digits.
    pub id: String,
    /// The job that used it.
    pub job_id: String,
    pub tool: String,
    /// e.g. "character", "container-second", "device-command".
    pub unit: String,
    pub quantity: i64,
    /// The tariff applied: credits per 1 000 units.
    pub price: i64,
    /// Credits charged.
    pub credits: i64,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UsagePage {
    pub tenant: String,
    /// Newest first, at most `limit`.
    pub records: Vec<UsageView>,
    pub limit: u32,
}

/// `grant_credits` arguments and the `POST /api/v2/billing/grants` body.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantInput {
    /// Credits to add to your tenant's available balance; a positive whole number.
    pub credits: i64,
    /// Why, recorded with the ledger entry.
    pub note: Option<String>,
    /// Makes retries safe: a grant repeated with the same key is applied once (the first grant
    /// is returned). Without one every call grants anew.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct GrantView {
    pub tenant: String,
    /// The ledger entry (`led_` + 32 hex digits).
    pub entry_id: String,
    pub credits: i64,
    pub note: String,
    pub idempotency_key: String,
    /// RFC 3339: when the grant was first applied.
    pub created_at: String,
    /// True when this key had been granted before: nothing new was added.
    pub replayed: bool,
    /// The balance after the grant.
    pub available: i64,
    pub held: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("billing needs the database; authentication is off and no store is configured")]
    NoStore,
    #[error("{action} needs a HUMAN (operator) key; this key's role is {role}")]
    Forbidden { action: &'static str, role: Role },
    #[error("{}{message}", .field.map(|f| format!("{f}: ")).unwrap_or_default())]
    Invalid {
        field: Option<&'static str>,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<BillingError> for Problem {
    fn from(e: BillingError) -> Self {
        let kind = match &e {
            BillingError::NoStore | BillingError::Unavailable(_) => ErrorKind::Unavailable,
            BillingError::Forbidden { .. } => ErrorKind::Forbidden,
            BillingError::Invalid { .. } => ErrorKind::InvalidInput,
            BillingError::NotFound(_) => ErrorKind::NotFound,
            BillingError::Conflict(_) => ErrorKind::Conflict,
        };
        match e {
            BillingError::Invalid {
                field: Some(field),
                message,
            } => Problem::invalid(field, message),
            BillingError::Invalid {
                field: None,
                message,
            } => Problem::new(kind, message),
            forbidden @ BillingError::Forbidden { .. } => {
                Problem::operator_only(forbidden.to_string())
            }
            other => Problem::new(kind, other.to_string()),
        }
    }
}

impl From<StoreError> for BillingError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => BillingError::Invalid {
                field: None,
                message: m,
            },
            StoreError::Conflict(m) => BillingError::Conflict(m),
            StoreError::NotFound(m) => BillingError::NotFound(m),
            other => BillingError::Unavailable(other.to_string()),
        }
    }
}

/// Who may grant credits: operators.
pub const GRANT_ROLE: Role = Role::Human;

/// The error for a caller whose `role` may not grant credits.
pub fn forbidden_grant(role: Role) -> BillingError {
    BillingError::Forbidden {
        action: "granting credits",
        role,
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> BillingError {
    BillingError::Invalid {
        field: Some(field),
        message: message.into(),
    }
}

fn store(state: &ApiState) -> Result<&Store, BillingError> {
    state.store.as_ref().ok_or(BillingError::NoStore)
}

/// The store's id of the tenant named `tenant`. With authentication off the `local` tenant is
/// created on first use (every caller is its operator).
async fn tenant_id(state: &ApiState, store: &Store, tenant: &str) -> Result<String, BillingError> {
    if let Some(t) = store.tenant_by_name(tenant).await? {
        return Ok(t.id);
    }
    if !state.config.auth.required && tenant == LOCAL_TENANT {
        match store.create_tenant(tenant).await {
            Ok(t) => return Ok(t.id),
            // Created concurrently (another request or process): use that one.
            Err(StoreError::Conflict(_)) => {
                if let Some(t) = store.tenant_by_name(tenant).await? {
                    return Ok(t.id);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(BillingError::NotFound(format!(
        "no tenant named {tenant:?}"
    )))
}

/// The tenant's balance.
pub async fn balance(state: &ApiState, tenant: &str) -> Result<BalanceView, BillingError> {
    let store = store(state)?;
    let id = tenant_id(state, store, tenant).await?;
    let b = store.balance(&id).await?;
    Ok(BalanceView {
        tenant: tenant.to_owned(),
        available: b.available,
        held: b.held,
    })
}

/// The tenant's usage records, newest first: `limit` (default 50) of them, 1 to 500.
pub async fn usage(
    state: &ApiState,
    tenant: &str,
    limit: Option<u32>,
) -> Result<UsagePage, BillingError> {
    let limit = limit.unwrap_or(DEFAULT_USAGE_LIMIT);
    if !(1..=MAX_USAGE_LIMIT).contains(&limit) {
        return Err(invalid(
            "limit",
            format!("{limit} is out of range; use 1 to {MAX_USAGE_LIMIT}"),
        ));
    }
    let store = store(state)?;
    let id = tenant_id(state, store, tenant).await?;
    let records = store
        .usage(&id, usize::try_from(limit).unwrap_or(usize::MAX))
        .await?;
    Ok(UsagePage {
        tenant: tenant.to_owned(),
        records: records.into_iter().map(usage_view).collect(),
        limit,
    })
}

fn usage_view(r: UsageRecord) -> UsageView {
    UsageView {
        id: r.id,
        job_id: r.job_id,
        tool: r.tool,
        unit: r.unit,
        quantity: r.quantity,
        price: r.price,
        credits: r.credits,
        created_at: rfc3339_ms(r.created_at_ms),
    }
}

/// Checks a grant's input; the error names the field.
pub fn validate_grant(input: &GrantInput) -> Result<(), BillingError> {
    if input.credits <= 0 || input.credits > avb_store::MAX_CREDITS {
        return Err(invalid(
            "credits",
            format!(
                "must be a whole number from 1 to {}, got {}",
                avb_store::MAX_CREDITS,
                input.credits
            ),
        ));
    }
    if let Some(key) = &input.idempotency_key
        && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN)
    {
        return Err(invalid(
            "idempotency_key",
            format!(
                "must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes, got {}",
                key.len()
            ),
        ));
    }
    if let Some(note) = &input.note
        && note.chars().count() > MAX_NOTE_LEN
    {
        return Err(invalid(
            "note",
            format!("is longer than {MAX_NOTE_LEN} characters"),
        ));
    }
    Ok(())
}

/// Grants credits to the caller's own tenant. HUMAN keys only; `via` says where the grant came
/// from (recorded in the default note).
pub async fn grant(
    state: &ApiState,
    tenant: &str,
    role: Role,
    input: &GrantInput,
    via: &str,
) -> Result<GrantView, BillingError> {
    if role != GRANT_ROLE {
        return Err(forbidden_grant(role));
    }
    validate_grant(input)?;
    let store = store(state)?;
    let id = tenant_id(state, store, tenant).await?;
    let key = input
        .idempotency_key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // Each tenant's keys are its own: one tenant's key never collides with another's.
    let ledger_key = format!("grant:{id}:{key}");
    let note = input
        .note
        .clone()
        .unwrap_or_else(|| format!("granted by a HUMAN key via {via}"));
    let replayed = store.entry_by_key(&ledger_key).await?.is_some();
    let entry = store.grant(&id, input.credits, &ledger_key, &note).await?;
    if entry.amount != input.credits {
        return Err(BillingError::Conflict(format!(
            "idempotency_key {key:?} was already used for a grant of {} credits; nothing granted \
             (use a new key for a new grant)",
            entry.amount
        )));
    }
    let b = store.balance(&id).await?;
    Ok(GrantView {
        tenant: tenant.to_owned(),
        entry_id: entry.id,
        credits: entry.amount,
        note: entry.note,
        idempotency_key: key,
        created_at: rfc3339_ms(entry.created_at_ms),
        replayed,
        available: b.available,
        held: b.held,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(credits: i64) -> GrantInput {
        GrantInput {
            credits,
            note: None,
            idempotency_key: None,
        }
    }

    #[test]
    fn grants_must_be_positive_and_errors_name_the_field() {
        assert!(validate_grant(&input(1)).is_ok());
        for credits in [0, -5, i64::MAX] {
            let e = validate_grant(&input(credits)).expect_err("not positive");
            assert!(e.to_string().starts_with("credits: "), "{e}");
            assert_eq!(Problem::from(e).field.as_deref(), Some("credits"));
        }
        let mut long_key = input(1);
        long_key.idempotency_key = Some("k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1));
        let e = validate_grant(&long_key).expect_err("key too long");
        assert_eq!(Problem::from(e).field.as_deref(), Some("idempotency_key"));
    }

    #[test]
    fn grant_input_rejects_unknown_fields() {
        let e = serde_json::from_value::<GrantInput>(serde_json::json!({"credits": 1, "x": 2}))
            .expect_err("unknown field");
        assert!(e.to_string().contains("unknown field `x`"), "{e}");
    }
}
