DROP INDEX audit_log_api_key;
DROP INDEX audit_log_action;
DROP INDEX audit_log_identity;
DROP INDEX audit_log_unlinked;
-- Unlinked records cannot go back into the old table (seq NOT NULL).
DELETE FROM audit_log WHERE seq IS NULL;
ALTER TABLE audit_log
    DROP COLUMN status,
    DROP COLUMN identity_id,
    DROP COLUMN client_address,
    DROP COLUMN request_id,
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL;
