-- MCP servers provisioned from templates (issue 6) and their lifecycle events (the audit trail).
-- Portable SQLite/PostgreSQL, like the first migration. Tenants are referenced by name, as the
-- jobs' AvbTenant search attribute does.

CREATE TABLE mcp_servers (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    service_name TEXT NOT NULL,
    template     TEXT NOT NULL,
    replicas     BIGINT NOT NULL,
    -- creating, running, failed, deleting, deleted
    status       TEXT NOT NULL,
    -- JSON array of {replica, id, host_port, url}
    endpoints    TEXT NOT NULL,
    error        TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX mcp_servers_by_tenant ON mcp_servers (tenant, created_at);

CREATE TABLE mcp_server_events (
    id         TEXT PRIMARY KEY,
    server_id  TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    -- e.g. mcp.server.create.requested, mcp.server.created, mcp.server.failed
    kind       TEXT NOT NULL,
    -- JSON object
    detail     TEXT NOT NULL,
    -- the writer's idempotency key (workflow id + step): a retried activity writes once
    event_key  TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE INDEX mcp_server_events_by_server ON mcp_server_events (server_id, created_at);
