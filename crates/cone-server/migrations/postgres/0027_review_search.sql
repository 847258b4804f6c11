-- A reviewer's words are looked up in a trigram index of the items' search text, rather than by reading every item
-- the reviewer has (20,000 in a campaign of everything). pg_trgm ships with PostgreSQL and is a trusted extension:
-- the database's owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX review_items_search ON review_items USING gin (search gin_trgm_ops);
