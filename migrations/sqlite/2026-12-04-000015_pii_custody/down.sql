ALTER TABLE documents DROP COLUMN object_secret;
ALTER TABLE documents DROP COLUMN upload_key;
ALTER TABLE identities DROP COLUMN erased_at;
ALTER TABLE identities DROP COLUMN wrapped_key;
