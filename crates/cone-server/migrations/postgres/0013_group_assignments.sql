-- Account assignments whose principal is an Identity Center group, replaced at each sync. A member of the group holds
-- the entitlement through it; Cone never provisions nor revokes these, they are managed in Identity Center.
CREATE TABLE group_assignments (
    app_id TEXT NOT NULL,
    entitlement_id TEXT NOT NULL,
    group_id BIGINT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    PRIMARY KEY (app_id, entitlement_id, group_id)
);
CREATE INDEX group_assignments_group ON group_assignments (group_id);

-- The grant check keeps what a user holds through groups in memory (see 0009): other replicas must forget it when
-- a sync changes the groups, their members or their assignments.
CREATE TRIGGER groups_cache AFTER INSERT OR UPDATE OR DELETE ON groups
    FOR EACH STATEMENT EXECUTE FUNCTION cone_cache_changed();
CREATE TRIGGER group_members_cache AFTER INSERT OR UPDATE OR DELETE ON group_members
    FOR EACH STATEMENT EXECUTE FUNCTION cone_cache_changed();
CREATE TRIGGER group_assignments_cache AFTER INSERT OR UPDATE OR DELETE ON group_assignments
    FOR EACH STATEMENT EXECUTE FUNCTION cone_cache_changed();
