DROP INDEX webhook_deliveries_endpoint_due_idx;
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
ALTER TABLE webhook_endpoints
    DROP COLUMN fanned_out_position,
    DROP COLUMN fanned_out_event_id;
