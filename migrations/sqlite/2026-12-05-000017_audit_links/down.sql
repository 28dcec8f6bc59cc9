-- Records still waiting for their link cannot go back (seq NOT NULL).
DELETE FROM audit_log WHERE id IN (SELECT record_id FROM audit_pending);
CREATE TABLE audit_chained (
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
INSERT INTO audit_chained
SELECT r.id, r.chain, l.seq, r.created_at, r.actor, r.api_key_id, r.os_user, r.action,
       r.targets, r.fields, r.outcome, l.prev_hash, l.hash
FROM audit_log r JOIN audit_links l ON l.record_id = r.id;
DROP TABLE audit_log;
ALTER TABLE audit_chained RENAME TO audit_log;
DROP TABLE audit_pending;
DROP TABLE audit_links;
