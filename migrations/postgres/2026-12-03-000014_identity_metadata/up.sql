-- metadata: the client's own key-value pairs on an identity, a row per key
-- so that `filter[metadata.<key>]=<value>` is an index lookup (app, key,
-- value) on both backends rather than a scan of JSON text.
CREATE TABLE identity_metadata (
    identity_id TEXT NOT NULL REFERENCES identities (id),
    app_id TEXT NOT NULL,
    meta_key TEXT NOT NULL,
    meta_value TEXT NOT NULL,
    PRIMARY KEY (identity_id, meta_key)
);
CREATE INDEX identity_metadata_lookup_idx ON identity_metadata (app_id, meta_key, meta_value, identity_id);
