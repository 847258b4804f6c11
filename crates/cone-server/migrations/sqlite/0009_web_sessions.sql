-- Sessions of the web console. The cookie carries a random secret; only its SHA-256 hash is stored, so a copy of
-- the database signs nobody in. The form token that guards each POST is derived from the secret and never stored.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
