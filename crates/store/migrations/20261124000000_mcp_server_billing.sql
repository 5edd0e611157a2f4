-- Container-minute billing (issue 6): when a server's replicas started running. Billing blocks
-- are counted from here (block k starts at running_since + k * block length).
ALTER TABLE mcp_servers ADD COLUMN running_since BIGINT;
