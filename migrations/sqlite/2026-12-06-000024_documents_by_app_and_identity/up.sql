-- An identity's live documents are found by (app, identity), and the
-- documents of a run of identities by one range of this index: identity ids
-- are UUIDv7, so the identities an `all=true` chunk holds (neighbours in
-- time) are neighbours here, and one range read replaces a probe per
-- identity. The app comes first so that such a range holds only the app's
-- own rows. Every query of documents names the app, so the old index goes.
-- (IF NOT EXISTS: an operator may have built it beforehand, CONCURRENTLY.)
CREATE INDEX IF NOT EXISTS documents_app_identity_idx ON documents (app_id, identity_id, position)
    WHERE deleted_at IS NULL;
DROP INDEX documents_identity_idx;
