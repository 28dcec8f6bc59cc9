DROP TRIGGER identities_search_delete;
DROP TRIGGER identities_search_update;
DROP TRIGGER identities_search_insert;
DROP TABLE identity_search;
DROP INDEX identities_search_id_idx;
ALTER TABLE identities DROP COLUMN search_id;
