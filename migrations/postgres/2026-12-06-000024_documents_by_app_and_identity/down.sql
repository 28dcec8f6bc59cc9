CREATE INDEX documents_identity_idx ON documents (identity_id, position) WHERE deleted_at IS NULL;
DROP INDEX documents_app_identity_idx;
