-- filter[email]=like:<a>@<b> as two index ranges (src/domain/email_search.rs):
-- the lowered domain, and the lowered local part reversed, so that "the local
-- part ends with a" is a prefix. The server writes both with the email.
--
-- COLLATE "C": the ranges are prefix ranges in code point (byte) order; under
-- a linguistic collation (en_US.UTF-8 ignores punctuation at first level) a
-- range [b, b') would not hold exactly the strings starting with b.
ALTER TABLE identities
    ADD COLUMN email_domain TEXT COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN email_local_reversed TEXT COLLATE "C" NOT NULL DEFAULT '';
-- Existing rows. The local part of a valid address is ASCII, so lower() is
-- exact there; for a non-ASCII domain PostgreSQL's lower() follows the
-- database's LC_CTYPE where the server uses Rust's Unicode lowercasing (they
-- differ only for letters such as U+0130).
UPDATE identities SET
    email_domain = lower(split_part(email, '@', 2)),
    email_local_reversed = reverse(lower(split_part(email, '@', 1)));
ALTER TABLE identities
    ALTER COLUMN email_domain DROP DEFAULT,
    ALTER COLUMN email_local_reversed DROP DEFAULT;
-- Each in listing order within one key, so that a pattern whose range holds
-- one domain (or one local part) pages by walking the index; the other key
-- rides along so that <a>@<b> is tested on index entries.
CREATE INDEX identities_email_domain_idx
    ON identities (app_id, email_domain, created_at, id, email_local_reversed)
    WHERE deleted_at IS NULL;
CREATE INDEX identities_email_local_idx
    ON identities (app_id, email_local_reversed, created_at, id, email_domain)
    WHERE deleted_at IS NULL;
