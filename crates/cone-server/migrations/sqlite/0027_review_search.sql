-- A reviewer's words are looked up in a trigram index of the items' search text, rather than by reading every item
-- the reviewer has (20,000 in a campaign of everything). The items' search text never changes once written.
-- PostgreSQL's 0027 says why it has none.
CREATE VIRTUAL TABLE review_items_fts USING fts5(search, content = 'review_items', content_rowid = 'id',
    tokenize = 'trigram');
INSERT INTO review_items_fts (review_items_fts) VALUES ('rebuild');
