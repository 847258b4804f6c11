-- The sync's journal and spool belong to the connector's code (cone_aws::journal, cone_aws::spool), which creates
-- them where they are missing; the server's migrations no longer define them. What an interrupted sync recorded is
-- lost once: the next sync reads AWS afresh.
DROP TABLE sync_spool;
DROP TABLE sync_journal;
