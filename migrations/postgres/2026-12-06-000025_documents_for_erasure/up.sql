-- Erasing an identity reads every document it ever had, deleted ones
-- included (each stored object must go), then which documents of other
-- identities name the same stored objects; a document sent with the URL of
-- a stored object looks up whose object it is. The only document index so
-- far holds live documents (migration 24), so each of these reads scanned
-- the whole table inside a write transaction (35-70 ms at 200,000
-- documents, and proportionally more). (IF NOT EXISTS: an operator may
-- build them beforehand, CONCURRENTLY on PostgreSQL; see OPERATIONS.)
CREATE INDEX IF NOT EXISTS documents_identity_all_idx ON documents (identity_id);
CREATE INDEX IF NOT EXISTS documents_url_idx ON documents (url);
