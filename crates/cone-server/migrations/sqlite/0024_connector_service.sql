-- The connector in service mode (`cone-aws serve`): the credentials it connects with, the hosts that connected,
-- and the calls the server hands it.

-- One credential at a time: rotating revokes the one before.
CREATE TABLE connector_credentials (
    client_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Each connector process by its BATON_HOST_ID: what it runs and when it was last heard from.
CREATE TABLE connector_hosts (
    host_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    version TEXT NOT NULL,
    first_seen_at INTEGER NOT NULL,
    last_contact_at INTEGER NOT NULL
);

-- A call (cone_aws::remote::Call, as JSON) waits `queued` until a host claims it for a lease, renewed while it runs;
-- a lease that runs out puts it back. The answer is kept until the caller reads it.
CREATE TABLE connector_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call TEXT NOT NULL,
    spool TEXT,
    state TEXT NOT NULL CHECK (state IN ('queued', 'claimed', 'done')),
    host_id TEXT,
    lease_until INTEGER,
    answer TEXT,
    created_at INTEGER NOT NULL,
    done_at INTEGER
);
CREATE INDEX connector_calls_waiting ON connector_calls (state, id);
