-- KYC: verifications of an identity at a level, and the identity's history
-- (every verification status change, every block and unblock). History rows
-- are only ever inserted, never updated.
CREATE TABLE verifications (
    id TEXT PRIMARY KEY NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (id),
    identity_id TEXT NOT NULL REFERENCES identities (id),
    level TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    risk_rating TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- At most one open verification per identity and level, whatever races.
CREATE UNIQUE INDEX verifications_one_open_key
    ON verifications (identity_id, level) WHERE status IN ('pending', 'inReview');
-- Latest verification per identity and level (kycStatus, operations).
CREATE INDEX verifications_identity_idx ON verifications (identity_id, level, created_at);
-- Listing per app, by each order and filter.
CREATE INDEX verifications_app_created_idx ON verifications (app_id, created_at, id);
CREATE INDEX verifications_app_updated_idx ON verifications (app_id, updated_at, id);
CREATE INDEX verifications_app_status_idx ON verifications (app_id, status, created_at);
CREATE INDEX verifications_app_level_idx ON verifications (app_id, level, created_at);

CREATE TABLE identity_events (
    id TEXT PRIMARY KEY NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (id),
    identity_id TEXT NOT NULL REFERENCES identities (id),
    -- 'verification', 'blocked' or 'unblocked'
    event_type TEXT NOT NULL,
    verification_id TEXT REFERENCES verifications (id),
    level TEXT,
    status TEXT,
    reason TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX identity_events_identity_idx ON identity_events (identity_id, created_at);
CREATE INDEX identity_events_verification_idx ON identity_events (verification_id, created_at);
