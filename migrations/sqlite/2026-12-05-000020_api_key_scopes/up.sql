-- What each API key may do: `*` (every scope, what every key made before
-- scopes keeps) or scope names joined by commas (`identities:read,kyc:review`).
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '*';
