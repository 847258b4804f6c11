-- Identity Center group memberships as entitlements beside permission sets. A membership entitlement names its
-- group; a membership grant names it too, and whether the person was already a member when Cone looked (NULL until
-- the provisioning job has looked), so that a membership Cone did not make is never removed.
ALTER TABLE entitlements ADD COLUMN kind TEXT NOT NULL DEFAULT 'aws_permission_set';
ALTER TABLE entitlements ADD COLUMN group_id TEXT NOT NULL DEFAULT '';
ALTER TABLE entitlements ADD COLUMN group_name TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN group_id TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN membership_found INTEGER;
