-- Webhook endpoints of an app, the deliveries of events to them (made in
-- the event's transaction, so none is lost), and every attempt.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps (id),
    url TEXT NOT NULL,
    description TEXT,
    -- Comma-separated event types; NULL: every type.
    event_types TEXT,
    enabled BOOLEAN NOT NULL,
    secret TEXT NOT NULL,
    -- After a rotation the old secret signs too, until it expires.
    previous_secret TEXT,
    previous_secret_expires_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX webhook_endpoints_app_idx ON webhook_endpoints (app_id, created_at, id);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    -- No foreign key: every delivery would take a share lock on its
    -- endpoint's row, one hot row for all concurrent writers (endpoints are
    -- only ever soft-deleted).
    endpoint_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    -- pending, delivered or failed
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP,
    -- A dispatcher holds a claimed delivery until then; a replica killed
    -- mid-delivery leaves it to be claimed again when this passes.
    lease_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id),
    app_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    status_code INTEGER,
    error TEXT,
    latency_ms INTEGER NOT NULL,
    response_excerpt TEXT
);
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (app_id, endpoint_id, attempted_at, id);
