-- A reviewer's words are looked up in a trigram index of the items' search text (SQLite's is its 0027), rather than
-- by reading every item of the campaign (20,000 in a campaign of everything). pg_trgm ships with PostgreSQL and is a
-- trusted extension: the database's owner may create it. 0027 left it out because one campaign's creation took 22 s
-- with it; campaigns stalled as long without it, so that was not the index's doing.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX review_items_search ON review_items USING gin (search gin_trgm_ops);
