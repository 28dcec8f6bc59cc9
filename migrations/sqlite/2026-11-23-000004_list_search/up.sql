-- Substring filters (filter[email]=like:…, filter[name]=like:…) have no
-- index that finds their matches on SQLite (PostgreSQL has pg_trgm, see
-- migration 2). The listing indexes carry the lowered email and name, so
-- such a filter is tested on index entries instead of on table rows: a
-- count scans the index only, and a page reads only the rows it returns.
-- The query repeats the indexed expression (lower(email)), which SQLite
-- then reads from the index. BENCHMARKS.md has the measurements.
DROP INDEX identities_app_created_idx;
CREATE INDEX identities_app_created_idx
    ON identities (app_id, created_at, id, lower(email), lower(name))
    WHERE deleted_at IS NULL;
DROP INDEX identities_app_updated_idx;
CREATE INDEX identities_app_updated_idx
    ON identities (app_id, updated_at, id, lower(email), lower(name))
    WHERE deleted_at IS NULL;
