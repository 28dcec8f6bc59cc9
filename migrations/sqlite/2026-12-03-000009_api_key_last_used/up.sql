-- When each API key was last used, to the hour: written at most once an
-- hour per key (after the request, never in its way), for `keys list`, so
-- an operator can tell a forgotten key from a live one before revoking it.
ALTER TABLE api_keys ADD COLUMN last_used_at TIMESTAMP;
