DROP TABLE identity_events;
DROP TABLE verifications;
