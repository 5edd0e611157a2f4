//! The credit ledger: append-only entries, each with a unique idempotency key, and the account
//! balance updated in the same transaction. Applying an idempotency key again returns the first
//! entry and changes nothing; a hold never takes the available balance below zero.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{WriteTx, new_id, now_ms, sql_limit};
use crate::{Store, StoreError};

const MAX_KEY_LEN: usize = 256;

/// The most credits one ledger operation moves (a trillion).
pub const MAX_CREDITS: i64 = 1_000_000_000_000;
/// The most credits an account may hold available: far from `i64::MAX`, so no sum of
/// balances, holds and grants can overflow on either database.
pub const MAX_BALANCE: i64 = 1_000_000_000_000_000;
const ENTRY_COLUMNS: &str =
    "id, tenant_id, kind, amount, job_id, hold_key, idempotency_key, note, created_at";
const USAGE_COLUMNS: &str =
    "id, tenant_id, job_id, hold_key, tool, unit, quantity, price, credits, created_at";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    Grant,
    Hold,
    Settle,
    Release,
    Refund,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Grant => "grant",
            EntryKind::Hold => "hold",
            EntryKind::Settle => "settle",
            EntryKind::Release => "release",
            EntryKind::Refund => "refund",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntryKind {
    type Err = String;

    fn from_str(s: &str) -> Result<EntryKind, String> {
        Ok(match s {
            "grant" => EntryKind::Grant,
            "hold" => EntryKind::Hold,
            "settle" => EntryKind::Settle,
            "release" => EntryKind::Release,
            "refund" => EntryKind::Refund,
            _ => return Err(format!("unknown ledger entry kind {s:?}")),
        })
    }
}

/// One ledger entry. `amount` is never negative; its meaning depends on `kind`: credits added
/// (grant, refund), held (hold), charged (settle; the rest of the hold went back to the
/// available balance) or returned (release; 0 when the hold was already closed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// `led_` + 32 hex digits.
    pub id: String,
    pub tenant_id: String,
    pub kind: EntryKind,
    pub amount: i64,
    pub job_id: Option<String>,
    /// For hold, settle and release: the hold's idempotency key.
    pub hold_key: Option<String>,
    pub idempotency_key: String,
    pub note: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Credits that new holds can take.
    pub available: i64,
    /// Credits in open holds.
    pub held: i64,
}

/// What a settled job used, recorded with the settle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub tool: String,
    /// e.g. "character", "container-second", "device-command".
    pub unit: String,
    pub quantity: i64,
    /// The tariff applied: credits per 1 000 units.
    pub price: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// `use_` + 32 hex digits.
    pub id: String,
    pub tenant_id: String,
    pub job_id: String,
    pub hold_key: String,
    pub tool: String,
    pub unit: String,
    pub quantity: i64,
    /// Credits per 1 000 units.
    pub price: i64,
    /// Credits charged (the settle's amount).
    pub credits: i64,
    pub created_at_ms: i64,
}

struct HoldRow {
    tenant_id: String,
    job_id: String,
    amount: i64,
    state: String,
}

impl Store {
    /// Adds credits to the tenant's available balance.
    pub async fn grant(
        &self,
        tenant_id: &str,
        credits: i64,
        idempotency_key: &str,
        note: &str,
    ) -> Result<LedgerEntry, StoreError> {
        self.credit(EntryKind::Grant, tenant_id, credits, idempotency_key, note)
            .await
    }

    /// Gives credits back to the tenant's available balance (e.g. for a failed job that was
    /// already settled).
    pub async fn refund(
        &self,
        tenant_id: &str,
        credits: i64,
        idempotency_key: &str,
        note: &str,
    ) -> Result<LedgerEntry, StoreError> {
        self.credit(EntryKind::Refund, tenant_id, credits, idempotency_key, note)
            .await
    }

