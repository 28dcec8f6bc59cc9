-- One stored form of the email that every comparison uses: the unique index,
-- filter[email]=<exact> and filter[email]=like:<substring>. It is the
-- server's own Unicode lowercase (`Email::normalize`), written with the
-- email, so both backends compare exactly alike (SQLite's lower() folds only
-- ASCII; PostgreSQL's follows the database's LC_CTYPE).
--
-- Existing rows: lower() under the database's LC_CTYPE, which differs from
-- Rust's lowercasing only for a few letters (such as U+0130). If one app
-- already holds two live identities whose emails normalise alike, creating
-- the unique index fails and the migration rolls back: delete or change one
-- of them (the error names the index) and start again.
ALTER TABLE identities ADD COLUMN email_normalized TEXT NOT NULL DEFAULT '';
UPDATE identities SET email_normalized = lower(email);
ALTER TABLE identities ALTER COLUMN email_normalized DROP DEFAULT;
DROP INDEX identities_app_email_key;
CREATE UNIQUE INDEX identities_app_email_key
    ON identities (app_id, email_normalized) WHERE deleted_at IS NULL;
DROP INDEX identities_email_trgm_idx;
CREATE INDEX identities_email_trgm_idx
    ON identities USING gin (email_normalized gin_trgm_ops) WHERE deleted_at IS NULL;
