-- Idempotency-Key records: one per (app, key). A request claims its key
-- (`locked_until` set, no answer yet) before it runs; its answer is stored
-- in the transaction of its write, so a committed change always has its
-- answer to replay. Pruned after KYC_IDEMPOTENCY_TTL_HOURS (created_at).
-- No foreign key to apps, like events: apps are never deleted and every
-- keyed write would otherwise share-lock the app's one row.
CREATE TABLE idempotency_keys (
    app_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    locked_until TIMESTAMP,
    response_status INTEGER,
    response_body BYTEA,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (app_id, idempotency_key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
