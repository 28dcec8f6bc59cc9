-- Identities (people and companies) and their documents. Rows are never
-- deleted: DELETE sets deleted_at (AML record-keeping), and every live-row
-- index is partial on deleted_at IS NULL.
CREATE TABLE identities (
    id TEXT PRIMARY KEY NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (id),
    identity_type TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    birthday DATE,
    gender TEXT,
    address_street TEXT NOT NULL,
    address_city TEXT NOT NULL,
    address_state TEXT,
    address_postal_code TEXT NOT NULL,
    address_country TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    phone_sms BOOLEAN NOT NULL,
    tax_country TEXT NOT NULL,
    tax_id_number TEXT NOT NULL,
    tax_state TEXT,
    tax_formation_region TEXT,
    identity_owner TEXT REFERENCES identities (id),
    blocked BOOLEAN NOT NULL,
    identity_confirmed BOOLEAN NOT NULL,
    risk_rating TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);

-- One live identity per email and app, case-insensitively: the database,
-- not a read-then-write check, settles concurrent creates. Also serves
-- filter[email]=<exact>.
CREATE UNIQUE INDEX identities_app_email_key
    ON identities (app_id, lower(email)) WHERE deleted_at IS NULL;
-- Listing order (sort=±createdAt / ±updatedAt, ties by id) per app.
CREATE INDEX identities_app_created_idx
    ON identities (app_id, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX identities_app_updated_idx
    ON identities (app_id, updated_at, id) WHERE deleted_at IS NULL;
-- Equality filters, each leading to the default order.
CREATE INDEX identities_app_name_idx
    ON identities (app_id, name, created_at) WHERE deleted_at IS NULL;
CREATE INDEX identities_app_owner_idx
    ON identities (app_id, identity_owner, created_at) WHERE deleted_at IS NULL;
CREATE INDEX identities_app_risk_idx
    ON identities (app_id, risk_rating, created_at) WHERE deleted_at IS NULL;
CREATE INDEX identities_app_type_idx
    ON identities (app_id, identity_type, created_at) WHERE deleted_at IS NULL;
CREATE INDEX identities_app_blocked_idx
    ON identities (app_id, blocked, created_at) WHERE deleted_at IS NULL;

CREATE TABLE documents (
    id TEXT PRIMARY KEY NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (id),
    identity_id TEXT NOT NULL REFERENCES identities (id),
    document_type TEXT NOT NULL,
    side TEXT NOT NULL,
    label TEXT,
    description TEXT,
    url TEXT NOT NULL,
    -- Keeps the order the client sent them in (they share created_at).
    position INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX documents_identity_idx
    ON documents (identity_id, position) WHERE deleted_at IS NULL;

-- filter[email]=like:… and filter[name]=like:… are substring matches on
-- lower(column); trigram indexes serve them. (SQLite has no equivalent: there
-- the per-app order index is walked, see README "Listing".)
--
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension since
-- PostgreSQL 13: the database's owner may create it. A role that may not
-- gets the message below instead of a bare permission error.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'kyc-api needs the pg_trgm extension, and this role may not create it'
        USING HINT = 'As a superuser (or the database owner on PostgreSQL 13+), run in this database: CREATE EXTENSION pg_trgm; then start kyc-api again.';
END
$$;
CREATE INDEX identities_email_trgm_idx
    ON identities USING gin (lower(email) gin_trgm_ops) WHERE deleted_at IS NULL;
CREATE INDEX identities_name_trgm_idx
    ON identities USING gin (lower(name) gin_trgm_ops) WHERE deleted_at IS NULL;
