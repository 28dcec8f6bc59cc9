-- The transactional outbox: one row per event, written in the transaction
-- of the change it reports (GET /events, webhooks).
--
-- `position` orders events for readers that page with a cursor and must
-- never miss one. SQLite runs one write transaction at a time, so the
-- server numbers each transaction's events one above the highest committed
-- position, and commit order is position order.
-- No foreign key to apps: every change of an app would take a share lock
-- on its one apps row, and concurrent writers queue on that hot row (apps
-- are never deleted).
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    identity_id TEXT,
    payload TEXT NOT NULL,
    position BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX events_position_idx ON events (position);
CREATE INDEX events_app_position_idx ON events (app_id, position, id);
CREATE INDEX events_app_identity_idx ON events (app_id, identity_id, position, id);
CREATE INDEX events_created_idx ON events (created_at);

-- The operations each identity could perform after its last change (active
-- ones, `action:code`, sorted, comma-separated), so a change that flips one
-- emits `identity.operations_changed`.
CREATE TABLE identity_operations (
    identity_id TEXT PRIMARY KEY REFERENCES identities (id),
    app_id TEXT NOT NULL,
    active TEXT NOT NULL
);
