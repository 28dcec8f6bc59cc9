DROP TABLE identity_metadata;
