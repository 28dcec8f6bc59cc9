-- Review console sign-ins. The browser holds a short-lived signed token
-- naming its row; a row ended (signed out) or whose key was revoked or lost
-- `kyc:review` ends the session at its next request, on every replica.
CREATE TABLE console_sessions (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP
);
