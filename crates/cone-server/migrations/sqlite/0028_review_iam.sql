-- IAM items in access reviews (aws.sync_iam, aws.sync_secrets): IAM users, their group memberships and access keys.
-- An IAM user need not be anyone Cone knows, so an item's person becomes optional. SQLite cannot drop NOT NULL in
-- place: the items are copied out and back with their ids, the check of the rows naming them deferred to the commit
-- (which fails if any is left without its item).
PRAGMA defer_foreign_keys = ON;
CREATE TABLE review_items_copy AS SELECT * FROM review_items;
DROP TABLE review_items;
CREATE TABLE review_items (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES review_campaigns(id),
    kind TEXT NOT NULL,
    user_id INTEGER REFERENCES users(id), -- NULL for an IAM user nobody in Cone is known to hold
    principal_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    entitlement_id TEXT NOT NULL,
    instance_arn TEXT NOT NULL,
    account_id TEXT NOT NULL,
    account_name TEXT NOT NULL,
    permission_set_arn TEXT NOT NULL,
    permission_set_name TEXT NOT NULL,
    group_id TEXT NOT NULL,
    group_name TEXT NOT NULL,
    reaches TEXT NOT NULL,
    search TEXT NOT NULL,
    grant_id INTEGER REFERENCES grants(id),
    state TEXT NOT NULL,
    decided_by INTEGER REFERENCES users(id),
    decided_at INTEGER,
    comment TEXT,
    decision_audit_id INTEGER,
    job_id INTEGER,
    request_id TEXT,
    removed_audit_id INTEGER,
    gone_at INTEGER,
    iam_user_arn TEXT NOT NULL DEFAULT '', -- the IAM user of an IAM item
    access_key_id TEXT NOT NULL DEFAULT '',
    last_used_at INTEGER,                  -- as the sync read it: the password's or the key's last use
    by_hand TEXT                           -- what someone must do by hand, when the connector may not remove it
);
INSERT INTO review_items (id, campaign_id, kind, user_id, principal_id, app_id, entitlement_id, instance_arn,
        account_id, account_name, permission_set_arn, permission_set_name, group_id, group_name, reaches, search,
        grant_id, state, decided_by, decided_at, comment, decision_audit_id, job_id, request_id, removed_audit_id,
        gone_at)
    SELECT id, campaign_id, kind, user_id, principal_id, app_id, entitlement_id, instance_arn, account_id,
        account_name, permission_set_arn, permission_set_name, group_id, group_name, reaches, search, grant_id, state,
        decided_by, decided_at, comment, decision_audit_id, job_id, request_id, removed_audit_id, gone_at
    FROM review_items_copy;
DROP TABLE review_items_copy;
CREATE INDEX review_items_campaign ON review_items (campaign_id, state, id);
CREATE INDEX review_items_grant ON review_items (grant_id);
CREATE INDEX review_items_by_entitlement
    ON review_items (campaign_id, account_name, permission_set_name, group_name, id);
