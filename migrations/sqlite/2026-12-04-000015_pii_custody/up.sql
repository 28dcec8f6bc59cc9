-- PII custody. Every identity gets its own data key (DEK), stored here only
-- wrapped (sealed) by a server key of KYC_ENCRYPTION_KEYS; the personal data
-- fields of the identity and its local document bytes are sealed under it.
-- Erasure deletes the row: what the key sealed is unreadable from then on,
-- in every backup taken afterwards too. (The birthday column needs no
-- change here: SQLite keeps the sealed text as text.)
CREATE TABLE identity_keys (
    identity_id TEXT PRIMARY KEY REFERENCES identities (id),
    app_id TEXT NOT NULL,
    wrapped_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- When the identity was erased (its data key destroyed).
ALTER TABLE identities ADD COLUMN erased_at TIMESTAMP;
-- The upload a document's sealed copy was made from, so erasure deletes
-- both objects.
ALTER TABLE documents ADD COLUMN upload_key TEXT;
-- A local sealed copy's own key, sealed under the identity's data key: the
-- only place it is kept, so erasure makes the copy's bytes unreadable.
ALTER TABLE documents ADD COLUMN object_secret TEXT;
