-- Tenancy: an app owns everything; API keys authenticate as an app.
CREATE TABLE apps (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
-- Names are unique so that two replicas bootstrapping at once cannot both
-- create the `default` app.
CREATE UNIQUE INDEX apps_name_key ON apps (name);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (id),
    -- SHA-256 of the secret, hex; the secret itself is never stored.
    key_hash TEXT NOT NULL,
    -- The first characters of the secret, so an operator can tell keys apart.
    key_prefix TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash);
CREATE INDEX api_keys_app_id_idx ON api_keys (app_id);

-- Secrets the service generates for itself (the sandbox signing key), kept in
-- the database so every replica shares them.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
