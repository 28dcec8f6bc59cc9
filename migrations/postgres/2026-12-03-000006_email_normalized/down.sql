DROP INDEX identities_email_trgm_idx;
CREATE INDEX identities_email_trgm_idx
    ON identities USING gin (lower(email) gin_trgm_ops) WHERE deleted_at IS NULL;
DROP INDEX identities_app_email_key;
CREATE UNIQUE INDEX identities_app_email_key
    ON identities (app_id, lower(email)) WHERE deleted_at IS NULL;
ALTER TABLE identities DROP COLUMN email_normalized;
