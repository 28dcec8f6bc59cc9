-- Unlinked records cannot go back into the old table (seq NOT NULL).
DELETE FROM audit_log WHERE seq IS NULL;
CREATE TABLE audit_log_chained (
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
INSERT INTO audit_log_chained
SELECT id, chain, seq, created_at, actor, api_key_id, os_user, action, targets,
       fields, outcome, prev_hash, hash
FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_chained RENAME TO audit_log;
