-- IAM of the connector's account (`aws.sync_iam`) and its access-key inventory (`aws.sync_secrets`), replaced whole
-- at each sync. Access keys are metadata only: AWS never returns a secret key after its creation, and none is stored.
-- Times are Unix seconds, as everywhere in the store.
CREATE TABLE iam_users (
    arn TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    password_last_used_at INTEGER
);
CREATE INDEX iam_users_name ON iam_users (name);
CREATE TABLE iam_groups (
    arn TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE iam_group_members (
    group_arn TEXT NOT NULL REFERENCES iam_groups(arn),
    user_arn TEXT NOT NULL REFERENCES iam_users(arn),
    PRIMARY KEY (group_arn, user_arn)
);
CREATE INDEX iam_group_members_user ON iam_group_members (user_arn);
CREATE TABLE iam_roles (
    arn TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
);
-- One principal an Allow statement of the role's trust policy names: kind AWS, Service, Federated or CanonicalUser.
CREATE TABLE iam_role_trusts (
    role_arn TEXT NOT NULL REFERENCES iam_roles(arn),
    principal_kind TEXT NOT NULL,
    principal TEXT NOT NULL,
    PRIMARY KEY (role_arn, principal_kind, principal)
);
CREATE TABLE iam_access_keys (
    id TEXT PRIMARY KEY,
    user_arn TEXT NOT NULL REFERENCES iam_users(arn),
    -- 'Active' or 'Inactive'.
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    -- NULL (all three) for a key never used.
    last_used_at INTEGER,
    last_used_service TEXT,
    last_used_region TEXT
);
CREATE INDEX iam_access_keys_user ON iam_access_keys (user_arn);
