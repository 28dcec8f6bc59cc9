-- Audit records are written in the write's own transaction without a place
-- in their chain (seq, prev_hash and hash NULL) and linked into it right
-- after the commit, in a short transaction of their own that holds the
-- chain's head: writers of one app no longer wait for each other's
-- commits. Also: the request a record came from (id, client address), the
-- HTTP status answered, and the identity it concerns (for the list's
-- filter; derived from `targets`, which the hash covers).
-- SQLite cannot drop NOT NULL in place: the table is rebuilt, same columns
-- in the same order as PostgreSQL's after its ALTERs.
CREATE TABLE audit_log_linked (
    id TEXT PRIMARY KEY,
    chain TEXT NOT NULL,
    seq BIGINT,
    created_at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    api_key_id TEXT,
    os_user TEXT,
    action TEXT NOT NULL,
    targets TEXT NOT NULL,
    fields TEXT NOT NULL,
    outcome TEXT NOT NULL,
    prev_hash TEXT,
    hash TEXT,
    request_id TEXT,
    client_address TEXT,
    identity_id TEXT,
    status INTEGER,
    UNIQUE (chain, seq)
);
INSERT INTO audit_log_linked
    (id, chain, seq, created_at, actor, api_key_id, os_user, action, targets,
     fields, outcome, prev_hash, hash, identity_id)
SELECT id, chain, seq, created_at, actor, api_key_id, os_user, action, targets,
       fields, outcome, prev_hash, hash,
       CASE WHEN json_extract(targets, '$[0].type') = 'identity'
            THEN json_extract(targets, '$[0].id') END
FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_linked RENAME TO audit_log;
-- What the linker looks for.
CREATE INDEX audit_log_unlinked ON audit_log (chain, id) WHERE seq IS NULL;
-- The list's filters, each walked in chain order.
CREATE INDEX audit_log_identity ON audit_log (chain, identity_id, seq);
CREATE INDEX audit_log_action ON audit_log (chain, action, seq);
CREATE INDEX audit_log_api_key ON audit_log (chain, api_key_id, seq);
