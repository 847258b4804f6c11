-- Identity Center users Cone creates for people who sign in to Cone with a password (`aws.account_provisioning.
-- identity_center_users`), beside the IAM users it creates. Such a row's account_id is '' and its owner is the
-- Identity Center user's id once it exists.
ALTER TABLE created_accounts ADD COLUMN kind TEXT NOT NULL DEFAULT 'iam_user';
