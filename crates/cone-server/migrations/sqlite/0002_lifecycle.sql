-- Extensions, cancellation, release and task history.
-- An `extend` task asks for more time on an active grant (`extends_grant_id`) instead of a second grant.
ALTER TABLE tasks ADD COLUMN kind TEXT NOT NULL DEFAULT 'grant';
ALTER TABLE tasks ADD COLUMN extends_grant_id INTEGER REFERENCES grants(id);
-- The policy's maximum when the task was filed: an extension never reaches further than this from now.
ALTER TABLE tasks ADD COLUMN max_duration_secs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN extensions INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_by_state ON tasks (state, created_at);
CREATE INDEX tasks_by_requester ON tasks (requester_id, id);
CREATE INDEX audit_by_subject ON audit_log (subject, id);
