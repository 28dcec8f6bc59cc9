ALTER TABLE identity_events DROP COLUMN internal_comment;
ALTER TABLE identity_events DROP COLUMN client_comment;
ALTER TABLE identity_events DROP COLUMN reject_labels;
ALTER TABLE identity_events DROP COLUMN reject_type;
ALTER TABLE verifications DROP COLUMN client_comment;
ALTER TABLE verifications DROP COLUMN reject_labels;
ALTER TABLE verifications DROP COLUMN reject_type;