    /// Moves `credits` from available to held for `job_id`. The hold is identified by
    /// `idempotency_key` (the `hold_key` of settle and release). Fails with
    /// `InsufficientCredits` (and holds nothing) when the available balance is smaller.
    pub async fn hold(
        &self,
        tenant_id: &str,
        credits: i64,
        idempotency_key: &str,
        job_id: &str,
    ) -> Result<LedgerEntry, StoreError> {
        check_amount("hold", credits, false)?;
        check_key(idempotency_key)?;
        if let Some(first) = self.entry_by_key(idempotency_key).await? {
            return same_operation(first, EntryKind::Hold, Some(tenant_id), None);
        }
        let entry = LedgerEntry::new(
            EntryKind::Hold,
            tenant_id,
            credits,
            Some(job_id),
            Some(idempotency_key),
            idempotency_key,
            format!("held {credits} credits for job {job_id}"),
        );
        let mut w = self.begin_write().await?;
        // Atomic check-and-take: concurrent holds can never overdraw.
        let taken = sqlx::query(
            "UPDATE accounts SET available = available - $1, held = held + $1 \
             WHERE tenant_id = $2 AND available >= $1",
        )
        .bind(credits)
        .bind(tenant_id)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if taken == 0 {
            let available = account(&mut w, tenant_id).await?.map(|b| b.available);
            w.rollback().await?;
            // The same key may have been applied concurrently since the check above.
            if let Some(first) = self.entry_by_key(idempotency_key).await? {
                return same_operation(first, EntryKind::Hold, Some(tenant_id), None);
            }
            return Err(match available {
                Some(balance) => StoreError::InsufficientCredits {
                    balance,
                    needed: credits,
                },
                None => no_tenant(tenant_id),
            });
        }
        if !insert_entry(&mut w, &entry).await? {
            return self
                .replay(w, idempotency_key, EntryKind::Hold, Some(tenant_id), None)
                .await;
        }
        sqlx::query(
            "INSERT INTO holds (hold_key, tenant_id, job_id, amount, state, created_at) \
             VALUES ($1, $2, $3, $4, 'held', $5)",
        )
        .bind(idempotency_key)
        .bind(tenant_id)
        .bind(job_id)
        .bind(credits)
        .bind(entry.created_at_ms)
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(entry)
    }

