-- filter[email]=like:<a>@<b> as two index ranges (src/domain/email_search.rs):
-- the lowered domain, and the lowered local part reversed, so that "the local
-- part ends with a" is a prefix. The server writes both with the email.
-- SQLite's default BINARY collation is the byte order the ranges assume.
ALTER TABLE identities ADD COLUMN email_domain TEXT NOT NULL DEFAULT '';
ALTER TABLE identities ADD COLUMN email_local_reversed TEXT NOT NULL DEFAULT '';
-- Existing rows, with the server's own functions (registered on every
-- connection kyc-api opens, see db::ConnectionManager): SQLite has no
-- reverse() and its lower() folds only ASCII, where the domain may not be.
UPDATE identities SET
    email_domain = kyc_email_domain(email),
    email_local_reversed = kyc_email_local_reversed(email);
-- Each in listing order within one key, so that a pattern whose range holds
-- one domain (or one local part) pages by walking the index; the other key
-- rides along so that <a>@<b> is tested on index entries.
CREATE INDEX identities_email_domain_idx
    ON identities (app_id, email_domain, created_at, id, email_local_reversed)
    WHERE deleted_at IS NULL;
CREATE INDEX identities_email_local_idx
    ON identities (app_id, email_local_reversed, created_at, id, email_domain)
    WHERE deleted_at IS NULL;
