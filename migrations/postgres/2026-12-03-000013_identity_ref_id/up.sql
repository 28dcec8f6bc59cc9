-- refId: the client's own id for the customer, optional, unique among an
-- app's live identities (a deleted identity's refId can be used again).
ALTER TABLE identities ADD COLUMN ref_id TEXT;
CREATE UNIQUE INDEX identities_app_ref_id_key ON identities (app_id, ref_id)
    WHERE deleted_at IS NULL AND ref_id IS NOT NULL;