    /// Closes the hold `hold_key`: charges `actual` (at most what was held), returns the rest to
    /// the available balance and records `usage` for the hold's job. `Conflict` if the hold was
    /// already settled or released (with another idempotency key).
    pub async fn settle(
        &self,
        hold_key: &str,
        actual: i64,
        idempotency_key: &str,
        usage: &Usage,
    ) -> Result<LedgerEntry, StoreError> {
        check_amount("settle", actual, false)?;
        check_key(idempotency_key)?;
        if let Some(first) = self.entry_by_key(idempotency_key).await? {
            return same_operation(first, EntryKind::Settle, None, Some(hold_key));
        }
        let mut w = self.begin_write().await?;
        let Some(hold) = hold_row(&mut w, hold_key).await? else {
            w.rollback().await?;
            return Err(no_hold(hold_key));
        };
        if actual > hold.amount {
            w.rollback().await?;
            return Err(StoreError::Invalid(format!(
                "cannot settle {actual} credits: hold {hold_key:?} is for {}",
                hold.amount
            )));
        }
        let now = now_ms();
        if !close_hold(&mut w, hold_key, "settled", Some(actual), now).await? {
            let state = hold_row(&mut w, hold_key).await?.map(|h| h.state);
            w.rollback().await?;
            if let Some(first) = self.entry_by_key(idempotency_key).await? {
                return same_operation(first, EntryKind::Settle, None, Some(hold_key));
            }
            let state = state.unwrap_or(hold.state);
            return Err(StoreError::Conflict(format!(
                "hold {hold_key:?} is already {state}; nothing settled"
            )));
        }
        let returned = hold.amount - actual;
        sqlx::query(
            "UPDATE accounts SET held = held - $1, available = available + $2 WHERE tenant_id = $3",
        )
        .bind(hold.amount)
        .bind(returned)
        .bind(&hold.tenant_id)
        .execute(&mut *w.tx)
        .await?;
        let mut entry = LedgerEntry::new(
            EntryKind::Settle,
            &hold.tenant_id,
            actual,
            Some(&hold.job_id),
            Some(hold_key),
            idempotency_key,
            format!(
                "charged {actual} of {} held; {returned} returned",
                hold.amount
            ),
        );
        entry.created_at_ms = now;
        if !insert_entry(&mut w, &entry).await? {
            return self
                .replay(w, idempotency_key, EntryKind::Settle, None, Some(hold_key))
                .await;
        }
        sqlx::query(&format!(
            "INSERT INTO usage_records ({USAGE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(new_id("use"))
        .bind(&hold.tenant_id)
        .bind(&hold.job_id)
        .bind(hold_key)
        .bind(&usage.tool)
        .bind(&usage.unit)
        .bind(usage.quantity)
        .bind(usage.price)
        .bind(actual)
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(entry)
    }

    /// Closes the hold `hold_key` returning everything it held. If the hold is already settled
    /// or released this records (and returns) an entry of amount 0 and changes no balance.
    pub async fn release(
        &self,
        hold_key: &str,
        idempotency_key: &str,
    ) -> Result<LedgerEntry, StoreError> {
        check_key(idempotency_key)?;
        if let Some(first) = self.entry_by_key(idempotency_key).await? {
            return same_operation(first, EntryKind::Release, None, Some(hold_key));
        }
        let mut w = self.begin_write().await?;
        let Some(hold) = hold_row(&mut w, hold_key).await? else {
            w.rollback().await?;
            return Err(no_hold(hold_key));
        };
        let now = now_ms();
        let (amount, note) = if close_hold(&mut w, hold_key, "released", None, now).await? {
            sqlx::query(
                "UPDATE accounts SET held = held - $1, available = available + $1 \
                 WHERE tenant_id = $2",
            )
            .bind(hold.amount)
            .bind(&hold.tenant_id)
            .execute(&mut *w.tx)
            .await?;
            (
                hold.amount,
                format!("released {} held credits", hold.amount),
            )
        } else {
            let state = hold_row(&mut w, hold_key)
                .await?
                .map_or(hold.state, |h| h.state);
            (0, format!("hold already {state}; nothing returned"))
        };
        let mut entry = LedgerEntry::new(
            EntryKind::Release,
            &hold.tenant_id,
            amount,
            Some(&hold.job_id),
            Some(hold_key),
            idempotency_key,
            note,
        );
        entry.created_at_ms = now;
        if !insert_entry(&mut w, &entry).await? {
            return self
                .replay(w, idempotency_key, EntryKind::Release, None, Some(hold_key))
                .await;
        }
        w.commit().await?;
        Ok(entry)
    }

    pub async fn balance(&self, tenant_id: &str) -> Result<Balance, StoreError> {
        let row = sqlx::query("SELECT available, held FROM accounts WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => balance_from_row(&row),
            None => Err(no_tenant(tenant_id)),
        }
    }

    /// The tenant's usage records, newest first.
    pub async fn usage(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USAGE_COLUMNS} FROM usage_records WHERE tenant_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(tenant_id)
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(usage_from_row).collect()
    }

    /// The tenant's ledger entries, newest first.
    pub async fn entries(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE tenant_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(tenant_id)
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// The entry recorded under `idempotency_key`, if any.
    pub async fn entry_by_key(
        &self,
        idempotency_key: &str,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE idempotency_key = $1"
        ))
        .bind(idempotency_key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(entry_from_row).transpose()
    }

    /// Grant and refund: add to the available balance.
    async fn credit(
        &self,
        kind: EntryKind,
        tenant_id: &str,
        credits: i64,
        idempotency_key: &str,
        note: &str,
    ) -> Result<LedgerEntry, StoreError> {
        check_amount(kind.as_str(), credits, true)?;
        check_key(idempotency_key)?;
        if let Some(first) = self.entry_by_key(idempotency_key).await? {
            return same_operation(first, kind, Some(tenant_id), None);
        }
        let entry = LedgerEntry::new(kind, tenant_id, credits, None, None, idempotency_key, note);
        let mut w = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE accounts SET available = available + $1 WHERE tenant_id = $2 \
             AND available <= $3 - $1",
        )
        .bind(credits)
        .bind(tenant_id)
        .bind(MAX_BALANCE)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if updated == 0 {
            w.rollback().await?;
            return match self.balance(tenant_id).await {
                Ok(b) => Err(StoreError::Invalid(format!(
                    "{} of {credits} would take the balance ({}) past {MAX_BALANCE}, the most an \
                     account holds",
                    kind.as_str(),
                    b.available
                ))),
                Err(_) => Err(no_tenant(tenant_id)),
            };
        }
        if !insert_entry(&mut w, &entry).await? {
            return self
                .replay(w, idempotency_key, kind, Some(tenant_id), None)
                .await;
        }
        w.commit().await?;
        Ok(entry)
    }

