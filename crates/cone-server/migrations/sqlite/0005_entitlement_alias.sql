-- Each entitlement's alias (`<account>-<role>`, unique over the catalog), derived from the whole catalog at every
-- sync and stored, so that reading one entitlement does not read them all.
ALTER TABLE entitlements ADD COLUMN alias TEXT NOT NULL DEFAULT '';
