-- A tenant's live servers have distinct names, enforced by the database: two concurrent creates
-- of one name cannot both insert. Failed and deleted servers free their name.
CREATE UNIQUE INDEX mcp_servers_live_name ON mcp_servers (tenant, service_name)
    WHERE status NOT IN ('failed', 'deleted');
-- Reconciliation and mounting read live servers by status, whatever their number.
CREATE INDEX mcp_servers_by_status ON mcp_servers (status, updated_at);
