-- Merpati PostgreSQL schema, version 7: nothing changes here. SQLite's migration 0007 defers the
-- deletion of a search document's full text to a background collector (an FTS5 deletion costs
-- as much as the indexing); PostgreSQL keeps deleting the document in the expunging transaction
-- (migration 0004's trigger), where it is cheap: the GIN entries of a deleted search_text row are
-- only cleaned by VACUUM. The version number is kept in step with SQLite's.
SELECT 1;
