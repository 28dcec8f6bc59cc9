DROP INDEX identities_app_created_idx;
CREATE INDEX identities_app_created_idx
    ON identities (app_id, created_at, id) WHERE deleted_at IS NULL;
DROP INDEX identities_app_updated_idx;
CREATE INDEX identities_app_updated_idx
    ON identities (app_id, updated_at, id) WHERE deleted_at IS NULL;
