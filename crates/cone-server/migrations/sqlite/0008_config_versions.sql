-- Every version of the access document (access profiles, entitlement management, policies), applied from the
-- configuration file at start-up or through the API. The newest row is in force; rows are never changed, so the
-- table is the history of who changed what, and when.
CREATE TABLE config_versions (
    id INTEGER PRIMARY KEY,
    document TEXT NOT NULL,
    -- SHA-256 of `document` in hex: whether the file changed since its last version, without comparing text.
    digest TEXT NOT NULL,
    -- 'file' or 'api'.
    source TEXT NOT NULL,
    -- Who applied it through the API; NULL for the file.
    author_id INTEGER REFERENCES users(id),
    comment TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX config_versions_source ON config_versions (source, id);
