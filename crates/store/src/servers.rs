//! Provisioned MCP servers (one record per server, written by its workflow) and their lifecycle
//! events, the per-server audit trail. Writes are idempotent: records are upserted by id,
//! events carry a unique key (workflow id + step), so retried activities write once.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{new_id, now_ms, sql_limit};
use crate::{Store, StoreError};

const SERVER_COLUMNS: &str = "id, tenant, service_name, template, replicas, status, endpoints, error, created_at, updated_at, running_since";

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
    })
}

impl Store {
    /// Writes `record` (insert, or update everything but `created_at`; `running_since` is kept
    /// once set).
    pub async fn upsert_server(&self, record: &ServerRecord) -> Result<(), StoreError> {
        let mut w = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO mcp_servers ({SERVER_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
             endpoints = excluded.endpoints, error = excluded.error, \
             replicas = excluded.replicas, updated_at = excluded.updated_at, \
             running_since = COALESCE(mcp_servers.running_since, excluded.running_since)"
        ))
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
