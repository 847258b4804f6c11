-- IAM group memberships as entitlements, and the IAM users Cone creates for the people who need one to hold them
-- (aws.account_provisioning). A grant names its entitlement's kind; an IAM group's grant names the group (its
-- group_id) in its account (its account_id).
ALTER TABLE grants ADD COLUMN kind TEXT NOT NULL DEFAULT 'aws_permission_set';
UPDATE grants SET kind = 'aws_idc_group_membership' WHERE group_id <> '';
-- One per person and account. state: 'creating' (about to call CreateUser), 'active' (it exists), 'deleting' (no
-- grant needs it and its removal has begun), 'deleted'. owner is the Identity Center user id tagged on the IAM user
-- (cone:identity), which proves Cone made it; grant_id is the last grant that needed it.
CREATE TABLE created_accounts (
    user_id BIGINT NOT NULL REFERENCES users(id),
    account_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    path TEXT NOT NULL,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    grant_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT,
    PRIMARY KEY (user_id, account_id)
);
-- The drift sweep over memberships Cone made: a finding about a membership names its group (an Identity Center
-- group's id, or an IAM group's name in its account); an assignment's finding has none.
ALTER TABLE drift_findings ADD COLUMN group_id TEXT NOT NULL DEFAULT '';
DROP INDEX drift_findings_one_open;
CREATE UNIQUE INDEX drift_findings_one_open
    ON drift_findings (kind, instance_arn, account_id, permission_set_arn, principal_id, group_id)
    WHERE resolved_at IS NULL;
