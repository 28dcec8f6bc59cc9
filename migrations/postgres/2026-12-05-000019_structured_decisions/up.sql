-- Structured decisions. A rejection says whether the identity may try
-- again (`reject_type`: retry or final) and why (`reject_labels`: catalogue
-- names joined by commas); a decision may carry a comment for the customer
-- (`client_comment`) and one for reviewers only (`internal_comment`, kept
-- in the history alone: the API never answers it).
ALTER TABLE verifications ADD COLUMN reject_type TEXT;
ALTER TABLE verifications ADD COLUMN reject_labels TEXT;
ALTER TABLE verifications ADD COLUMN client_comment TEXT;
ALTER TABLE identity_events ADD COLUMN reject_type TEXT;
ALTER TABLE identity_events ADD COLUMN reject_labels TEXT;
ALTER TABLE identity_events ADD COLUMN client_comment TEXT;
ALTER TABLE identity_events ADD COLUMN internal_comment TEXT;
-- Every rejection so far let the identity resubmit: it was a retry.
UPDATE verifications SET reject_type = 'retry' WHERE status = 'rejected';
UPDATE identity_events SET reject_type = 'retry'
    WHERE event_type = 'verification' AND status = 'rejected';
