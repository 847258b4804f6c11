-- IAM items in access reviews (aws.sync_iam, aws.sync_secrets): IAM users, their group memberships and access keys.
-- An IAM user need not be anyone Cone knows, so an item's person becomes optional.
ALTER TABLE review_items ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE review_items ADD COLUMN iam_user_arn TEXT NOT NULL DEFAULT '';
ALTER TABLE review_items ADD COLUMN access_key_id TEXT NOT NULL DEFAULT '';
-- As the sync read it: the password's or the key's last use.
ALTER TABLE review_items ADD COLUMN last_used_at BIGINT;
-- What someone must do by hand, when the connector may not remove the access.
ALTER TABLE review_items ADD COLUMN by_hand TEXT;
