-- Audit records are written in the write's own transaction without a place
-- in their chain (seq, prev_hash and hash NULL) and linked into it right
-- after the commit, in a short transaction of their own that holds the
-- chain's head: writers of one app no longer wait for each other's
-- commits. Also: the request a record came from (id, client address), the
-- HTTP status answered, and the identity it concerns (for the list's
-- filter; derived from `targets`, which the hash covers).
ALTER TABLE audit_log
    ALTER COLUMN seq DROP NOT NULL,
    ALTER COLUMN prev_hash DROP NOT NULL,
    ALTER COLUMN hash DROP NOT NULL,
    ADD COLUMN request_id TEXT,
    ADD COLUMN client_address TEXT,
    ADD COLUMN identity_id TEXT,
    ADD COLUMN status INTEGER;
UPDATE audit_log SET identity_id = targets::jsonb -> 0 ->> 'id'
WHERE targets::jsonb -> 0 ->> 'type' = 'identity';
-- What the linker looks for.
CREATE INDEX audit_log_unlinked ON audit_log (chain, id) WHERE seq IS NULL;
-- The list's filters, each walked in chain order.
CREATE INDEX audit_log_identity ON audit_log (chain, identity_id, seq);
CREATE INDEX audit_log_action ON audit_log (chain, action, seq);
CREATE INDEX audit_log_api_key ON audit_log (chain, api_key_id, seq);
