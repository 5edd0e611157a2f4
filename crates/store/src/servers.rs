//! Provisioned MCP servers (one record per server, written by its workflow) and their lifecycle
//! events, the per-server audit trail. Writes are idempotent: records are upserted by id,
//! events carry a unique key (workflow id + step), so retried activities write once.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{new_id, now_ms, sql_limit};
use crate::{Store, StoreError};

const SERVER_COLUMNS: &str = "id, tenant, service_name, template, replicas, status, endpoints, error, created_at, updated_at, running_since, host";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    /// `srv_` + 32 hex digits (also the workflow ids' stem).
    pub id: String,
    pub tenant: String,
    pub service_name: String,
    pub template: String,
    pub replicas: i64,
    /// creating, running, failed, deleting, deleted
    pub status: String,
    /// JSON array of the replicas' endpoints.
    pub endpoints: String,
    pub error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// When all replicas first answered MCP (billing blocks count from here); set once.
    pub running_since_ms: Option<i64>,
    /// The host whose workers run its replicas (`None`: any provisioning worker reaches them).
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerEvent {
    pub id: String,
    pub server_id: String,
    pub tenant: String,
    pub kind: String,
    /// JSON object.
    pub detail: String,
    pub created_at_ms: i64,
}

/// A tenant's limits on new servers.
#[derive(Debug, Clone, Copy)]
pub struct CreateLimits {
    /// Most live (not failed, not deleted) servers.
    pub quota: usize,
    /// Most creates started in the last hour, failed ones included; 0: no limit.
    pub per_hour: usize,
}

/// Why a new server was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum CreateRefused {
    #[error("the tenant already has a live server of this name")]
    NameTaken,
    #[error("the tenant has {live} live servers, its quota")]
    Quota { live: usize },
    #[error("the tenant started {recent} creates in the last hour")]
    Rate { recent: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CreateRefused {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::from(e))
    }
}

/// Binds `record`'s fields in `SERVER_COLUMNS` order ($1 … $12).
fn bind_record<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    record: &'q ServerRecord,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&record.id)
        .bind(&record.tenant)
        .bind(&record.service_name)
        .bind(&record.template)
        .bind(record.replicas)
        .bind(&record.status)
        .bind(&record.endpoints)
        .bind(&record.error)
        .bind(record.created_at_ms)
        .bind(record.updated_at_ms)
        .bind(record.running_since_ms)
        .bind(&record.host)
}

fn server_from_row(r: &AnyRow) -> Result<ServerRecord, StoreError> {
    Ok(ServerRecord {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        service_name: r.try_get("service_name")?,
        template: r.try_get("template")?,
        replicas: r.try_get("replicas")?,
        status: r.try_get("status")?,
        endpoints: r.try_get("endpoints")?,
        error: r.try_get("error")?,
        created_at_ms: r.try_get("created_at")?,
        updated_at_ms: r.try_get("updated_at")?,
        running_since_ms: r.try_get("running_since")?,
        host: r.try_get("host")?,
    })
}

impl Store {
    /// Writes `record` (insert, or update everything but `created_at`; `running_since` is kept
    /// once set). Delete wins: a server being deleted or deleted keeps that status against a
    /// late write of a create still under way (it cannot come back as `running` and be billed).
    pub async fn upsert_server(&self, record: &ServerRecord) -> Result<(), StoreError> {
        let mut w = self.begin_write().await?;
        let sql = format!(
            "INSERT INTO mcp_servers ({SERVER_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (id) DO UPDATE SET status = CASE \
               WHEN mcp_servers.status IN ('deleting', 'deleted') \
                AND excluded.status NOT IN ('deleting', 'deleted') THEN mcp_servers.status \
               ELSE excluded.status END, \
             endpoints = excluded.endpoints, error = excluded.error, \
             replicas = excluded.replicas, updated_at = excluded.updated_at, \
             host = COALESCE(excluded.host, mcp_servers.host), \
             running_since = CASE WHEN mcp_servers.status IN ('deleting', 'deleted') \
               THEN mcp_servers.running_since \
               ELSE COALESCE(mcp_servers.running_since, excluded.running_since) END"
        );
        bind_record(sqlx::query(&sql), record)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await
    }

