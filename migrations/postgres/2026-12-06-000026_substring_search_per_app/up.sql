-- Substring filters (filter[email]=like:<s>, filter[name]=like:<s>) read
-- the pg_trgm GIN indexes. Those held every app's identities, keyed by
-- trigram alone, so one app's search read the posting lists of every other
-- app's matches and fetched their rows only to drop them for their app_id:
-- an app of 2,000 identities searching a pattern another app held 111
-- times spent 14.5 ms in the index for no match (BENCHMARKS.md, "Substring
-- indexes per app"). With app_id as the first column of the GIN index
-- (btree_gin), the index intersects the app's entries with the trigrams'
-- and that search takes 0.85 ms. An app that holds nearly every row pays
-- a few milliseconds more on its rare patterns for that.
--
-- btree_gin ships with PostgreSQL (contrib) and is a trusted extension
-- since PostgreSQL 13, like pg_trgm: the database's owner may create it.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS btree_gin;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'kyc-api needs the btree_gin extension, and this role may not create it'
        USING HINT = 'As a superuser (or the database owner on PostgreSQL 13+), run in this database: CREATE EXTENSION btree_gin; then start kyc-api again.';
END
$$;
-- (IF NOT EXISTS: an operator may build them beforehand, CONCURRENTLY;
-- see docs/OPERATIONS.md.)
CREATE INDEX IF NOT EXISTS identities_app_email_trgm_idx
    ON identities USING gin (app_id, email_normalized gin_trgm_ops) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS identities_app_name_trgm_idx
    ON identities USING gin (app_id, lower(name) gin_trgm_ops) WHERE deleted_at IS NULL;
DROP INDEX IF EXISTS identities_email_trgm_idx;
DROP INDEX IF EXISTS identities_name_trgm_idx;
