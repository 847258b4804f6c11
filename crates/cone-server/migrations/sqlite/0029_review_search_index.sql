-- PostgreSQL's 0029 adds its trigram index of the review items' search text; SQLite's is its 0027.
SELECT 1;
