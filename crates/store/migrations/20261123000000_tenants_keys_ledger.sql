-- Tenants, API keys and the credit ledger (issue 5).
-- Portable: valid in both SQLite and PostgreSQL. Timestamps are BIGINT milliseconds since the
-- Unix epoch; ids are TEXT (`tnt_`/`key_`/`led_`/`use_` + 32 hex digits, time-ordered).

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- Tokens are `avb_<prefix>_<secret>`; only the SHA-256 of the secret is stored.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    prefix        TEXT NOT NULL UNIQUE,
    secret_sha256 TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('HUMAN', 'AGENT')),
    label         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);

-- The balance, maintained in the same transaction as every ledger entry.
CREATE TABLE accounts (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    available BIGINT NOT NULL CHECK (available >= 0),
    held      BIGINT NOT NULL CHECK (held >= 0)
);

-- Append-only. Each entry's idempotency key is unique: applying it again changes nothing.
-- amount: grant/refund = credits added, hold = credits held, settle = credits charged,
-- release = credits returned (0 when the hold was already closed).
CREATE TABLE ledger_entries (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    kind            TEXT NOT NULL CHECK (kind IN ('grant', 'hold', 'settle', 'release', 'refund')),
    amount          BIGINT NOT NULL CHECK (amount >= 0),
    job_id          TEXT,
    hold_key        TEXT,
    idempotency_key TEXT NOT NULL UNIQUE,
    note            TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX ledger_entries_by_tenant ON ledger_entries (tenant_id, created_at);

-- One row per hold, keyed by the hold's idempotency key; closed exactly once.
CREATE TABLE holds (
    hold_key   TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    job_id     TEXT NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount >= 0),
    state      TEXT NOT NULL CHECK (state IN ('held', 'settled', 'released')),
    charged    BIGINT,
    created_at BIGINT NOT NULL,
    closed_at  BIGINT
);
CREATE INDEX holds_by_tenant ON holds (tenant_id, state);

-- What each settled job used: tool, unit, quantity, price (credits per 1 000 units) and the
-- credits charged.
CREATE TABLE usage_records (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    job_id     TEXT NOT NULL,
    hold_key   TEXT NOT NULL REFERENCES holds (hold_key),
    tool       TEXT NOT NULL,
    unit       TEXT NOT NULL,
    quantity   BIGINT NOT NULL,
    price      BIGINT NOT NULL,
    credits    BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX usage_records_by_tenant ON usage_records (tenant_id, created_at);
