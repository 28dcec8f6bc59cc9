-- The audit trail becomes strictly append-only: a record is written in its
-- write's transaction and never changed; its place in its app's chain is a
-- row of its own in `audit_links` (seq, the previous record's hash, its
-- hash), written once when it is linked. On PostgreSQL a record waits in
-- `audit_pending` until the linker links it right after the commit, so an
-- app's writers do not wait for each other's commits on the chain's head;
-- on SQLite (one writer at a time) it is linked in its write.
-- Also: the request a record came from (id, client address), the HTTP
-- status answered, and the identity it concerns (for the list's filter;
-- derived from `targets`, which the hash covers).
CREATE TABLE audit_links (
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    record_id TEXT NOT NULL UNIQUE,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
INSERT INTO audit_links (chain, seq, record_id, prev_hash, hash)
SELECT chain, seq, id, prev_hash, hash FROM audit_log;
CREATE TABLE audit_pending (
    record_id TEXT PRIMARY KEY,
    chain TEXT NOT NULL
);
CREATE INDEX audit_pending_chain ON audit_pending (chain, record_id);
ALTER TABLE audit_log
    DROP COLUMN seq,
    DROP COLUMN prev_hash,
    DROP COLUMN hash,
    ADD COLUMN request_id TEXT,
    ADD COLUMN client_address TEXT,
    ADD COLUMN identity_id TEXT,
    ADD COLUMN status INTEGER;
UPDATE audit_log SET identity_id = targets::jsonb -> 0 ->> 'id'
WHERE targets::jsonb -> 0 ->> 'type' = 'identity';
-- The list's filters (each joined to its links for chain order).
CREATE INDEX audit_log_identity ON audit_log (chain, identity_id);
CREATE INDEX audit_log_action ON audit_log (chain, action);
CREATE INDEX audit_log_api_key ON audit_log (chain, api_key_id);
