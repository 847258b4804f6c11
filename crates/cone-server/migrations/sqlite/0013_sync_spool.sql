-- What a sync from AWS read, part by part as it read it (a group's members, a principal's assignments, ...), for the
-- server to store once the sync is done without holding it all in memory. Each sync has its own run id and deletes
-- its rows once stored; see cone_aws::spool.
CREATE TABLE sync_spool (
    run TEXT NOT NULL,
    kind INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    written_at INTEGER NOT NULL, -- unix seconds
    PRIMARY KEY (run, kind, seq)
);
CREATE INDEX sync_spool_written_at ON sync_spool (written_at);
