DROP INDEX documents_url_idx;
DROP INDEX documents_identity_all_idx;
