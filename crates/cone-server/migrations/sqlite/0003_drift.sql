-- The drift sweep: differences between the account assignments Identity Center reports and Cone's grants, and the
-- jobs that repair them.

-- When a grant's assignment was removed: an assignment seen by a sync that started before this moment is still
-- explained by the grant (the sync may have read it just before the removal).
ALTER TABLE grants ADD COLUMN ended_at INTEGER;

CREATE TABLE drift_findings (
    id INTEGER PRIMARY KEY,
    -- unexplained: a user's assignment no grant explains; missing: an active grant's assignment is absent
    kind TEXT NOT NULL CHECK (kind IN ('unexplained', 'missing')),
    instance_arn TEXT NOT NULL,
    account_id TEXT NOT NULL,
    permission_set_arn TEXT NOT NULL,
    -- the identity-store user id (group assignments are never findings)
    principal_id TEXT NOT NULL,
    -- missing: the active grant that expects the assignment
    grant_id INTEGER REFERENCES grants(id),
    -- remove | reprovision, or NULL when the finding is only reported
    remedy TEXT CHECK (remedy IN ('remove', 'reprovision')),
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    -- set by the first sweep that no longer sees it
    resolved_at INTEGER
);
-- One open finding per difference; a difference that comes back after being resolved is a new finding.
CREATE UNIQUE INDEX drift_findings_one_open
    ON drift_findings (kind, instance_arn, account_id, permission_set_arn, principal_id) WHERE resolved_at IS NULL;
CREATE INDEX drift_findings_by_resolved ON drift_findings (resolved_at, id);

-- Jobs about a drift finding have no grant of their own (`remove_drift`), so `grant_id` becomes optional. SQLite
-- cannot relax NOT NULL in place, hence the copy. No table refers to `jobs`.
CREATE TABLE jobs_new (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,            -- provision | revoke | reprovision | remove_drift
    grant_id INTEGER REFERENCES grants(id),
    finding_id INTEGER REFERENCES drift_findings(id),
    state TEXT NOT NULL,           -- pending | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after INTEGER NOT NULL,
    locked_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK (CASE kind WHEN 'remove_drift' THEN finding_id IS NOT NULL ELSE grant_id IS NOT NULL END)
);
INSERT INTO jobs_new (id, kind, grant_id, state, attempts, run_after, locked_until, last_error, created_at, updated_at)
    SELECT id, kind, grant_id, state, attempts, run_after, locked_until, last_error, created_at, updated_at FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_due ON jobs (state, run_after);
CREATE INDEX jobs_by_finding ON jobs (finding_id, state);