    /// The server `id` of `tenant` (another tenant's server is `None`, like an unknown id).
    pub async fn server(&self, tenant: &str, id: &str) -> Result<Option<ServerRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SERVER_COLUMNS} FROM mcp_servers WHERE id = $1 AND tenant = $2"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(server_from_row).transpose()
    }

    /// `tenant`'s servers, newest first (all tenants' when `tenant` is `None`), without deleted
    /// ones unless `include_deleted`.
    pub async fn servers(
        &self,
        tenant: Option<&str>,
        include_deleted: bool,
        limit: usize,
    ) -> Result<Vec<ServerRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SERVER_COLUMNS} FROM mcp_servers \
             WHERE ($1 = '' OR tenant = $1) AND ($2 = 1 OR status <> 'deleted') \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(tenant.unwrap_or(""))
        .bind(i64::from(include_deleted))
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(server_from_row).collect()
    }

    /// Inserts a new server's first record unless the tenant's limits refuse it, decided in one
    /// write transaction: two concurrent creates cannot both take the last quota place or one
    /// name (the unique index on live names backs the name check).
    pub async fn insert_new_server(
        &self,
        record: &ServerRecord,
        limits: CreateLimits,
    ) -> Result<(), CreateRefused> {
        let mut w = self.begin_write().await?;
        if self.backend == crate::db::Backend::Postgres {
            // SQLite's write transaction already runs alone; PostgreSQL's needs a lock per tenant.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("mcp_servers/{}", record.tenant))
                .execute(&mut *w.tx)
                .await?;
        }
        let live: Vec<String> = sqlx::query(
            "SELECT service_name FROM mcp_servers \
             WHERE tenant = $1 AND status NOT IN ('failed', 'deleted')",
        )
        .bind(&record.tenant)
        .fetch_all(&mut *w.tx)
        .await?
        .iter()
        .map(|r| r.try_get("service_name"))
        .collect::<Result<_, _>>()?;
        if live.contains(&record.service_name) {
            return Err(CreateRefused::NameTaken);
        }
        if live.len() >= limits.quota {
            return Err(CreateRefused::Quota { live: live.len() });
        }
        if limits.per_hour > 0 {
            let since = record.created_at_ms - 3_600_000;
            let recent: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM mcp_servers WHERE tenant = $1 AND created_at > $2",
            )
            .bind(&record.tenant)
            .bind(since)
            .fetch_one(&mut *w.tx)
            .await?
            .try_get("n")?;
            if usize::try_from(recent).unwrap_or(usize::MAX) >= limits.per_hour {
                return Err(CreateRefused::Rate {
                    recent: usize::try_from(recent).unwrap_or(usize::MAX),
                });
            }
        }
        let sql = format!(
            "INSERT INTO mcp_servers ({SERVER_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        let inserted = bind_record(sqlx::query(&sql), record)
            .execute(&mut *w.tx)
            .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(CreateRefused::NameTaken);
            }
            Err(e) => return Err(e.into()),
        }
        w.commit().await?;
        Ok(())
    }

    /// The records of the servers `ids` (any tenant, any status): what reconciliation compares
    /// the engine's replicas with, looked up by the ids the engine reports.
    pub async fn servers_by_ids(&self, ids: &[String]) -> Result<Vec<ServerRecord>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {SERVER_COLUMNS} FROM mcp_servers WHERE id IN ({})",
                marks.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id);
            }
            for row in query.fetch_all(&self.pool).await? {
                out.push(server_from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// Every server of every tenant that should have replicas (running or degraded), however
    /// many records there are: what drift and billing look at.
    pub async fn live_servers(&self) -> Result<Vec<ServerRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SERVER_COLUMNS} FROM mcp_servers WHERE status IN ('running', 'degraded') \
             ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(server_from_row).collect()
    }

    /// The hosts that run (or ran, within the retention period) replicas of recorded servers,
    /// in name order: the hosts the reconciliation visits.
    pub async fn server_hosts(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT host FROM mcp_servers WHERE host IS NOT NULL ORDER BY host",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get("host").map_err(StoreError::from))
            .collect()
    }

    /// Failed and deleted records last changed before `before_ms`, oldest first (at most
    /// `limit`): the ones the retention period lets go.
    pub async fn expired_servers(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<ServerRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SERVER_COLUMNS} FROM mcp_servers \
             WHERE status IN ('failed', 'deleted') AND updated_at < $1 \
             ORDER BY updated_at, id LIMIT $2"
        ))
        .bind(before_ms)
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(server_from_row).collect()
    }

    /// Removes the record of server `id` if it is failed or deleted (its events stay, as the
    /// audit trail); false when there was no such record.
    pub async fn purge_server(&self, id: &str) -> Result<bool, StoreError> {
        let mut w = self.begin_write().await?;
        let n = sqlx::query(
            "DELETE FROM mcp_servers WHERE id = $1 AND status IN ('failed', 'deleted')",
        )
        .bind(id)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        w.commit().await?;
        Ok(n == 1)
    }

    /// Every running server of every tenant: what mounts for its tenant. No window: however
    /// many failed or deleted records newer ones an installation has, a running server is here.
    pub async fn running_servers(&self) -> Result<Vec<ServerRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SERVER_COLUMNS} FROM mcp_servers WHERE status = 'running' \
             ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(server_from_row).collect()
    }

    /// Appends a lifecycle event; `event_key` makes a repeated append a no-op (returns false).
    pub async fn append_server_event(
        &self,
        event_key: &str,
        server_id: &str,
        tenant: &str,
        kind: &str,
        detail: &str,
    ) -> Result<bool, StoreError> {
        let mut w = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO mcp_server_events \
             (id, server_id, tenant, kind, detail, event_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_key) DO NOTHING",
        )
        .bind(new_id("evt"))
        .bind(server_id)
        .bind(tenant)
        .bind(kind)
        .bind(detail)
        .bind(event_key)
        .bind(now_ms())
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        w.commit().await?;
        Ok(inserted == 1)
    }

    /// The events of `tenant`'s server `server_id`, oldest first.
    pub async fn server_events(
        &self,
        tenant: &str,
        server_id: &str,
    ) -> Result<Vec<ServerEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, server_id, tenant, kind, detail, created_at FROM mcp_server_events \
             WHERE server_id = $1 AND tenant = $2 ORDER BY created_at, id",
        )
        .bind(server_id)
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ServerEvent {
                    id: r.try_get("id")?,
                    server_id: r.try_get("server_id")?,
                    tenant: r.try_get("tenant")?,
                    kind: r.try_get("kind")?,
                    detail: r.try_get("detail")?,
                    created_at_ms: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}
