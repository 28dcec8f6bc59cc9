-- (btree_gin stays: other objects of the database may use it.)
CREATE INDEX identities_email_trgm_idx
    ON identities USING gin (email_normalized gin_trgm_ops) WHERE deleted_at IS NULL;
CREATE INDEX identities_name_trgm_idx
    ON identities USING gin (lower(name) gin_trgm_ops) WHERE deleted_at IS NULL;
DROP INDEX identities_app_email_trgm_idx;
DROP INDEX identities_app_name_trgm_idx;
