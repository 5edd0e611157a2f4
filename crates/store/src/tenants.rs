//! Tenants: a unique name, an id, and (created with it) a credit account.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{new_id, now_ms};
use crate::{Store, StoreError};

const MAX_NAME_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// `tnt_` + 32 hex digits.
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
}

/// Tenant names are 1 to 64 characters from `a-z`, `0-9` and `-`. The error names the problem.
pub fn validate_tenant_name(name: &str) -> Result<(), StoreError> {
    let invalid = |why: String| Err(StoreError::Invalid(format!("invalid tenant name: {why}")));
    if name.is_empty() {
        return invalid("it is empty; use 1 to 64 characters from a-z, 0-9 and '-'".into());
    }
    let len = name.chars().count();
    if len > MAX_NAME_LEN {
        return invalid(format!(
            "it is {len} characters long; at most {MAX_NAME_LEN} are allowed"
        ));
    }
    if let Some((pos, c)) = name
        .chars()
        .enumerate()
        .find(|(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
    {
        return invalid(format!(
            "{c:?} at position {} of {name:?}; only a-z, 0-9 and '-' are allowed",
            pos + 1
        ));
    }
    Ok(())
}

impl Store {
    /// Creates a tenant with an empty account. `Invalid` for a bad name, `Conflict` when the
    /// name is taken.
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant, StoreError> {
        validate_tenant_name(name)?;
        let tenant = Tenant {
            id: new_id("tnt"),
            name: name.to_owned(),
            created_at_ms: now_ms(),
        };
        let mut w = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&tenant.id)
        .bind(&tenant.name)
        .bind(tenant.created_at_ms)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            w.rollback().await?;
            return Err(StoreError::Conflict(format!(
                "tenant name {name:?} is already taken"
            )));
        }
        sqlx::query("INSERT INTO accounts (tenant_id, available, held) VALUES ($1, 0, 0)")
            .bind(&tenant.id)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        Ok(tenant)
    }

    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    pub async fn tenant_by_id(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// Every tenant, oldest first.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }
}

fn tenant_from_row(row: &AnyRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at_ms: row.try_get("created_at")?,
    })
}
