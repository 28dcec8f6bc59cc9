-- How many identities each app has stored, kept by triggers in the
-- writing transaction. A substring filter weighs the candidates the shared
-- FTS5 table gives (every app's matches) against the walk of the app's own
-- listing index (`SubstringIndex::of`), which passes the app's identities,
-- not everyone's. Weighed against every app's identities, an app of 2,000
-- searching a pattern that another app of 1,000,000 held 20,000 times
-- took the candidates and spent 119-127 ms on a counted page its own walk
-- answers in 4 (BENCHMARKS.md, "Substring indexes per app").
--
-- Every identity row counts, erased and deleted ones included, as
-- `search_id` does: the scale the walk and the candidates are compared at,
-- not a total anyone is shown. (PostgreSQL's version of this migration puts
-- app_id first in its trigram indexes instead: its planner weighs the rest.)
CREATE TABLE app_identity_counts (
    app_id TEXT PRIMARY KEY NOT NULL,
    stored INTEGER NOT NULL
);
INSERT INTO app_identity_counts (app_id, stored)
    SELECT app_id, count(*) FROM identities GROUP BY app_id;

CREATE TRIGGER identities_count_insert AFTER INSERT ON identities
BEGIN
    INSERT INTO app_identity_counts (app_id, stored) VALUES (new.app_id, 1)
        ON CONFLICT (app_id) DO UPDATE SET stored = stored + 1;
END;

CREATE TRIGGER identities_count_delete AFTER DELETE ON identities
BEGIN
    UPDATE app_identity_counts SET stored = stored - 1 WHERE app_id = old.app_id;
END;
