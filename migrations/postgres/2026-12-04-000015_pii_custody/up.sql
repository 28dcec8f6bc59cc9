-- PII custody. Every identity gets its own data key (DEK), stored only
-- wrapped (sealed) by a server key of KYC_ENCRYPTION_KEYS, in its own row;
-- the personal data fields of the identity, its events' bodies and its
-- local documents' keys are sealed under it. Erasure sets it to NULL: what
-- the key sealed is unreadable from then on, in every backup taken
-- afterwards too. NULL also marks a row written before encryption at rest
-- (its fields are in the clear until `kyc-api encryption rotate` seals
-- them).
ALTER TABLE identities ADD COLUMN wrapped_key TEXT;
-- A sealed birthday is text; clear ones keep their ISO form until
-- `kyc-api encryption rotate` seals them.
ALTER TABLE identities ALTER COLUMN birthday TYPE TEXT USING to_char(birthday, 'YYYY-MM-DD');
-- When the identity was erased (its data key destroyed).
ALTER TABLE identities ADD COLUMN erased_at TIMESTAMP;
-- The upload a document's sealed copy was made from, so erasure deletes
-- both objects.
ALTER TABLE documents ADD COLUMN upload_key TEXT;
-- A local sealed copy's own key, sealed under the identity's data key: the
-- only place it is kept, so erasure makes the copy's bytes unreadable.
ALTER TABLE documents ADD COLUMN object_secret TEXT;
