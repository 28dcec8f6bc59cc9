DROP INDEX identities_app_ref_id_key;
ALTER TABLE identities DROP COLUMN ref_id;