    /// The key was applied concurrently by another transaction: undo ours, return theirs.
    async fn replay(
        &self,
        w: WriteTx,
        idempotency_key: &str,
        kind: EntryKind,
        tenant_id: Option<&str>,
        hold_key: Option<&str>,
    ) -> Result<LedgerEntry, StoreError> {
        w.rollback().await?;
        match self.entry_by_key(idempotency_key).await? {
            Some(first) => same_operation(first, kind, tenant_id, hold_key),
            None => Err(StoreError::Conflict(format!(
                "idempotency key {idempotency_key:?} is in use by a transaction that did not commit; retry"
            ))),
        }
    }
}

impl LedgerEntry {
    fn new(
        kind: EntryKind,
        tenant_id: &str,
        amount: i64,
        job_id: Option<&str>,
        hold_key: Option<&str>,
        idempotency_key: &str,
        note: impl Into<String>,
    ) -> LedgerEntry {
        LedgerEntry {
            id: new_id("led"),
            tenant_id: tenant_id.to_owned(),
            kind,
            amount,
            job_id: job_id.map(str::to_owned),
            hold_key: hold_key.map(str::to_owned),
            idempotency_key: idempotency_key.to_owned(),
            note: note.into(),
            created_at_ms: now_ms(),
        }
    }
}

/// A repeated idempotency key must repeat the same operation; anything else is a caller bug
/// that must not pass silently.
fn same_operation(
    first: LedgerEntry,
    kind: EntryKind,
    tenant_id: Option<&str>,
    hold_key: Option<&str>,
) -> Result<LedgerEntry, StoreError> {
    let same = first.kind == kind
        && tenant_id.is_none_or(|t| t == first.tenant_id)
        && hold_key.is_none_or(|h| first.hold_key.as_deref() == Some(h));
    if same {
        Ok(first)
    } else {
        Err(StoreError::Conflict(format!(
            "idempotency key {:?} was already used for a {} of tenant {}{}",
            first.idempotency_key,
            first.kind,
            first.tenant_id,
            first
                .hold_key
                .as_deref()
                .map(|h| format!(" (hold {h:?})"))
                .unwrap_or_default()
        )))
    }
}

