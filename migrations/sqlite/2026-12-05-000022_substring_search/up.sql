-- Substring filters (filter[email]=like:<s>, filter[name]=like:<s>) get an
-- index: an FTS5 table with the trigram tokenizer over the lowered email
-- and the name. It only proposes candidates; the list query still applies
-- its LIKE to them, so the results are exactly those of a full scan (FTS5
-- folds case like or more widely than SQLite's LIKE does, so no match is
-- lost). Patterns under 3 characters have no trigram and keep the scan.
--
-- The FTS rows are keyed by `search_id`, an integer given to each identity
-- once and never changed, not by the identities table's rowid: VACUUM may
-- renumber the rowids of a table without an INTEGER PRIMARY KEY, which
-- would silently point every FTS row at another identity.
--
-- Triggers keep it in step inside the writing transaction: the same write
-- that creates, changes, erases or removes an identity updates its row.
ALTER TABLE identities ADD COLUMN search_id INTEGER;
UPDATE identities SET search_id = rowid;
CREATE UNIQUE INDEX identities_search_id_idx ON identities (search_id);

-- External content: the text stays in `identities` (nothing is stored
-- twice); the FTS table holds only the trigram index. Rows leave it through
-- the 'delete' command with the values they were indexed with.
CREATE VIRTUAL TABLE identity_search USING fts5(
    email_normalized, name,
    content = 'identities', content_rowid = 'search_id',
    tokenize = 'trigram case_sensitive 0'
);
INSERT INTO identity_search (identity_search) VALUES ('rebuild');

CREATE TRIGGER identities_search_insert AFTER INSERT ON identities
BEGIN
    UPDATE identities
        SET search_id = (SELECT coalesce(max(search_id), 0) + 1 FROM identities)
        WHERE rowid = new.rowid AND search_id IS NULL;
    INSERT INTO identity_search (rowid, email_normalized, name)
        SELECT search_id, email_normalized, name FROM identities WHERE rowid = new.rowid;
END;

CREATE TRIGGER identities_search_update AFTER UPDATE OF email_normalized, name ON identities
BEGIN
    INSERT INTO identity_search (identity_search, rowid, email_normalized, name)
        VALUES ('delete', old.search_id, old.email_normalized, old.name);
    INSERT INTO identity_search (rowid, email_normalized, name)
        VALUES (new.search_id, new.email_normalized, new.name);
END;

CREATE TRIGGER identities_search_delete AFTER DELETE ON identities
BEGIN
    INSERT INTO identity_search (identity_search, rowid, email_normalized, name)
        VALUES ('delete', old.search_id, old.email_normalized, old.name);
END;
