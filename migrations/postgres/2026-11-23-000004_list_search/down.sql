-- SQLite's version of this migration widens its listing indexes for
-- substring filters; PostgreSQL has served those from its pg_trgm indexes
-- since migration 2. Both backends keep the same list of migrations.
SELECT 1;
