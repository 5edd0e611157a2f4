-- Artifacts (audio) kept in the database, in chunks, so every host sharing the database can read
-- what any worker wrote, a range is read without loading the rest, and nothing else needs to be
-- deployed. Portable SQLite/PostgreSQL: BYTEA is PostgreSQL's binary type; SQLite takes any type
-- name and stores the bound bytes as a blob.

CREATE TABLE artifacts (
    -- `<prefix>/<sha256>.<ext>`: content-addressed, so a rewrite of the same key is the same bytes
    key          TEXT PRIMARY KEY,
    sha256       TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    -- every chunk but the last holds exactly this many bytes (so a range maps to chunk numbers)
    chunk_bytes  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE artifact_chunks (
    key  TEXT NOT NULL,
    seq  BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (key, seq)
);
