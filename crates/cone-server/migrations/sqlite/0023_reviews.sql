-- User access reviews. A campaign snapshots the access in its scope into items, each decided by one of its
-- reviewers; a revocation is removed from AWS by a job (a grant's by its own revoke job).

-- Account assignments made to users directly, as the last sync read them (a group's are in group_assignments).
CREATE TABLE user_assignments (
    app_id TEXT NOT NULL,
    entitlement_id TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (app_id, entitlement_id, user_id)
);
CREATE INDEX user_assignments_user ON user_assignments (user_id);
CREATE TABLE review_campaigns (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,              -- JSON: the scope as it was asked for
    reviewers TEXT NOT NULL,          -- JSON: who reviews, and the fallback reviewers
    due_at INTEGER NOT NULL,
    state TEXT NOT NULL,              -- open | closed
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    closed_at INTEGER
);
-- The access as the snapshot found it, names included, so that the evidence says what was reviewed even after
-- renames.
CREATE TABLE review_items (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES review_campaigns(id),
    kind TEXT NOT NULL,               -- cone_core::review::ItemKind
    user_id INTEGER NOT NULL REFERENCES users(id),
    principal_id TEXT NOT NULL,       -- the person's Identity Center user id
    app_id TEXT NOT NULL,
    entitlement_id TEXT NOT NULL,
    instance_arn TEXT NOT NULL,
    account_id TEXT NOT NULL,         -- '' for a group membership
    account_name TEXT NOT NULL,
    permission_set_arn TEXT NOT NULL, -- '' for a group membership
    permission_set_name TEXT NOT NULL,
    group_id TEXT NOT NULL,           -- the Identity Center group of a membership, else ''
    group_name TEXT NOT NULL,
    reaches TEXT NOT NULL,            -- what it gives, in words ("DatabaseAdministrator on Production, …")
    search TEXT NOT NULL,             -- the names a reviewer's words are looked for in, in lower case
    grant_id INTEGER REFERENCES grants(id),
    state TEXT NOT NULL,              -- cone_core::review::ItemState
    decided_by INTEGER REFERENCES users(id),
    decided_at INTEGER,
    comment TEXT,
    decision_audit_id INTEGER,
    job_id INTEGER,                   -- the removal's job
    request_id TEXT,                  -- AWS's id of the removal, when its API gives one
    removed_audit_id INTEGER,
    gone_at INTEGER
);
CREATE INDEX review_items_campaign ON review_items (campaign_id, state, id);
CREATE INDEX review_items_grant ON review_items (grant_id);
-- A campaign's items by entitlement, as reviewers may list them.
CREATE INDEX review_items_by_entitlement
    ON review_items (campaign_id, account_name, permission_set_name, group_name, id);
CREATE TABLE review_reviewers (
    item_id INTEGER NOT NULL REFERENCES review_items(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    PRIMARY KEY (user_id, item_id)
);
CREATE INDEX review_reviewers_item ON review_reviewers (item_id);

-- A review's removal is a job about its item. SQLite cannot change a CHECK in place, hence the copy; no table
-- refers to `jobs`.
CREATE TABLE jobs_new (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    grant_id INTEGER REFERENCES grants(id),
    finding_id INTEGER REFERENCES drift_findings(id),
    item_id INTEGER REFERENCES review_items(id),
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after INTEGER NOT NULL,
    locked_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK (CASE kind WHEN 'remove_drift' THEN finding_id IS NOT NULL WHEN 'review_revoke' THEN item_id IS NOT NULL
           ELSE grant_id IS NOT NULL END)
);
INSERT INTO jobs_new (id, kind, grant_id, finding_id, state, attempts, run_after, locked_until, last_error,
                      created_at, updated_at)
    SELECT id, kind, grant_id, finding_id, state, attempts, run_after, locked_until, last_error, created_at, updated_at
    FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_due ON jobs (state, run_after);
CREATE INDEX jobs_by_finding ON jobs (finding_id, state);
-- A grant's revoke job, as a review item revoking the grant shows it.
CREATE INDEX jobs_by_grant ON jobs (grant_id, kind);
