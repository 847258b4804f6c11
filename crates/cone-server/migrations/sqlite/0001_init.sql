-- Times are unix seconds (UTC). Secrets (passwords, tokens, device codes) are stored only as hashes.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    idc_user_id TEXT UNIQUE,
    password_hash TEXT
);
CREATE TABLE groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    idc_group_id TEXT UNIQUE
);
CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    instance_arn TEXT NOT NULL
);
CREATE TABLE resources (
    app_id TEXT NOT NULL REFERENCES apps(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (app_id, id)
);
CREATE TABLE entitlements (
    app_id TEXT NOT NULL REFERENCES apps(id),
    id TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    permission_set_arn TEXT NOT NULL,
    permission_set_name TEXT NOT NULL,
    present INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (app_id, id)
);
CREATE TABLE device_codes (
    device_code_hash TEXT PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    expires_at INTEGER NOT NULL,
    interval_secs INTEGER NOT NULL,
    last_poll_at INTEGER,
    user_id INTEGER REFERENCES users(id),
    denied INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    requester_id INTEGER NOT NULL REFERENCES users(id),
    app_id TEXT NOT NULL,
    entitlement_id TEXT NOT NULL,
    state TEXT NOT NULL,
    justification TEXT NOT NULL,
    duration_secs INTEGER NOT NULL,
    form_json TEXT NOT NULL,
    policy_name TEXT NOT NULL,
    steps_json TEXT NOT NULL,
    step_index INTEGER NOT NULL DEFAULT 0,
    waiting_for_group TEXT,
    decided_by INTEGER REFERENCES users(id),
    reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- One open request per user and entitlement, enforced by the database, not only by the application.
CREATE UNIQUE INDEX tasks_one_open ON tasks (requester_id, app_id, entitlement_id)
    WHERE state IN ('pending_approval', 'provisioning');
CREATE TABLE grants (
    id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL UNIQUE REFERENCES tasks(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    app_id TEXT NOT NULL,
    entitlement_id TEXT NOT NULL,
    instance_arn TEXT NOT NULL,
    account_id TEXT NOT NULL,
    permission_set_arn TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    duration_secs INTEGER NOT NULL,
    starts_at INTEGER,
    expires_at INTEGER,
    -- provisioning → active → revoking → ended; or provisioning → failed
    state TEXT NOT NULL
);
CREATE INDEX grants_by_state ON grants (state, expires_at);
CREATE INDEX grants_by_user ON grants (user_id, app_id, entitlement_id, state);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,            -- provision | revoke
    grant_id INTEGER NOT NULL REFERENCES grants(id),
    state TEXT NOT NULL,           -- pending | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after INTEGER NOT NULL,
    locked_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs (state, run_after);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
