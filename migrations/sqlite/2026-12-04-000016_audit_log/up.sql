-- The audit trail: a row per write through the API or the CLI, written in
-- the write's own transaction, chained per app (`chain`: the app's id, or
-- `server` for writes of no app): each row stores the previous row's hash
-- and SHA-256(previous hash || canonical encoding of the row), so a row
-- changed, removed or moved breaks the chain (`kyc-api audit verify`).
-- Append-only: nothing in kyc-api updates or deletes these rows.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    api_key_id TEXT,
    os_user TEXT,
    action TEXT NOT NULL,
    targets TEXT NOT NULL,
    fields TEXT NOT NULL,
    outcome TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (chain, seq)
);
-- Each chain's head, locked by the write that appends to it, so a chain
-- stays linear with concurrent writers and several replicas.
CREATE TABLE audit_heads (
    chain TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
