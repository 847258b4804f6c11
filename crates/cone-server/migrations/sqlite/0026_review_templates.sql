-- The access review template (`access_reviews` in the access document) a campaign was opened from, if any: its
-- schedule counts from the last such campaign.
ALTER TABLE review_campaigns ADD COLUMN template TEXT;
CREATE INDEX review_campaigns_template ON review_campaigns (template, created_at);
