ALTER TABLE webhook_endpoints DROP COLUMN fanned_out_event_id;
ALTER TABLE webhook_endpoints DROP COLUMN fanned_out_position;
