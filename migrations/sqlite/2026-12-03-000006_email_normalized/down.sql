DROP INDEX identities_app_updated_idx;
CREATE INDEX identities_app_updated_idx
    ON identities (app_id, updated_at, id, lower(email), lower(name))
    WHERE deleted_at IS NULL;
DROP INDEX identities_app_created_idx;
CREATE INDEX identities_app_created_idx
    ON identities (app_id, created_at, id, lower(email), lower(name))
    WHERE deleted_at IS NULL;
DROP INDEX identities_app_email_key;
CREATE UNIQUE INDEX identities_app_email_key
    ON identities (app_id, lower(email)) WHERE deleted_at IS NULL;
ALTER TABLE identities DROP COLUMN email_normalized;
