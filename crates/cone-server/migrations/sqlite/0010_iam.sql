-- IAM of the connector's account and of every member account of the organisation read (`aws.sync_iam`), and the
-- access-key inventory (`aws.sync_secrets`), replaced whole at each sync. Each row names its account; keys are
-- unique per account. Access keys are metadata only: AWS never returns a secret key after its creation, and none is
-- stored. Times are Unix seconds, as everywhere in the store.
CREATE TABLE iam_users (
    account_id TEXT NOT NULL,
    arn TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    password_last_used_at INTEGER,
    PRIMARY KEY (account_id, arn)
);
CREATE INDEX iam_users_name ON iam_users (name);
CREATE TABLE iam_groups (
    account_id TEXT NOT NULL,
    arn TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, arn)
);
CREATE TABLE iam_group_members (
    account_id TEXT NOT NULL,
    group_arn TEXT NOT NULL,
    user_arn TEXT NOT NULL,
    PRIMARY KEY (account_id, group_arn, user_arn),
    FOREIGN KEY (account_id, group_arn) REFERENCES iam_groups (account_id, arn),
    FOREIGN KEY (account_id, user_arn) REFERENCES iam_users (account_id, arn)
);
CREATE INDEX iam_group_members_user ON iam_group_members (account_id, user_arn);
CREATE TABLE iam_roles (
    account_id TEXT NOT NULL,
    arn TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    PRIMARY KEY (account_id, arn)
);
-- One principal an Allow statement of the role's trust policy names: kind AWS, Service, Federated or CanonicalUser.
CREATE TABLE iam_role_trusts (
    account_id TEXT NOT NULL,
    role_arn TEXT NOT NULL,
    principal_kind TEXT NOT NULL,
    principal TEXT NOT NULL,
    PRIMARY KEY (account_id, role_arn, principal_kind, principal),
    FOREIGN KEY (account_id, role_arn) REFERENCES iam_roles (account_id, arn)
);
CREATE TABLE iam_access_keys (
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    user_arn TEXT NOT NULL,
    -- 'Active' or 'Inactive'.
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    -- NULL (all three) for a key never used.
    last_used_at INTEGER,
    last_used_service TEXT,
    last_used_region TEXT,
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, user_arn) REFERENCES iam_users (account_id, arn)
);
CREATE INDEX iam_access_keys_user ON iam_access_keys (account_id, user_arn);
-- Member accounts whose IAM the last sync could not read (their role could not be assumed, or denied a read).
CREATE TABLE iam_skipped_accounts (
    account_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL
);
