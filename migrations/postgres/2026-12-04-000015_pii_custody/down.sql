ALTER TABLE documents DROP COLUMN object_secret;
ALTER TABLE documents DROP COLUMN upload_key;
ALTER TABLE identities DROP COLUMN erased_at;
ALTER TABLE identities ALTER COLUMN birthday TYPE DATE USING CASE WHEN birthday LIKE 'enc:%' THEN NULL ELSE birthday::date END;
ALTER TABLE identities DROP COLUMN wrapped_key;
