-- Account assignments whose principal is an Identity Center group, replaced at each sync. A member of the group holds
-- the entitlement through it; Cone never provisions nor revokes these, they are managed in Identity Center.
CREATE TABLE group_assignments (
    app_id TEXT NOT NULL,
    entitlement_id TEXT NOT NULL,
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    PRIMARY KEY (app_id, entitlement_id, group_id)
);
CREATE INDEX group_assignments_group ON group_assignments (group_id);
