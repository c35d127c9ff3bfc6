-- Merpati SQLite schema: search documents are collected after their last message, not with it.
-- Deleting a document's full text from the FTS5 trigram index costs about as much as indexing
-- it (FTS5 re-tokenises the stored text to delete its entries), which made every EXPUNGE pay for
-- it inside the writer's transaction. Now the last message using a document only marks it
-- orphaned here; the store's background maintenance (merpati.storage.sqlite.search.gc_orphans)
-- deletes orphaned documents, their headers, pending text and full-text rows in batches.
-- Searches never see an orphan: they start from live message rows (messages.search_id).

CREATE TABLE search_orphans (
    doc_id INTEGER PRIMARY KEY                   -- a search_docs id no message uses any more
);

DROP TRIGGER messages_search_gc;

CREATE TRIGGER messages_search_gc AFTER DELETE ON messages
WHEN old.search_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages WHERE search_id = old.search_id)
BEGIN
    INSERT OR IGNORE INTO search_orphans (doc_id) VALUES (old.search_id);
END;
