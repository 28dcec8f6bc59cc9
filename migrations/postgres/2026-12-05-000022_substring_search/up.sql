-- SQLite's version of this migration adds an FTS5 trigram index for the
-- substring filters; PostgreSQL has served them from its pg_trgm GIN
-- indexes since migration 2 (`identities_email_trgm_idx` on
-- email_normalized, `identities_name_trgm_idx` on lower(name)). Both
-- backends keep the same list of migrations.
SELECT 1;
