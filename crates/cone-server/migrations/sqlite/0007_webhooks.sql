-- Outgoing webhooks (an outbox). Recording a task or grant event in the audit log inserts one row here per
-- webhook subscribed to it, in the same transaction, so a change that rolls back sends nothing and one that commits
-- is delivered even if the server dies right after. The workers claim due rows with a lease, as they claim jobs.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    delivery_id TEXT NOT NULL UNIQUE,  -- sent as Cone-Webhook-Id and in the body; the same on every attempt
    webhook TEXT NOT NULL,             -- the webhook's name in the configuration
    audit_id INTEGER NOT NULL REFERENCES audit_log(id),
    event TEXT NOT NULL,
    body TEXT NOT NULL,                -- the JSON sent, fixed when the event is recorded
    state TEXT NOT NULL,               -- pending | delivered | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after INTEGER NOT NULL,
    locked_until INTEGER,
    last_status INTEGER,               -- the receiver's last HTTP status, if it answered
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, run_after);
