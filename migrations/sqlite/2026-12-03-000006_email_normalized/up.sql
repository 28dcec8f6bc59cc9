-- One stored form of the email that every comparison uses: the unique index,
-- filter[email]=<exact> and filter[email]=like:<substring>. It is the
-- server's own Unicode lowercase (`Email::normalize`), written with the
-- email. SQLite's lower() folds only ASCII, so before this migration
-- `a@MÜNCHEN.de` and `a@münchen.de` could both exist in one app and an
-- exact filter missed non-ASCII case variants.
--
-- Existing rows are filled by the server's own function (registered on every
-- connection kyc-api opens). If one app already holds two live identities
-- whose emails differ only in non-ASCII letter case (possible only through
-- that defect), creating the unique index fails and the migration rolls
-- back: delete or change one of them (the error names the index) and start
-- again.
ALTER TABLE identities ADD COLUMN email_normalized TEXT NOT NULL DEFAULT '';
UPDATE identities SET email_normalized = kyc_email_normalized(email);
DROP INDEX identities_app_email_key;
CREATE UNIQUE INDEX identities_app_email_key
    ON identities (app_id, email_normalized) WHERE deleted_at IS NULL;
-- The listing indexes carry what substring filters test (migration 4).
DROP INDEX identities_app_created_idx;
CREATE INDEX identities_app_created_idx
    ON identities (app_id, created_at, id, email_normalized, lower(name))
    WHERE deleted_at IS NULL;
DROP INDEX identities_app_updated_idx;
CREATE INDEX identities_app_updated_idx
    ON identities (app_id, updated_at, id, email_normalized, lower(name))
    WHERE deleted_at IS NULL;
