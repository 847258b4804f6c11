-- Service accounts are users of kind 'service': they exist to hold API tokens, cannot sign in with a password or
-- the device flow, and a sync never links them to an Identity Center user. Everyone else is a 'person'.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'person';
-- Personal and service API tokens, stored as SHA-256 hashes of the secret. A revoked token keeps its row
-- (revoked_at set), so that using it is answered as revoked rather than unknown; expires_at is NULL for never.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    last_used_at INTEGER,
    revoked_at INTEGER,
    revoked_by INTEGER REFERENCES users(id)
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
