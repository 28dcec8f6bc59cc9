-- Deliveries are no longer made in the event's transaction: each endpoint
-- keeps how far through its app's events it has been given deliveries
-- (`fanned_out_position`, `fanned_out_event_id`: events after this
-- (position, id) wait for it), and the dispatcher makes the deliveries
-- behind it in batches. A write then costs the same with or without
-- endpoints, and nothing is lost: the events are the outbox.
--
-- Existing endpoints start at the horizon of events already settled (every
-- transaction older than the oldest one still running): their deliveries
-- were made in the events' transactions, up to now. A replica of an older
-- version still running during a rolling upgrade keeps making deliveries in
-- its writes, and those events may be delivered twice (deliveries are
-- at-least-once).
ALTER TABLE webhook_endpoints
    ADD COLUMN fanned_out_position BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN fanned_out_event_id TEXT NOT NULL DEFAULT '';
UPDATE webhook_endpoints SET fanned_out_position = COALESCE(
    (SELECT min(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) AS x),
    pg_snapshot_xmax(pg_current_snapshot())::text::bigint);
-- Claims go endpoint by endpoint (each takes at most its share), so the
-- due deliveries are indexed per endpoint: a claim reads one short range
-- per endpoint instead of every due delivery, however many wait behind an
-- endpoint that is at its share.
DROP INDEX webhook_deliveries_due_idx;
CREATE INDEX webhook_deliveries_endpoint_due_idx ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
