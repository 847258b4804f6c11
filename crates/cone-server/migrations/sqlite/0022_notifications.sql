-- Notifications: the notifier reads the audit log past its cursor (the log is written in each change's
-- transaction, so it is the outbox) and turns each event into one row per person and channel, moving the cursor in
-- the same transaction. key names what the person is told of (an audit entry, a task's step, a grant's end), so the
-- same news reaches a person on a channel once.
CREATE TABLE notify_cursor (
    id INTEGER PRIMARY KEY,
    audit_id INTEGER NOT NULL
);
-- Events before this migration are history, not news.
INSERT INTO notify_cursor (id, audit_id) SELECT 1, COALESCE(MAX(id), 0) FROM audit_log;
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,            -- email | slack
    kind TEXT NOT NULL,               -- cone_core::notify::Kind
    task_id INTEGER,
    body TEXT NOT NULL,               -- JSON: the facts the message tells, fixed when it is made
    digest INTEGER NOT NULL DEFAULT 0,     -- 1: sent with the person's other digest items due at run_after
    state TEXT NOT NULL,              -- pending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after INTEGER NOT NULL,
    locked_until INTEGER,
    last_error TEXT,
    reference TEXT,                   -- what the channel calls the message (Slack: channel and ts), to update it
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (key, user_id, channel)
);
CREATE INDEX notifications_due ON notifications (state, run_after);
CREATE TABLE notification_preferences (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    preferences TEXT NOT NULL         -- JSON: cone_core::notify::Preferences
);