fn check_amount(what: &str, credits: i64, positive: bool) -> Result<(), StoreError> {
    if credits < 0 || (positive && credits == 0) {
        let rule = if positive { "positive" } else { "zero or more" };
        return Err(StoreError::Invalid(format!(
            "{what} amount must be {rule}, got {credits}"
        )));
    }
    if credits > MAX_CREDITS {
        return Err(StoreError::Invalid(format!(
            "{what} amount must be at most {MAX_CREDITS}, got {credits}"
        )));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(StoreError::Invalid(format!(
            "idempotency key must be 1 to {MAX_KEY_LEN} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

fn no_tenant(tenant_id: &str) -> StoreError {
    StoreError::NotFound(format!("no tenant {tenant_id:?}"))
}

fn no_hold(hold_key: &str) -> StoreError {
    StoreError::NotFound(format!("no hold {hold_key:?}"))
}

/// Inserts the entry unless its idempotency key exists; `false` if it did (nothing inserted).
async fn insert_entry(w: &mut WriteTx, e: &LedgerEntry) -> Result<bool, StoreError> {
    let inserted = sqlx::query(&format!(
        "INSERT INTO ledger_entries ({ENTRY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (idempotency_key) DO NOTHING"
    ))
    .bind(&e.id)
    .bind(&e.tenant_id)
    .bind(e.kind.as_str())
    .bind(e.amount)
    .bind(e.job_id.as_deref())
    .bind(e.hold_key.as_deref())
    .bind(&e.idempotency_key)
    .bind(&e.note)
    .bind(e.created_at_ms)
    .execute(&mut *w.tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Moves an open hold to `state`; `false` if it was not open (closed by someone else first).
async fn close_hold(
    w: &mut WriteTx,
    hold_key: &str,
    state: &str,
    charged: Option<i64>,
    now: i64,
) -> Result<bool, StoreError> {
    let closed = sqlx::query(
        "UPDATE holds SET state = $1, charged = $2, closed_at = $3 \
         WHERE hold_key = $4 AND state = 'held'",
    )
    .bind(state)
    .bind(charged)
    .bind(now)
    .bind(hold_key)
    .execute(&mut *w.tx)
    .await?
    .rows_affected();
    Ok(closed == 1)
}

async fn hold_row(w: &mut WriteTx, hold_key: &str) -> Result<Option<HoldRow>, StoreError> {
    let row = sqlx::query("SELECT tenant_id, job_id, amount, state FROM holds WHERE hold_key = $1")
        .bind(hold_key)
        .fetch_optional(&mut *w.tx)
        .await?;
    row.map(|row| {
        Ok(HoldRow {
            tenant_id: row.try_get("tenant_id")?,
            job_id: row.try_get("job_id")?,
            amount: row.try_get("amount")?,
            state: row.try_get("state")?,
        })
    })
    .transpose()
}

async fn account(w: &mut WriteTx, tenant_id: &str) -> Result<Option<Balance>, StoreError> {
    let row = sqlx::query("SELECT available, held FROM accounts WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(&mut *w.tx)
        .await?;
    row.as_ref().map(balance_from_row).transpose()
}

fn balance_from_row(row: &AnyRow) -> Result<Balance, StoreError> {
    Ok(Balance {
        available: row.try_get("available")?,
        held: row.try_get("held")?,
    })
}

fn entry_from_row(row: &AnyRow) -> Result<LedgerEntry, StoreError> {
    let kind: String = row.try_get("kind")?;
    Ok(LedgerEntry {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        kind: kind
            .parse()
            .map_err(|e: String| StoreError::Database(sqlx::Error::Decode(e.into())))?,
        amount: row.try_get("amount")?,
        job_id: row.try_get("job_id")?,
        hold_key: row.try_get("hold_key")?,
        idempotency_key: row.try_get("idempotency_key")?,
        note: row.try_get("note")?,
        created_at_ms: row.try_get("created_at")?,
    })
}

fn usage_from_row(row: &AnyRow) -> Result<UsageRecord, StoreError> {
    Ok(UsageRecord {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        job_id: row.try_get("job_id")?,
        hold_key: row.try_get("hold_key")?,
        tool: row.try_get("tool")?,
        unit: row.try_get("unit")?,
        quantity: row.try_get("quantity")?,
        price: row.try_get("price")?,
        credits: row.try_get("credits")?,
        created_at_ms: row.try_get("created_at")?,
    })
}
