-- The host whose workers created a server's replicas (NULL: an engine every worker reaches, or a
-- server recorded before hosts were named). Its replicas are removed and checked there.
ALTER TABLE mcp_servers ADD COLUMN host TEXT;
