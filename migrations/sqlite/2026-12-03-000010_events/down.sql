DROP TABLE identity_operations;
DROP TABLE events;
