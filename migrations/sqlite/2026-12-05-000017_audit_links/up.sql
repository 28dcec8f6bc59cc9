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
-- SQLite cannot drop columns that are part of a constraint: the table is
-- rebuilt, with the same columns in the same order as PostgreSQL's.
CREATE TABLE audit_records (
    id TEXT PRIMARY KEY,
    chain TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    api_key_id TEXT,
    os_user TEXT,
    action TEXT NOT NULL,
    targets TEXT NOT NULL,
    fields TEXT NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT,
    client_address TEXT,
    identity_id TEXT,
    status INTEGER
);
INSERT INTO audit_records
    (id, chain, created_at, actor, api_key_id, os_user, action, targets, fields,
     outcome, identity_id)
SELECT id, chain, created_at, actor, api_key_id, os_user, action, targets, fields,
       outcome,
       CASE WHEN json_extract(targets, '$[0].type') = 'identity'
            THEN json_extract(targets, '$[0].id') END
FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_records RENAME TO audit_log;
-- The list's filters (each joined to its links for chain order).
CREATE INDEX audit_log_identity ON audit_log (chain, identity_id);
CREATE INDEX audit_log_action ON audit_log (chain, action);
CREATE INDEX audit_log_api_key ON audit_log (chain, api_key_id);
