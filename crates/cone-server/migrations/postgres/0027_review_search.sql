-- SQLite's 0027 adds a trigram index of the review items' search text. PostgreSQL keeps reading the text as it is.
-- A pg_trgm GIN index cut a reviewer's word search from p50 169 ms to 47 ms (bench/reviews.sh, 20,000 items), but
-- writing a campaign's 20,000 items then took 22 s once its pending list was merged (1.4 s before), and 5.7-42 s
-- without the pending list, on 2 cores: over the 5 s a campaign may take.
SELECT 1;
