-- What the sync from AWS has read so far, one row per unit of reading (a group's members, a principal's assignments,
-- ...), so that a sync interrupted by a crash or a failing call resumes instead of starting over. Cleared when a sync
-- is stored; see cone_aws::journal.
CREATE TABLE sync_journal (
    unit TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    recorded_at INTEGER NOT NULL -- unix milliseconds
);
