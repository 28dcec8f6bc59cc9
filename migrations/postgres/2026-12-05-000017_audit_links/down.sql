DROP INDEX audit_log_api_key;
DROP INDEX audit_log_action;
DROP INDEX audit_log_identity;
-- Records still waiting for their link cannot go back (seq NOT NULL).
DELETE FROM audit_log WHERE id IN (SELECT record_id FROM audit_pending);
ALTER TABLE audit_log
    DROP COLUMN status,
    DROP COLUMN identity_id,
    DROP COLUMN client_address,
    DROP COLUMN request_id,
    ADD COLUMN seq BIGINT,
    ADD COLUMN prev_hash TEXT,
    ADD COLUMN hash TEXT;
UPDATE audit_log r SET seq = l.seq, prev_hash = l.prev_hash, hash = l.hash
FROM audit_links l WHERE l.record_id = r.id;
ALTER TABLE audit_log
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL,
    ADD CONSTRAINT audit_log_chain_seq_key UNIQUE (chain, seq);
DROP TABLE audit_pending;
DROP TABLE audit_links;
