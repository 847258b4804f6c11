-- Ending role sessions already issued (aws.revoke_sessions): how long a permission set's sessions last, each early
-- end whose sessions are denied until they have run out, and which version of the deny policy AWS holds.
ALTER TABLE entitlements ADD COLUMN session_secs INTEGER NOT NULL DEFAULT 3600;
CREATE TABLE session_denials (
    id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL,
    principal_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    permission_set_name TEXT NOT NULL,
    issued_before INTEGER NOT NULL,
    until_at INTEGER NOT NULL
);
CREATE INDEX session_denials_until ON session_denials (until_at);
CREATE TABLE session_policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    applied_hash TEXT NOT NULL DEFAULT '',
    locked_until INTEGER NOT NULL DEFAULT 0
);
INSERT INTO session_policy (id) VALUES (1);
