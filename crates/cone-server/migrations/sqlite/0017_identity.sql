-- A person is their Identity Center id; a sync updates their user name. One who leaves (deleted or disabled in
-- Identity Center) keeps their row, which tasks, grants and the audit log refer to, with when and why they left.
ALTER TABLE users ADD COLUMN left_at INTEGER;
ALTER TABLE users ADD COLUMN left_reason TEXT;
