DROP TRIGGER identities_count_delete;
DROP TRIGGER identities_count_insert;
DROP TABLE app_identity_counts;
