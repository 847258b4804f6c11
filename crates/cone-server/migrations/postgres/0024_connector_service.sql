-- The connector in service mode (`cone-aws serve`): the credentials it connects with, the hosts that connected,
-- and the calls the server hands it.

-- One credential at a time: rotating revokes the one before.
CREATE TABLE connector_credentials (
    client_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Each connector process by its BATON_HOST_ID: what it runs and when it was last heard from.
CREATE TABLE connector_hosts (
    host_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    version TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_contact_at BIGINT NOT NULL
);

-- A call (cone_aws::remote::Call, as JSON) waits `queued` until a host claims it for a lease, renewed while it runs;
-- a lease that runs out puts it back. The answer is kept until the caller reads it.
CREATE TABLE connector_calls (
    id BIGSERIAL PRIMARY KEY,
    call TEXT NOT NULL,
    spool TEXT,
    state TEXT NOT NULL CHECK (state IN ('queued', 'claimed', 'done')),
    host_id TEXT,
    lease_until BIGINT,
    answer TEXT,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX connector_calls_waiting ON connector_calls (state, id);

-- A call queued or answered is announced on `cone_call`, so that a connector long-polling one replica hears of a call
-- another queued, and a job waiting on one replica hears of an answer another received.
CREATE FUNCTION cone_call_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('cone_call', NEW.state);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER connector_calls_notify AFTER INSERT OR UPDATE OF state ON connector_calls
    FOR EACH ROW WHEN (NEW.state IN ('queued', 'done')) EXECUTE FUNCTION cone_call_changed();
